package tryboot

import (
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// TestReadback: what Install was given comes back, config.txt as the
// board's part of the one Install composed, on a MemFS and a DirFS.
func TestReadback(t *testing.T) {
	for _, tt := range []struct {
		name string
		boot func(t *testing.T) map[contract.Slot]bootloader.FS
	}{
		{"mem", func(*testing.T) map[contract.Slot]bootloader.FS { _, b := memCard(); return fsMap(b) }},
		{"dir", func(t *testing.T) map[contract.Slot]bootloader.FS {
			return map[contract.Slot]bootloader.FS{contract.SlotA: bootloader.DirFS(t.TempDir()), contract.SlotB: bootloader.DirFS(t.TempDir())}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(&bootloader.MemFS{}, tt.boot(t), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Install(contract.SlotA, testFiles(contract.SlotA, "1.0")); err != nil {
				t.Fatal(err)
			}
			read := func(r io.ReadCloser, err error) (string, error) {
				if err != nil {
					return "", err
				}
				defer r.Close()
				b, err := io.ReadAll(r)
				return string(b), err
			}
			want := testFiles(contract.SlotA, "1.0")
			for what, got := range map[string]func() (io.ReadCloser, error){
				"kernel": func() (io.ReadCloser, error) { return l.OpenKernel(contract.SlotA) },
				"initrd": func() (io.ReadCloser, error) { return l.OpenInitrd(contract.SlotA) },
			} {
				w, _ := io.ReadAll(map[string]io.Reader{"kernel": want.Kernel, "initrd": want.Initrd}[what])
				if s, err := read(got()); err != nil || s != string(w) {
					t.Errorf("%s read back as %q, %v; want %q", what, s, err, w)
				}
			}
			for _, f := range want.Files {
				w, _ := io.ReadAll(f.Data)
				if s, err := read(l.OpenFile(contract.SlotA, f.Name)); err != nil || s != string(w) {
					t.Errorf("board file %s read back as %q, %v; want %q", f.Name, s, err, w)
				}
			}
			if _, err := read(l.OpenFile(contract.SlotB, "start4.elf")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a file of the empty slot b: %v; want fs.ErrNotExist", err)
			}
			if _, err := read(l.OpenFile(contract.SlotB, contract.RPiConfigFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("config.txt of the empty slot b: %v; want fs.ErrNotExist", err)
			}
			for _, bad := range []string{contract.RPiCmdlineFile, "VMLINUZ", "../x", "/config.txt"} {
				if _, err := read(l.OpenFile(contract.SlotA, bad)); err == nil || !strings.Contains(err.Error(), "not a board file") {
					t.Errorf("OpenFile(%q) = %v; want a refusal", bad, err)
				}
			}
			// A config.txt edited by hand is not the board's.
			if err := l.boot[contract.SlotA].WriteFile(contract.RPiConfigFile, strings.NewReader("arm_boost=1\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := read(l.OpenFile(contract.SlotA, contract.RPiConfigFile)); err == nil || !strings.Contains(err.Error(), "by hand") {
				t.Errorf("a config.txt edited by hand read back: %v", err)
			}
		})
	}
}

// TestBoardConfig: boardConfig undoes configTxt, with or without an
// initramfs, and only for the slot it was written for.
func TestBoardConfig(t *testing.T) {
	for _, board := range []string{"", "[pi4]\narm_boost=1\n", "dtoverlay=disable-bt\n[all]\n"} {
		for _, initrd := range []bool{true, false} {
			composed, err := configTxt(contract.SlotB, []byte(board), initrd)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := boardConfig(contract.SlotB, composed); !ok || string(got) != board {
				t.Errorf("boardConfig(configTxt(%q, %v)) = %q, %v", board, initrd, got, ok)
			}
			if _, ok := boardConfig(contract.SlotA, composed); ok {
				t.Errorf("slot b's config.txt read back as slot a's")
			}
		}
	}
}
