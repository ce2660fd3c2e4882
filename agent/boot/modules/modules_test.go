package modules

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "builder list", in: "# reach root\nvirtio_pci\nvirtio_blk\n\nsquashfs\next4 # data\n", want: []string{"virtio_pci", "virtio_blk", "squashfs", "ext4"}},
		{name: "dashes and spaces", in: "  crc32c-intel  \r\n", want: []string{"crc32c-intel"}},
		{name: "empty", in: "", want: nil},
		{name: "only comments", in: "#\n# x\n", want: nil},
		{name: "two per line", in: "ext4 jbd2\n", wantErr: "line 1"},
		{name: "path", in: "ok\n../../evil.ko\n", wantErr: "line 2"},
		{name: "too long", in: strings.Repeat("a", 65), wantErr: "not a module name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseList(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseList() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseList() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadList(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "modules")
	if err := os.WriteFile(list, []byte("virtio_blk\nnope\next4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var probed []string
	orig := newProber
	t.Cleanup(func() { newProber = orig })
	newProber = func() (func(string) error, error) {
		return func(name string) error {
			probed = append(probed, name)
			if name == "nope" {
				return errors.New("not found")
			}
			return nil
		}, nil
	}
	n, err := LoadList(list)
	if n != 2 || err == nil || !strings.Contains(err.Error(), "module nope") {
		t.Errorf("LoadList() = %d, %v; want 2 and an error naming nope", n, err)
	}
	if want := []string{"virtio_blk", "nope", "ext4"}; !reflect.DeepEqual(probed, want) {
		t.Errorf("probed %q, want %q (all modules, in order)", probed, want)
	}
	if n, err := LoadList(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Errorf("LoadList(missing) = %d, %v; want 0, nil", n, err)
	}
}

func FuzzParseList(f *testing.F) {
	f.Add("virtio_blk\n# c\n\next4\n")
	f.Add("a b\n")
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParseList(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, n := range names {
			if !validName(n) || n == "" {
				t.Fatalf("ParseList returned invalid name %q", n)
			}
		}
	})
}
