package fstree

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTree(t *testing.T) {
	tr := New()
	if err := tr.File("/etc/cairn/../cairn/release", 0o644, []byte("V=1")); err != nil {
		t.Fatal(err)
	}
	tr.Symlink("bin", "sbin")
	tr.Dir("var", 0o700)
	var got []string
	for _, e := range tr.Entries() {
		got = append(got, e.Mode.String()+" "+e.Path)
	}
	want := "Lrwxrwxrwx bin|drwxr-xr-x etc|drwxr-xr-x etc/cairn|-rw-r--r-- etc/cairn/release|drwx------ var"
	if strings.Join(got, "|") != want {
		t.Errorf("Entries =\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	e, ok := tr.Get("etc/cairn/release")
	if !ok {
		t.Fatal("Get: missing")
	}
	r, _ := e.Open()
	b, _ := io.ReadAll(r)
	if string(b) != "V=1" {
		t.Errorf("content = %q", b)
	}
}

func TestTreeConflicts(t *testing.T) {
	tr := New()
	tr.File("etc", 0o644, nil)
	if err := tr.File("etc/passwd", 0o644, nil); err == nil {
		t.Error("a file under a file was accepted")
	}
	if err := tr.Dir("/", 0o755); err == nil {
		t.Error("the root was accepted as a path")
	}
}

func TestCopyDir(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc/ssl"), 0o755)
	os.WriteFile(filepath.Join(src, "etc/ssl/cert.pem"), []byte("pem"), 0o600)
	os.Symlink("ssl/cert.pem", filepath.Join(src, "etc/cert"))
	tr := New()
	if err := tr.CopyDir(src, ""); err != nil {
		t.Fatal(err)
	}
	e, ok := tr.Get("etc/ssl/cert.pem")
	if !ok || e.Mode.Perm() != 0o600 || e.Source == "" {
		t.Errorf("cert.pem = %+v", e)
	}
	if l, ok := tr.Get("etc/cert"); !ok || l.Mode&fs.ModeSymlink == 0 || l.Target != "ssl/cert.pem" {
		t.Errorf("symlink = %+v", l)
	}
	if err := tr.CopyDir(filepath.Join(src, "missing"), ""); err == nil {
		t.Error("CopyDir of a missing directory succeeded")
	}
}

// TestCopyDirLinksOut copies a tree (a Kubernetes tool image's, say) whose
// links lead out of it, to a host file and a host directory: they are
// copied as links, their targets as written, and nothing of the host is
// read or added.
func TestCopyDirLinksOut(t *testing.T) {
	host := t.TempDir()
	secret := filepath.Join(host, "shadow")
	if err := os.WriteFile(secret, []byte("host-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	links := map[string]string{
		"etc/shadow":  secret,
		"etc/up":      "../../../../../../../../../../.." + secret,
		"lib":         host,
		"usr/lib/dir": "../../lib",
	}
	for p, target := range links {
		p = filepath.Join(src, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	tr := New()
	if err := tr.CopyDir(src, "opt"); err != nil {
		t.Fatal(err)
	}
	for p, target := range links {
		if e, ok := tr.Get("opt/" + p); !ok || e.Mode&fs.ModeSymlink == 0 || e.Target != target {
			t.Errorf("opt/%s = %+v, want a link to %s", p, e, target)
		}
	}
	for _, e := range tr.Entries() {
		if e.Source != "" || strings.HasPrefix(e.Path, "opt/lib/") {
			t.Errorf("%s (source %q) is in the tree: the copy followed a link", e.Path, e.Source)
		}
	}
}
