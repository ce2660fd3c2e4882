package powercut

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
)

func TestFS(t *testing.T) {
	mem := &bootloader.MemFS{}
	if err := mem.WriteFile("a", strings.NewReader("old")); err != nil {
		t.Fatal(err)
	}
	p := &Power{Left: 2}
	var seen []string
	f := &FS{Inner: mem, Power: p, Label: "ESP/", TornRename: true, OnOverwrite: func(name string, old, new []byte) {
		seen = append(seen, name+":"+string(old)+">"+string(new))
	}}
	if err := f.Remove("missing"); err != nil {
		t.Fatal(err)
	}
	// A WriteFile over "a" is a removal and a write: the two mutations left.
	if err := f.WriteFile("a", strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	if err := f.Overwrite("a", []byte("NEW")); !errors.Is(err, ErrCut) {
		t.Fatalf("Overwrite after the cut: %v", err)
	}
	if b, _ := mem.ReadFile("a"); string(b) != "new" {
		t.Errorf("after the cut a holds %q", b)
	}
	if want := []string{"remove ESP/a", "write ESP/a"}; !reflect.DeepEqual(p.Log, want) {
		t.Errorf("log %q, want %q", p.Log, want)
	}
	if want := []string{"a:new>NEW"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("OnOverwrite saw %q", seen)
	}
	// A cut between the removal and the write leaves no file.
	p.Left = 1
	if err := f.WriteFile("a", strings.NewReader("newer")); !errors.Is(err, ErrCut) {
		t.Fatalf("WriteFile: %v", err)
	}
	if _, err := mem.ReadFile("a"); err == nil {
		t.Error("a torn rename left the file")
	}
	p.Left = -1
	if err := (&FS{Inner: plainFS{mem}, Power: p}).Overwrite("a", nil); err == nil {
		t.Error("Overwrite through an FS that cannot")
	}
}

// plainFS hides MemFS's Overwrite.
type plainFS struct{ bootloader.FS }
