package contract

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSlot(t *testing.T) {
	for _, tc := range []struct {
		in                      string
		slot, other             Slot
		label, bootDir, cmdline string
		rpiLabel                string
		rpiPartition            uint32
	}{
		{"a", SlotA, SlotB, "CAIRN-A", "cairn/a", "cairn.slot=a", "BOOT-A", 2},
		{"B", SlotB, SlotA, "CAIRN-B", "cairn/b", "cairn.slot=b", "BOOT-B", 3},
	} {
		t.Run(tc.in, func(t *testing.T) {
			s, err := ParseSlot(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if s != tc.slot || s.Other() != tc.other || s.Label() != tc.label || s.BootDir() != tc.bootDir || SlotOption(s) != tc.cmdline {
				t.Errorf("slot %q: got %q other %q label %q dir %q option %q", tc.in, s, s.Other(), s.Label(), s.BootDir(), SlotOption(s))
			}
			if s.RPiBootLabel() != tc.rpiLabel || s.RPiBootPartition() != tc.rpiPartition {
				t.Errorf("slot %q: Pi boot label %q partition %d", tc.in, s.RPiBootLabel(), s.RPiBootPartition())
			}
			if got, want := s.RPiBootMount(), "/run/cairn/boot/"+tc.slot; got != string(want) {
				t.Errorf("slot %q: Pi boot mount %q, want %q", tc.in, got, want)
			}
			if back, ok := RPiSlotOfPartition(tc.rpiPartition); !ok || back != s {
				t.Errorf("RPiSlotOfPartition(%d) = %q, %v", tc.rpiPartition, back, ok)
			}
		})
	}
	for _, p := range []uint32{0, RPiAutoPartition, 4} {
		if s, ok := RPiSlotOfPartition(p); ok {
			t.Errorf("RPiSlotOfPartition(%d) = %q; want no slot", p, s)
		}
	}
	for _, bad := range []string{"", "c", "ab", "A "} {
		if _, err := ParseSlot(bad); err == nil {
			t.Errorf("ParseSlot(%q) accepted it", bad)
		}
	}
}

// moduleRoot is the repository root, two levels up from this package.
var moduleRoot = filepath.Join("..", "..")

// spelled are literals that only this package may spell: a string literal
// anywhere else in the module (tests and the separate agent/kube module
// aside) that equals one of exact, or starts with one of prefixes, is a
// copy of the contract that can drift.
var (
	exact = []string{
		LabelESP, LabelData, slotLabelPrefix, SlotA.Label(), SlotB.Label(), TypeESP, TypeVar, TypeBasicData, SlotParam,
		NodeFileName, KubeJoinFileName, ESPLoaderConf, ESPEntriesDir, "loader/entries/", APICRLName,
		RootTypes["amd64"], RootTypes["arm64"],
		RPiAutoLabel, SlotA.RPiBootLabel(), SlotB.RPiBootLabel(), RPiAutobootFile, RPiStampFile,
		RPiDeviceTree, RPiDTTryboot, RPiDTPartition, RPiTrybootArg,
		ExtlinuxConf, ExtlinuxTrialFile, ExtlinuxStampName, ExtlinuxParam,
		MediaParam, MediaOption, NetbootManifest, NetbootSlotInitrd,
	}
	prefixes = []string{
		StateDir, "var/lib/cairn", LogDir, RunDir + "/", "/etc/cairn/", "etc/cairn/",
		ESPMount + "/cairn", espSlotRoot + "/", "/usr/share/cairn", "usr/share/cairn", SlotParam + "=",
	}
)

// TestNoLiteralsElsewhere greps the module for the contract's names and paths.
func TestNoLiteralsElsewhere(t *testing.T) {
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	kube, _ := filepath.Abs(filepath.Join(moduleRoot, "agent", "kube"))
	var found []string
	err = filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		abs, _ := filepath.Abs(path)
		if d.IsDir() {
			// agent/kube is its own Go module (it cannot import this one
			// without taking on its dependency graph); the agent passes it
			// every path it uses.
			if abs == self || abs == kube || strings.HasPrefix(d.Name(), ".") && path != moduleRoot || d.Name() == "testdata" || d.Name() == "out" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			v, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			if spells(v) {
				found = append(found, fset.Position(lit.Pos()).String()+": "+lit.Value)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s spells part of the on-disk contract: use the constant in agent/contract", f)
	}
}

func spells(v string) bool {
	for _, e := range exact {
		if v == e {
			return true
		}
	}
	for _, p := range prefixes {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// TestLeaf checks that this package imports nothing of ours.
func TestLeaf(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, data, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, "github.com/cairn-edge/") {
				t.Errorf("%s imports %s: the contract package must import nothing of ours", name, p)
			}
		}
	}
}
