package rootfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hostSecret is the content of a build host file outside every tree.
const hostSecret = "root:host-secret:19000:0:99999:7:::\n"

// testTree makes a tree with the links of a real root file system and
// hostile ones, and a host file and directory beside it, outside the tree.
func testTree(t *testing.T) (tree *Tree, hostFile, hostDir string) {
	t.Helper()
	host := t.TempDir()
	hostDir = filepath.Join(host, "etc")
	hostFile = filepath.Join(hostDir, "shadow")
	dir := t.TempDir()
	for p, content := range map[string]string{
		hostFile:                       hostSecret,
		dir + "/boot/vmlinuz-6.1":      "MZkernel",
		dir + "/usr/lib/modules/6.1/a": "module a",
		dir + "/usr/lib/x/y":           "usr lib y",
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up, err := filepath.Rel(filepath.Join(dir, "boot"), hostFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"boot/vmlinuz":  "vmlinuz-6.1",
		"boot/abs":      "/boot/vmlinuz-6.1",
		"boot/a":        "b",
		"boot/b":        "./c",
		"boot/c":        "../boot/vmlinuz",
		"lib":           "usr/lib",
		"lib64":         "/usr/lib",
		"usr/bin/y":     "../lib/x/y",
		"boot/host":     hostFile,
		"boot/up":       up,
		"boot/up-chain": "up",
		"boot/abs-up":   "/../../../../.." + hostFile,
		"hostdir":       hostDir,
		"boot/loop1":    "loop2",
		"boot/loop2":    "loop1",
		"boot/dangling": "nothing",
		"boot/dir":      "/usr/lib",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return New(dir), hostFile, hostDir
}

// TestRead reads every kind of name through each of HostPath, ReadFile
// and Open: links inside the tree resolve, absolute ones from its top;
// links out of it and to what it lacks fail naming the link, and no read
// ever returns the host file.
func TestRead(t *testing.T) {
	tree, hostFile, _ := testTree(t)
	up, _ := filepath.Rel(filepath.Join(tree.Dir(), "boot"), hostFile)
	tests := []struct {
		name     string
		rel      string // what Resolve gives
		content  string
		wantErr  string // what the error says, after the name
		notExist bool   // the error is an fs.ErrNotExist
	}{
		{name: "boot/vmlinuz-6.1", rel: "boot/vmlinuz-6.1", content: "MZkernel"},
		{name: "/boot//./vmlinuz-6.1", rel: "boot/vmlinuz-6.1", content: "MZkernel"},
		{name: "boot/vmlinuz", rel: "boot/vmlinuz-6.1", content: "MZkernel"},
		{name: "boot/abs", rel: "boot/vmlinuz-6.1", content: "MZkernel"},
		{name: "boot/a", rel: "boot/vmlinuz-6.1", content: "MZkernel"},
		{name: "lib/modules/6.1/a", rel: "usr/lib/modules/6.1/a", content: "module a"},
		{name: "lib64/modules/6.1/a", rel: "usr/lib/modules/6.1/a", content: "module a"},
		{name: "boot/dir/modules/6.1/a", rel: "usr/lib/modules/6.1/a", content: "module a"},
		{name: "usr/bin/y", rel: "usr/lib/x/y", content: "usr lib y"},
		{name: "boot/nothing", wantErr: "no such file", notExist: true},
		{name: "lib/nothing", wantErr: " goes through lib, a link to usr/lib, but the input holds no usr/lib/nothing"},
		{name: "boot/host", wantErr: " is a link to " + hostFile + ", but the input holds no " + strings.TrimPrefix(hostFile, "/") + " (an absolute link names a file of the input"},
		{name: "hostdir/shadow", wantErr: " goes through hostdir, a link to " + filepath.Dir(hostFile) + ", but the input holds no " + strings.TrimPrefix(hostFile, "/")},
		{name: "boot/up", wantErr: "boot/up is a link to " + up + ", outside the input (an input's files must be inside it)"},
		{name: "boot/up-chain", wantErr: "boot/up-chain goes through boot/up, a link to " + up + ", outside the input"},
		{name: "boot/abs-up", wantErr: " is a link to /../../../../.." + hostFile + ", outside the input (an input's files must be inside it)"},
		{name: "../" + filepath.Base(tree.Dir()) + "/boot/vmlinuz-6.1", wantErr: ` climbs out of the input with ".."`},
		{name: "boot/loop1", wantErr: ": more than 40 links on the way"},
		{name: "boot/dangling", wantErr: " is a link to nothing, but the input holds no boot/nothing"},
		{name: "boot", wantErr: "is a directory"},
	}
	reads := map[string]func(string) (string, error){
		"HostPath": func(name string) (string, error) {
			p, err := tree.HostPath(name)
			if err != nil {
				return "", err
			}
			b, err := os.ReadFile(p)
			return string(b), err
		},
		"ReadFile": func(name string) (string, error) {
			b, err := tree.ReadFile(name)
			return string(b), err
		},
		"Open": func(name string) (string, error) {
			f, err := tree.Open(name)
			if err != nil {
				return "", err
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			return string(b), err
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel, err := tree.Resolve(tt.name)
			if tt.content != "" && (err != nil || rel != tt.rel) {
				t.Errorf("Resolve = %q, %v; want %q", rel, err, tt.rel)
			}
			for how, read := range reads {
				got, err := read(tt.name)
				if strings.Contains(got, "host-secret") {
					t.Fatalf("%s read the host file %s", how, hostFile)
				}
				if tt.wantErr == "" {
					if err != nil || got != tt.content {
						t.Errorf("%s = %q, %v; want %q", how, got, err, tt.content)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s error = %v, want one with %q", how, err, tt.wantErr)
				}
				if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
					t.Errorf("%s error %v: errors.Is(fs.ErrNotExist) = %v, want %v", how, err, got, tt.notExist)
				}
			}
		})
	}
}

// TestDirs lists and walks directories through links inside the tree and
// refuses those outside.
func TestDirs(t *testing.T) {
	tree, _, hostDir := testTree(t)
	es, err := tree.ReadDir("lib64/modules")
	if err != nil || len(es) != 1 || es[0].Name() != "6.1" || !es[0].IsDir() {
		t.Errorf("ReadDir(lib64/modules) = %v, %v; want [6.1]", es, err)
	}
	if es, err := tree.ReadDir("hostdir"); err == nil || !strings.Contains(err.Error(), "hostdir is a link to "+hostDir+", but the input holds no") {
		t.Errorf("ReadDir(hostdir) = %v, %v; want an error", es, err)
	}
	var walked []string
	err = tree.WalkDir("lib", func(p string, d fs.DirEntry, err error) error {
		walked = append(walked, p)
		return err
	})
	if want := []string{"usr/lib", "usr/lib/modules", "usr/lib/modules/6.1", "usr/lib/modules/6.1/a", "usr/lib/x", "usr/lib/x/y"}; err != nil || !slices.Equal(walked, want) {
		t.Errorf("WalkDir(lib) = %v, %v; want %v", walked, err, want)
	}
	walked = nil
	err = tree.WalkDir("boot", func(p string, d fs.DirEntry, err error) error {
		if d.Type()&fs.ModeSymlink != 0 {
			walked = append(walked, p)
		}
		return err
	})
	if err != nil || !slices.Contains(walked, "boot/dir") || !slices.Contains(walked, "boot/host") {
		t.Errorf("WalkDir(boot) links = %v, %v; want boot/dir and boot/host listed as links", walked, err)
	}
	if err := tree.WalkDir("hostdir", func(string, fs.DirEntry, error) error { return nil }); err == nil {
		t.Error("WalkDir(hostdir) walked a host directory")
	}
}
