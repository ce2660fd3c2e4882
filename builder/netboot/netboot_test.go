package netboot

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// folder writes an architecture folder with the files (name → content)
// and their manifest, the first file the kernel.
func folder(t testing.TB, root, arch string, files ...string) (string, *Manifest) {
	t.Helper()
	dir := filepath.Join(root, arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Name: "test", Version: "1.0.0", Arch: arch, Cmdline: "console=ttyS0 cairn.slot=a cairn.media=ram"}
	for _, name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat(name, 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Pack(dir, files[0], files[1:]...); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func TestReadVerify(t *testing.T) {
	dir, want := folder(t, t.TempDir(), "amd64", "vmlinuz", "initramfs", "slot.cpio")
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := must(json.Marshal(got)), must(json.Marshal(want)); !bytes.Equal(g, w) {
		t.Fatalf("Read = %s, want %s", g, w)
	}
	if err := got.Verify(dir); err != nil {
		t.Fatal(err)
	}
	// The same size, another content: only the digest tells.
	if err := os.WriteFile(filepath.Join(dir, "initramfs"), bytes.Repeat([]byte("x"), int(want.Initrds[0].Size)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(dir); err == nil || !strings.Contains(err.Error(), "the bundle was changed or damaged") {
		t.Fatalf("Verify of a changed initramfs: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "initramfs"), []byte("short"), 0o644)
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "copy the whole bundle again") {
		t.Fatalf("Read with a truncated initramfs: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "initramfs"), []byte(strings.Repeat("initramfs", 100)), 0o644)
	os.Remove(filepath.Join(dir, "slot.cpio"))
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "names slot.cpio") {
		t.Fatalf("Read without slot.cpio: %v", err)
	}
}

func TestReadWrongFolder(t *testing.T) {
	root := t.TempDir()
	dir, _ := folder(t, root, "amd64", "vmlinuz", "initramfs")
	moved := filepath.Join(root, "arm64")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(moved); err == nil || !strings.Contains(err.Error(), `arch "amd64" in a folder named "arm64"`) {
		t.Fatalf("Read of a moved folder: %v", err)
	}
}

func TestParse(t *testing.T) {
	good := `{"name":"n","version":"1","arch":"amd64","cmdline":"quiet",
		"kernel":{"name":"vmlinuz","size":1,"sha256":"` + strings.Repeat("a", 64) + `"},
		"initrds":[{"name":"initramfs","size":1,"sha256":"` + strings.Repeat("b", 64) + `"}]}`
	for _, tt := range []struct {
		name, json, err string
	}{
		{"good", good, ""},
		{"unknown field", strings.Replace(good, `"name":"n"`, `"name":"n","extra":1`, 1), "unknown field"},
		{"riscv", strings.Replace(good, "amd64", "riscv64", 1), `arch "riscv64" is not one Cairn boots`},
		{"no initrds", strings.Replace(good, `"initrds":[{"name":"initramfs","size":1,"sha256":"`+strings.Repeat("b", 64)+`"}]`, `"initrds":[]`, 1), "no initrds"},
		{"a path", strings.Replace(good, `"name":"vmlinuz"`, `"name":"../../etc/shadow"`, 1), "not a plain name"},
		{"the manifest itself", strings.Replace(good, `"name":"vmlinuz"`, `"name":"netboot.json"`, 1), "not a plain name"},
		{"twice", strings.Replace(good, `"name":"initramfs"`, `"name":"vmlinuz"`, 1), "not a plain name of its own"},
		{"short digest", strings.Replace(good, strings.Repeat("a", 64), "abc", 1), `sha256 "abc"`},
		{"script injection", strings.Replace(good, `"cmdline":"quiet"`, `"cmdline":"quiet\nchain http://elsewhere/"`, 1), "control character"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.json))
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("Parse: %v; want %q", err, tt.err)
			}
		})
	}
}

// FuzzParse: a bundle may come from anywhere; what Parse accepts names
// only plain files, and says nothing a boot script could be fooled by.
func FuzzParse(f *testing.F) {
	f.Add(`{"name":"n","version":"1","arch":"amd64","cmdline":"quiet","kernel":{"name":"vmlinuz","size":1,"sha256":"` + strings.Repeat("a", 64) + `"},"initrds":[{"name":"i","size":1,"sha256":"` + strings.Repeat("b", 64) + `"}]}`)
	f.Add(`{"arch":"arm64"}`)
	f.Fuzz(func(t *testing.T, data string) {
		m, err := Parse(strings.NewReader(data))
		if err != nil {
			return
		}
		for _, file := range m.Files() {
			if strings.ContainsAny(file.Name, "/\\\x00") || file.Name == ".." {
				t.Fatalf("accepted file name %q", file.Name)
			}
		}
		if strings.ContainsAny(m.Cmdline, "\n\r") {
			t.Fatalf("accepted command line %q", m.Cmdline)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
