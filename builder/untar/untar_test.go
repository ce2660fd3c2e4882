package untar

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// secret is what the host file beside the tree holds: no attack may copy,
// link or change it.
const secret = "host secret\n"

// host is the layout each test unpacks into: base holds the tree and, beside
// it, outside, a host folder with the file secret an attack reaches for.
type host struct {
	base, tree, outside, secret string
}

func newHost(t testing.TB) *host {
	t.Helper()
	base := t.TempDir()
	h := &host{
		base:    base,
		tree:    filepath.Join(base, "tree"),
		outside: filepath.Join(base, "outside"),
		secret:  filepath.Join(base, "outside", "secret"),
	}
	for _, d := range []string{h.tree, h.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(h.secret, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// check asserts that nothing was written outside the tree: base holds only
// the tree and outside, outside only the untouched secret with no second
// link to it, and no file of the tree is the secret or a copy of it.
func (h *host) check(t testing.TB) {
	t.Helper()
	if got := names(t, h.base); !slices.Equal(got, []string{"outside", "tree"}) {
		t.Errorf("beside the tree: %q, want only outside and tree", got)
	}
	if got := names(t, h.outside); !slices.Equal(got, []string{"secret"}) {
		t.Errorf("outside the tree: %q, want only secret", got)
	}
	if b, err := os.ReadFile(h.secret); err != nil || string(b) != secret {
		t.Errorf("host file outside the tree now holds %q (%v), want %q", b, err, secret)
	}
	sfi, err := os.Lstat(h.secret)
	if err != nil {
		t.Fatal(err)
	}
	if n := sfi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
		t.Errorf("host file outside the tree has %d links, want 1", n)
	}
	noHostFile(t, h.tree, sfi)
}

// noHostFile walks tree (not following links) and fails on any entry that
// is not a file, directory or symlink, or that is the host file host or a
// copy of it.
func noHostFile(t testing.TB, tree string, host fs.FileInfo) {
	t.Helper()
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walking the tree: %v", err)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			t.Errorf("walking the tree: %v", err)
			return nil
		}
		switch m := fi.Mode(); {
		case m.IsRegular():
			if host != nil && os.SameFile(fi, host) {
				t.Errorf("%s is a hard link to the host file %s", p, host.Name())
			}
			if b, _ := os.ReadFile(p); host != nil && string(b) == secret {
				t.Errorf("%s holds the host file's content", p)
			}
		case m.IsDir(), m&fs.ModeSymlink != 0:
		default:
			t.Errorf("%s is a %v; the tree may hold only files, directories and symlinks", p, m.Type())
		}
		return nil
	})
}

