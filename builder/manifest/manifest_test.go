package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name, data, wantErr string
	}{
		{"one object", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", ""},
		{"several objects and empty documents", "---\napiVersion: v1\nkind: Namespace\n---\n# a comment only\n---\napiVersion: apps/v1\nkind: Deployment\n---\n", ""},
		{"json", `{"apiVersion": "v1", "kind": "List", "items": []}`, ""},
		{"anchors and aliases", "a: &x [1]\nb: *x\napiVersion: v1\nkind: ConfigMap\n", ""},
		{"syntax error on a later line", "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: [a\n", "m.yaml:7: "},
		{"syntax error on the first line", `{"apiVersion": "v1", "kind": [}`, "m.yaml:1: "},
		{"tab indentation", "apiVersion: v1\n\tkind: Pod\n", "m.yaml:2: "},
		{"no kind", "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nmetadata: {}\n", "m.yaml:4: document 2 has no kind"},
		{"no apiVersion", "kind: Pod\n", "m.yaml:1: document 1 has no apiVersion"},
		{"empty kind", "apiVersion: v1\nkind:\n", "m.yaml:2: document 1: kind must be a non-empty string"},
		{"numeric kind", "apiVersion: v1\nkind: 3\n", "m.yaml:2: document 1: kind must be a non-empty string"},
		{"list kind", "apiVersion: v1\nkind: [Pod]\n", "m.yaml:2: document 1: kind must be"},
		{"a sequence", "- a\n- b\n", "m.yaml:1: document 1 is not a mapping"},
		{"a scalar", "hello\n", "m.yaml:1: document 1 is not a mapping"},
		{"empty file", "", "m.yaml: holds no Kubernetes objects"},
		{"only comments", "# nothing\n---\n", "m.yaml: holds no Kubernetes objects"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check("m.yaml", []byte(tt.data))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Check error = %v, want it to start with %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestCollect(t *testing.T) {
	dir := t.TempDir()
	obj := "apiVersion: v1\nkind: ConfigMap\n"
	for name, data := range map[string]string{
		"apps/b.yaml":     obj,
		"apps/a.yml":      obj,
		"apps/c.json":     `{"apiVersion": "v1", "kind": "Secret"}`,
		"apps/README.md":  "not a manifest",
		"apps/sub/d.yaml": obj, // directories are not recursed into
		"single/web.yaml": obj,
		"empty/notes.txt": "",
		"bad/broken.yaml": "apiVersion: v1\nkind: Pod\n---\nkind: Pod\n",
		"other/a.yml":     obj, // same base name as apps/a.yml: the number keeps them apart
	} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	from := func(i int) string { return "spec.yaml:" + string(rune('1'+i)) }
	files, err := Collect([]string{filepath.Join(dir, "single/web.yaml"), filepath.Join(dir, "apps"), filepath.Join(dir, "other/a.yml")}, from)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, " "), "00-web.yaml 01-a.yml 02-b.yaml 03-c.json 04-a.yml"; got != want {
		t.Errorf("names = %s, want %s", got, want)
	}

	errs := []struct {
		paths   []string
		wantErr string
	}{
		{[]string{filepath.Join(dir, "nowhere.yaml")}, "spec.yaml:1: kubernetes.manifests entry"},
		{[]string{filepath.Join(dir, "single"), filepath.Join(dir, "empty")}, "spec.yaml:2: kubernetes.manifests directory"},
		{[]string{filepath.Join(dir, "bad")}, filepath.Join(dir, "bad/broken.yaml") + ":4: document 2 has no apiVersion"},
	}
	for _, e := range errs {
		if _, err := Collect(e.paths, from); err == nil || !strings.HasPrefix(err.Error(), e.wantErr) {
			t.Errorf("Collect(%v) error = %v, want it to start with %q", e.paths, err, e.wantErr)
		}
	}
}

func TestCollectNumbersWidth(t *testing.T) {
	dir := t.TempDir()
	for i := range 120 {
		os.WriteFile(filepath.Join(dir, "m"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+".yaml"), []byte("apiVersion: v1\nkind: ConfigMap\n"), 0o644)
	}
	entries, _ := os.ReadDir(dir)
	files, err := Collect([]string{dir}, func(int) string { return "spec" })
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(entries) {
		t.Fatalf("%d files, want %d", len(files), len(entries))
	}
	for i := 1; i < len(files); i++ {
		if files[i-1].Name >= files[i].Name {
			t.Fatalf("names out of order: %s before %s", files[i-1].Name, files[i].Name)
		}
	}
}

// FuzzCheck feeds Check arbitrary bytes: it must not panic, and what it
// rejects it rejects with a one-line "file:line: problem" error.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"apiVersion: v1\nkind: ConfigMap\n",
		"---\napiVersion: v1\nkind: Namespace\n---\n",
		`{"apiVersion": "v1", "kind": "List", "items": [}`,
		"a: &x [1]\nb: *x\n",
		"- a\n- b\n",
		"apiVersion: v1\nkind: [Pod]\n",
		"\tfoo: bar\n",
		"a: &a [*a, *a]\n",
		"!!binary aGVsbG8=\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check("f.yaml", data)
		if err == nil {
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "f.yaml:") && !strings.HasPrefix(msg, "f.yaml: holds no") {
			t.Fatalf("error does not name the file: %q", msg)
		}
	})
}
