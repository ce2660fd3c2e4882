package bootloader

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestFS(t *testing.T) {
	for _, tt := range []struct {
		name string
		fs   FS
	}{
		{"mem", &MemFS{}},
		{"dir", DirFS(t.TempDir())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fs
			if names, err := f.ReadDir("loader/entries"); err != nil || len(names) != 0 {
				t.Errorf("ReadDir of a missing dir = %v, %v; want empty", names, err)
			}
			if _, err := f.ReadFile("loader/loader.conf"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadFile of a missing file: %v; want fs.ErrNotExist", err)
			}
			for _, name := range []string{"loader/entries/b.conf", "loader/entries/a.conf", "loader/entries/.a.conf.123", "loader/entries/sub/c.conf", "loader/loader.conf"} {
				if err := f.WriteFile(name, strings.NewReader("content of "+name)); err != nil {
					t.Fatal(err)
				}
			}
			names, err := f.ReadDir("loader/entries")
			if want := []string{"a.conf", "b.conf"}; err != nil || !reflect.DeepEqual(names, want) {
				t.Errorf("ReadDir = %q, %v; want %q (files only, no dot files, sorted)", names, err, want)
			}
			if b, err := f.ReadFile("loader/entries/a.conf"); err != nil || string(b) != "content of loader/entries/a.conf" {
				t.Errorf("ReadFile = %q, %v", b, err)
			}
			if o, ok := f.(Opener); ok {
				r, err := o.Open("loader/entries/a.conf")
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(r)
				r.Close()
				if err != nil || string(b) != "content of loader/entries/a.conf" {
					t.Errorf("Open: read %q, %v", b, err)
				}
				if _, err := o.Open("loader/missing"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Open of a missing file: %v; want fs.ErrNotExist", err)
				}
				if _, err := o.Open("../up"); err == nil {
					t.Error("Open(../up) opened a path outside the FS")
				}
			}
			if err := f.Remove("loader/entries/a.conf"); err != nil {
				t.Fatal(err)
			}
			if err := f.Remove("loader/entries/a.conf"); err != nil {
				t.Errorf("Remove of a missing file: %v", err)
			}
			if names, _ := f.ReadDir("loader/entries"); !reflect.DeepEqual(names, []string{"b.conf"}) {
				t.Errorf("after Remove, ReadDir = %q", names)
			}
			for _, bad := range []string{"/abs", "../up", "a//b", "."} {
				if err := f.WriteFile(bad, strings.NewReader("")); err == nil {
					t.Errorf("WriteFile(%q) accepted a path outside the FS", bad)
				}
			}
		})
	}
}

func TestOverwrite(t *testing.T) {
	for _, tt := range []struct {
		name string
		fs   interface {
			FS
			Overwriter
		}
	}{
		{"mem", &MemFS{}},
		{"dir", DirFS(t.TempDir())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fs
			if err := f.Overwrite("autoboot.txt", []byte("new")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Overwrite of a missing file: %v; want fs.ErrNotExist (it never creates)", err)
			}
			if err := f.WriteFile("autoboot.txt", strings.NewReader("old content")); err != nil {
				t.Fatal(err)
			}
			for _, data := range []string{"short", "a longer content"} {
				if err := f.Overwrite("autoboot.txt", []byte(data)); err == nil || !strings.Contains(err.Error(), "keeps the size") {
					t.Errorf("Overwrite changing the size to %d: %v; want a refusal", len(data), err)
				}
			}
			if b, _ := f.ReadFile("autoboot.txt"); string(b) != "old content" {
				t.Errorf("after refused overwrites, the file holds %q", b)
			}
			if err := f.Overwrite("autoboot.txt", []byte("new content")); err != nil {
				t.Fatal(err)
			}
			if b, err := f.ReadFile("autoboot.txt"); err != nil || string(b) != "new content" {
				t.Errorf("after Overwrite: %q, %v", b, err)
			}
			if err := f.Overwrite("../x", []byte("")); err == nil {
				t.Error("Overwrite accepted a path outside the FS")
			}
		})
	}
}

func TestDirFSOverwriteKeepsTheFile(t *testing.T) {
	// The same file, overwritten, not a new one renamed over it: its
	// inode (on vfat, its directory entry and clusters) stays.
	dir := t.TempDir()
	p := filepath.Join(dir, "autoboot.txt")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := DirFS(dir).Overwrite("autoboot.txt", []byte("abcdefghij")); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("Overwrite replaced the file rather than writing into it")
	}
	if des, _ := os.ReadDir(dir); len(des) != 1 {
		t.Errorf("the directory holds %d entries, want autoboot.txt alone", len(des))
	}
}

func TestDirFSLeavesNoTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	if err := DirFS(dir).WriteFile("cairn/a/vmlinuz", strings.NewReader("kernel")); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(filepath.Join(dir, "cairn", "a"))
	if err != nil || len(des) != 1 || des[0].Name() != "vmlinuz" {
		t.Errorf("cairn/a holds %v, %v; want vmlinuz alone", des, err)
	}
}

func TestMemFSWalkSorted(t *testing.T) {
	var m MemFS
	for _, name := range []string{"loader/loader.conf", "EFI/BOOT/BOOTX64.EFI", "cairn/a/vmlinuz", "cairn/a/initrd"} {
		if err := m.WriteFile(name, strings.NewReader(name)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := m.Walk(func(name string, data []byte) error {
		if string(data) != name {
			t.Errorf("%s holds %q", name, data)
		}
		got = append(got, name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"EFI/BOOT/BOOTX64.EFI", "cairn/a/initrd", "cairn/a/vmlinuz", "loader/loader.conf"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Walk order %q, want %q", got, want)
	}
	stop := errors.New("stop")
	if err := m.Walk(func(string, []byte) error { return stop }); err != stop {
		t.Errorf("Walk returned %v, want fn's error", err)
	}
}

func TestCheckFiles(t *testing.T) {
	file := func(name string) File { return File{Name: name, Data: strings.NewReader(name)} }
	reserved := map[string]bool{"vmlinuz": true}
	if err := CheckFiles([]File{file("a.dtb"), file("overlays/b.dtbo")}, reserved); err != nil {
		t.Errorf("good files: %v", err)
	}
	for _, tt := range []struct {
		files []File
		want  string
	}{
		{[]File{file("/abs")}, `"/abs" is not a relative`},
		{[]File{file("x/../y")}, "not a relative"},
		{[]File{file("x/.tmp")}, "dot-named"},
		{[]File{file("VMLinuz")}, "Install writes itself"},
		{[]File{file("a.dtb"), file("A.DTB")}, `"a.dtb" and "A.DTB" are one file on FAT`},
		{[]File{{Name: "empty"}}, "no content"},
	} {
		if err := CheckFiles(tt.files, reserved); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckFiles(%v): %v; want an error saying %q", tt.files[len(tt.files)-1].Name, err, tt.want)
		}
	}
}