// names lists dir.
func names(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// entry is one tar entry of a test stream. size, when larger than body,
// makes the header claim more than the stream holds: the stream ends after
// that header.
type entry struct {
	typ        byte
	name, link string
	body       string
	mode       int64
	size       int64
}

// file, dir, symlink, hardlink and claim are entries of each kind; claim's
// header says size bytes follow, and none do.
func file(name, body string, mode int64) entry {
	return entry{typ: tar.TypeReg, name: name, body: body, mode: mode}
}

func dir(name string, mode int64) entry {
	return entry{typ: tar.TypeDir, name: name, mode: mode}
}

func symlink(name, to string) entry {
	return entry{typ: tar.TypeSymlink, name: name, link: to, mode: 0o777}
}

func hardlink(name, to string) entry {
	return entry{typ: tar.TypeLink, name: name, link: to, mode: 0o644}
}

func claim(name string, size int64) entry {
	return entry{typ: tar.TypeReg, name: name, mode: 0o644, size: size}
}

// tarOf writes es as a tar stream; "$OUT" in a link target is the host
// folder outside the tree.
func tarOf(t testing.TB, outside string, es ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{
			Typeflag: e.typ, Name: e.name, Mode: e.mode, Format: tar.FormatPAX,
			Linkname: strings.ReplaceAll(e.link, "$OUT", outside),
			Size:     max(e.size, int64(len(e.body))),
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			h.Devmajor, h.Devminor = 1, 3
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.size > int64(len(e.body)) {
			return buf.Bytes() // the header is written; its claimed data never comes
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// read returns the tree's file p, or fails.
func read(t *testing.T, tree, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tree, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// isLink, hasMode, absent and sameFile check the tree's entry p (and b).
func isLink(t *testing.T, tree, p, want string) {
	t.Helper()
	if got, err := os.Readlink(filepath.Join(tree, p)); err != nil || got != want {
		t.Errorf("%s: link to %q (%v), want %q", p, got, err, want)
	}
}

func hasMode(t *testing.T, tree, p string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(tree, p))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != want {
		t.Errorf("%s: mode %v, want %v", p, got, want)
	}
}

func absent(t *testing.T, tree, p string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(tree, p)); err == nil {
		t.Errorf("%s exists, want nothing there", p)
	}
}

func sameFile(t *testing.T, tree, a, b string) {
	t.Helper()
	fa, err := os.Lstat(filepath.Join(tree, a))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Lstat(filepath.Join(tree, b))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fa, fb) {
		t.Errorf("%s and %s are different files, want one hard-linked file", a, b)
	}
}

func TestExtract(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0o022)) // modes as a builder with the usual umask gets them
	small := Limits{File: 100, Total: 150, Entries: 3}
	for _, tc := range []struct {
		name    string
		limits  *Limits // nil: Defaults
		entries []entry
		// wantErr is what the error says, starting with the entry it
		// names; "" wants none.
		wantErr string
		check   func(t *testing.T, tree string)
	}{
		// The normal cases: a root file system as images hold it.
		{name: "files, directories and modes", entries: []entry{
			dir("./", 0o755),
			dir("bin/", 0o755),
			file("bin/tool", "#!/bin/sh\n", 0o755),
			dir("etc/", 0o750),
			file("etc/conf", "a=1\n", 0o640),
			file("./etc/dotted", "dot\n", 0o644),
			file("empty", "", 0o644),
			file("/abs/name", "abs\n", 0o644), // absolute names are relative to the tree, as tar and OCI take them
		}, check: func(t *testing.T, tree string) {
			if got := read(t, tree, "bin/tool"); got != "#!/bin/sh\n" {
				t.Errorf("bin/tool = %q", got)
			}
			hasMode(t, tree, "bin/tool", 0o755)
			hasMode(t, tree, "etc", fs.ModeDir|0o750)
			hasMode(t, tree, "etc/conf", 0o640)
			if got := read(t, tree, "etc/dotted") + read(t, tree, "empty") + read(t, tree, "abs/name"); got != "dot\nabs\n" {
				t.Errorf("etc/dotted, empty, abs/name = %q", got)
			}
		}},
		{name: "children before their directory, as a flattened image lists upper layers first", entries: []entry{
			file("usr/bin/x", "x", 0o755),
			dir("usr/", 0o755),
			dir("usr/bin/", 0o755),
		}, check: func(t *testing.T, tree string) {
			if got := read(t, tree, "usr/bin/x"); got != "x" {
				t.Errorf("usr/bin/x = %q", got)
			}
		}},
		{name: "symlinks are stored as they are, absolute targets too", entries: []entry{
			symlink("lib64", "/lib"),
			symlink("bin/sh", "/bin/busybox"),
			symlink("usr/lib/libc.so", "../../lib/libc.so.6"),
			symlink("etc/mtab", "/proc/self/mounts"),
		}, check: func(t *testing.T, tree string) {
			isLink(t, tree, "lib64", "/lib")
			isLink(t, tree, "bin/sh", "/bin/busybox")
			isLink(t, tree, "usr/lib/libc.so", "../../lib/libc.so.6")
			isLink(t, tree, "etc/mtab", "/proc/self/mounts")
		}},
		{name: "hard links inside the tree", entries: []entry{
			file("bin/busybox", "bb", 0o755),
			hardlink("bin/sh", "bin/busybox"),
			hardlink("bin/ls", "/bin/busybox"),
			hardlink("sbin/init", "./bin/busybox"),
		}, check: func(t *testing.T, tree string) {
			sameFile(t, tree, "bin/busybox", "bin/sh")
			sameFile(t, tree, "bin/busybox", "bin/ls")
			sameFile(t, tree, "bin/busybox", "sbin/init")
		}},
		{name: "a hard link before its target, as an upper layer's link to a lower layer's file comes", entries: []entry{
			hardlink("bin/sh", "bin/busybox"),
			file("bin/busybox", "bb", 0o755),
		}, check: func(t *testing.T, tree string) {
			sameFile(t, tree, "bin/busybox", "bin/sh")
		}},
		{name: "a later entry replaces an earlier one", entries: []entry{
			file("etc/hostname", "old", 0o644),
			file("etc/hostname", "new", 0o644),
			symlink("etc/localtime", "$OUT/zone"), // never a real host path: old code wrote through it
			file("etc/localtime", "tz", 0o644),
		}, check: func(t *testing.T, tree string) {
			if got := read(t, tree, "etc/hostname") + read(t, tree, "etc/localtime"); got != "newtz" {
				t.Errorf("etc/hostname, etc/localtime = %q, want the later entries", got)
			}
			hasMode(t, tree, "etc/localtime", 0o644)
		}},
		{name: "device nodes and fifos are skipped", entries: []entry{
			dir("dev/", 0o755),
			{typ: tar.TypeChar, name: "dev/null", mode: 0o666},
			{typ: tar.TypeBlock, name: "dev/sda", mode: 0o660},
			{typ: tar.TypeFifo, name: "run/initctl", mode: 0o600},
			file("etc/ok", "ok", 0o644),
		}, check: func(t *testing.T, tree string) {
			absent(t, tree, "dev/null")
			absent(t, tree, "dev/sda")
			absent(t, tree, "run/initctl")
			if got := read(t, tree, "etc/ok"); got != "ok" {
				t.Errorf("etc/ok = %q", got)
			}
		}},

		// The attacks: each tries to write, link or read outside the tree.
		{name: "file through an absolute symlink out of the tree", entries: []entry{
			symlink("lib", "$OUT"),
			file("lib/x", "pwned", 0o644),
		}, wantErr: `entry "lib/x": its path goes through the symlink "lib" (-> `},
		{name: "file through a relative symlink out of the tree", entries: []entry{
			symlink("up", "../outside"),
			file("up/x", "pwned", 0o644),
		}, wantErr: `entry "up/x": its path goes through the symlink "up" (-> ../outside)`},
		{name: "file through a symlink inside the tree", entries: []entry{
			dir("usr/lib/", 0o755),
			symlink("lib", "usr/lib"),
			file("lib/x", "x", 0o644),
		}, wantErr: `entry "lib/x": its path goes through the symlink "lib" (-> usr/lib)`},
		{name: "file through a symlink named with a leading slash", entries: []entry{
			symlink("/etc", "$OUT"),
			file("etc/x", "pwned", 0o644),
		}, wantErr: `entry "etc/x": its path goes through the symlink "etc" (-> `},
		{name: "directory through a symlink", entries: []entry{
			symlink("lib", "$OUT"),
			dir("lib/sub/", 0o755),
		}, wantErr: `entry "lib/sub/": its path goes through the symlink "lib"`},
		{name: "symlink through a symlink", entries: []entry{
			symlink("lib", "$OUT"),
			symlink("lib/s", "/etc/shadow"),
		}, wantErr: `entry "lib/s": its path goes through the symlink "lib"`},
		{name: "file over a symlink to a host file is written in the tree, not through the link", entries: []entry{
			symlink("x", "$OUT/secret"),
			file("x", "pwned", 0o644),
		}, check: func(t *testing.T, tree string) {
			if got := read(t, tree, "x"); got != "pwned" {
				t.Errorf("x = %q, want the file that replaced the link", got)
			}
		}},
		{name: "directory over a symlink out of the tree, then a file in it", entries: []entry{
			symlink("lib", "$OUT"),
			dir("lib/", 0o755),
			file("lib/x", "x", 0o644),
		}, check: func(t *testing.T, tree string) {
			hasMode(t, tree, "lib", fs.ModeDir|0o755)
			if got := read(t, tree, "lib/x"); got != "x" {
				t.Errorf("lib/x = %q", got)
			}
		}},
		{name: "hard link to a host file through a symlinked folder", entries: []entry{
			symlink("etc", "$OUT"),
			hardlink("shadow", "etc/secret"),
		}, wantErr: `entry "shadow": hard link to "etc/secret", whose path goes through the symlink "etc" (-> `},
		{name: "hard link with an absolute target through a symlinked folder", entries: []entry{
			symlink("etc", "$OUT"),
			hardlink("shadow", "/etc/secret"),
		}, wantErr: `entry "shadow": hard link to "/etc/secret", whose path goes through the symlink "etc"`},
		{name: "hard link to a host file, then a write through it", entries: []entry{
			symlink("etc", "$OUT"),
			hardlink("s", "etc/secret"),
			file("/s", "pwned", 0o644),
		}, wantErr: `entry "s": hard link to "etc/secret", whose path goes through the symlink "etc"`},
		{name: "hard link to a symlink to a host file", entries: []entry{
			symlink("s", "$OUT/secret"),
			hardlink("t", "s"),
		}, wantErr: `entry "t": hard link to "s", which is a symlink; a hard link must name a regular file`},
		{name: "hard link climbing out with ..", entries: []entry{
			hardlink("s", "../outside/secret"),
		}, wantErr: `entry "s": hard link to "../outside/secret" climbs out of the tree`},
		{name: "hard link to nothing", entries: []entry{
			hardlink("s", "not/there"),
		}, wantErr: `entry "s": hard link to "not/there", which the input does not hold`},
		{name: "name climbing out with ..", entries: []entry{
			file("../outside/x", "pwned", 0o644),
		}, wantErr: `entry "../outside/x": its path climbs out of the tree with ".."`},
		{name: "name climbing out with .. in the middle", entries: []entry{
			file("a/../../outside/x", "pwned", 0o644),
		}, wantErr: `entry "a/../../outside/x": its path climbs out of the tree with ".."`},
		{name: "symlink named to climb out", entries: []entry{
			symlink("../outside/l", "/"),
		}, wantErr: `entry "../outside/l": its path climbs out`},
		{name: "file under a file", entries: []entry{
			file("a", "a", 0o644),
			file("a/b", "b", 0o644),
		}, wantErr: `entry "a/b": its path goes through "a", which is a file, not a directory`},
		{name: "file over a directory that holds files", entries: []entry{
			file("d/x", "x", 0o644),
			file("d", "d", 0o644),
		}, wantErr: `entry "d": it would replace the directory "d", which is not empty`},
		{name: "a file claiming more than a file may hold", entries: []entry{
			file("ok", "ok", 0o644),
			claim("big", 3<<30),
		}, wantErr: `entry "big": it holds 3221225472 bytes, more than the 2 GiB one file may hold`,
			check: func(t *testing.T, tree string) { absent(t, tree, "big") }},
		{name: "files past the total cap", limits: &small, entries: []entry{
			file("a", strings.Repeat("a", 100), 0o644),
			claim("b", 100),
		}, wantErr: `entry "b": it takes the input past 150 bytes, what one input may unpack to`,
			check: func(t *testing.T, tree string) { absent(t, tree, "b") }},
		{name: "more entries than the cap", limits: &small, entries: []entry{
			dir("a/", 0o755), dir("b/", 0o755), dir("c/", 0o755), dir("d/", 0o755),
		}, wantErr: `entry "d/": the input has more than 3 entries (with the directories they imply), what one input may hold`},
		{name: "directories a path implies count as entries", limits: &small, entries: []entry{
			file("a/b/c/f", "f", 0o644),
		}, wantErr: `entry "a/b/c/f": the input has more than 3 entries`,
			check: func(t *testing.T, tree string) { absent(t, tree, "a/b/c") }},
		{name: "a path nested deeper than the cap", entries: []entry{
			file(strings.Repeat("d/", 128)+"f", "f", 0o644),
		}, wantErr: `: its path is 129 levels deep, more than the 128 an input may nest`,
			check: func(t *testing.T, tree string) { absent(t, tree, "d") }},
		{name: "a name longer than Linux takes", entries: []entry{
			file(strings.Repeat("n", 4096), "f", 0o644),
		}, wantErr: `: its name or link target is 4096 bytes long; Linux takes paths of less than 4096`},
		{name: "a hard link's target longer than Linux takes", entries: []entry{
			hardlink("h", strings.Repeat("n/", 2048)),
		}, wantErr: `entry "h": its name or link target is 4096 bytes long`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			lim := Defaults
			if tc.limits != nil {
				lim = *tc.limits
			}
			err := lim.Extract(bytes.NewReader(tarOf(t, h.outside, tc.entries...)), h.tree)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one saying %s", err, tc.wantErr)
			}
			h.check(t)
			if tc.check != nil {
				tc.check(t, h.tree)
			}
		})
	}
}

