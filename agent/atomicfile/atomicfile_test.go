package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state")
	for _, content := range []string{"one", "two"} {
		if err := WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("content = %q, %v; want %q", got, err, content)
		}
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	left, _ := os.ReadDir(filepath.Dir(path))
	if len(left) != 1 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestWriteStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kernel")
	if err := Write(path, strings.NewReader("image"), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "image" {
		t.Errorf("content = %q, %v; want %q", got, err, "image")
	}
}

// TestWriteFileUnchanged: the same content and mode again is no write (the
// file keeps its inode); another mode or content is.
func TestWriteFileUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	inode := func() uint64 {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	for i, tt := range []struct {
		content string
		perm    os.FileMode
		rewrite bool
	}{
		{"a", 0o600, true},
		{"a", 0o600, false},
		{"a", 0o644, true},
		{"b", 0o644, true},
		{"b", 0, false},
	} {
		before := uint64(0)
		if i > 0 {
			before = inode()
		}
		if err := WriteFile(path, []byte(tt.content), tt.perm); err != nil {
			t.Fatal(err)
		}
		if got := inode() != before; got != tt.rewrite {
			t.Errorf("write %d (%q, %v): rewritten %v, want %v", i, tt.content, tt.perm, got, tt.rewrite)
		}
		if b, _ := os.ReadFile(path); string(b) != tt.content {
			t.Errorf("write %d: content %q, want %q", i, b, tt.content)
		}
	}
}