// TestExtractBadStream: a stream that is no tar, or ends inside an entry,
// is an error that says where.
func TestExtractBadStream(t *testing.T) {
	h := newHost(t)
	full := tarOf(t, h.outside, file("etc/a", "a", 0o644), file("etc/b", strings.Repeat("b", 1000), 0o644))
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"no tar", bytes.Repeat([]byte("x"), 1024), "reading the stream"},
		{"cut inside an entry", full[:len(full)-1024-400], `entry "etc/b": `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t)
			err := Extract(bytes.NewReader(tc.stream), h.tree)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %s", err, tc.want)
			}
			h.check(t)
		})
	}
}

// FuzzUntar feeds arbitrary bytes as a tar stream: whatever they hold,
// Extract must not panic, must write nothing beside the tree (the sibling
// sentinel stays empty) and must leave only files, directories and symlinks
// in it.
func FuzzUntar(f *testing.F) {
	seeds := [][]entry{
		{file("a", "a", 0o644), dir("d/", 0o755), symlink("s", "/abs"), hardlink("h", "a")},
		{symlink("lib", "../sentinel"), file("lib/x", "x", 0o644)},
		{symlink("etc", "../sentinel"), hardlink("s", "etc/x")},
		{symlink("x", "../sentinel/x"), file("x", "x", 0o644)},
		{file("../sentinel/x", "x", 0o644)},
		{{typ: tar.TypeChar, name: "dev/null", mode: 0o666}},
		{claim("big", 3<<30)},
	}
	for _, es := range seeds {
		f.Add(tarOf(f, "", es...))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		base := t.TempDir()
		tree, sentinel := filepath.Join(base, "tree"), filepath.Join(base, "sentinel")
		for _, d := range []string{tree, sentinel} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		Extract(bytes.NewReader(stream), tree)
		if got := names(t, base); !slices.Equal(got, []string{"sentinel", "tree"}) {
			t.Errorf("beside the tree: %q, want only sentinel and tree", got)
		}
		if got := names(t, sentinel); len(got) != 0 {
			t.Errorf("outside the tree: %q, want nothing", got)
		}
		noHostFile(t, tree, nil)
	})
}
