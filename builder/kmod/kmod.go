// Package kmod knows a kernel's modules: which file each module is, what it
// depends on, and which are built in. It reads modules.dep when the kernel
// image carries one and otherwise derives it from each module's .modinfo
// section, as depmod does. It reads the kernel image's files inside its
// tree only (builder/rootfs).
package kmod

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cairn-edge/cairn/builder/rootfs"
)

// Index is the module database of one kernel version.
type Index struct {
	// Version is the kernel release (the directory name under /lib/modules).
	Version string
	// tree is the kernel image; dir is lib/modules/<Version> in it, its
	// links followed.
	tree *rootfs.Tree
	dir  string
	// builtinFile is modules.builtin, nil without one.
	builtinFile []byte
	// paths maps a module name to its path relative to Dir.
	paths map[string]string
	// deps maps a module path to the paths it needs, as in modules.dep.
	deps map[string][]string
	// builtin holds the names of modules compiled into the kernel.
	builtin map[string]bool
}

// Name turns a module path or name into the kernel's module name:
// "kernel/fs/ext4/ext4.ko" → "ext4", "virtio-blk" → "virtio_blk".
func Name(p string) string {
	base := filepath.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(base, ".ko"), "-", "_")
}

// Open reads the module database under lib/modules of the kernel image
// tree, which must hold exactly one kernel version. Every file is read
// inside the tree (builder/rootfs): an image's link out of it is an error.
func Open(tree *rootfs.Tree) (*Index, error) {
	entries, err := tree.ReadDir("lib/modules")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("kernel image has no /lib/modules: %w (use a kernel image with its modules)", err)
	}
	if err != nil {
		return nil, err
	}
	var versions []string
	for _, e := range entries {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) != 1 {
		return nil, fmt.Errorf("kernel image has %d kernel versions under /lib/modules (%v): it must hold exactly one", len(versions), versions)
	}
	dir, err := tree.Resolve("lib/modules/" + versions[0])
	if err != nil {
		return nil, err
	}
	ix := &Index{Version: versions[0], tree: tree, dir: dir, paths: map[string]string{}, builtin: map[string]bool{}}
	switch b, err := tree.ReadFile(dir + "/modules.builtin"); {
	case err == nil:
		ix.builtinFile = b
		for _, line := range strings.Fields(string(b)) {
			ix.builtin[Name(line)] = true
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	switch f, err := tree.Open(dir + "/modules.dep"); {
	case err == nil:
		defer f.Close()
		if ix.deps, err = ParseDep(f); err != nil {
			return nil, fmt.Errorf("kernel image %s/modules.dep: %w", ix.Version, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if ix.deps, err = depsFromModinfo(tree, dir); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	for p := range ix.deps {
		ix.paths[Name(p)] = p
	}
	if len(ix.paths) == 0 && len(ix.builtin) == 0 {
		return nil, fmt.Errorf("kernel image %s has no modules: use a kernel image that carries /lib/modules/%s", ix.Version, ix.Version)
	}
	return ix, nil
}

// HostPath is the host path of the module p (a path Resolve returns), its
// links followed inside the kernel image: a path through no link.
func (ix *Index) HostPath(p string) (string, error) {
	return ix.tree.HostPath(ix.dir + "/" + p)
}

// BuiltinFile is modules.builtin as the kernel image holds it, nil when it
// has none.
func (ix *Index) BuiltinFile() []byte { return ix.builtinFile }

// ParseDep reads modules.dep: "path.ko: dep1.ko dep2.ko" per line.
func ParseDep(r io.Reader) (map[string][]string, error) {
	deps := map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok || mod == "" || strings.ContainsAny(mod, " \t") {
			return nil, fmt.Errorf("line %d: want \"module.ko: deps…\", got %q", n, line)
		}
		for _, p := range append([]string{mod}, strings.Fields(rest)...) {
			if !validModPath(p) {
				return nil, fmt.Errorf("line %d: module path %q is not a relative .ko path", n, p)
			}
		}
		deps[mod] = strings.Fields(rest)
	}
	return deps, sc.Err()
}

func validModPath(p string) bool {
	return !filepath.IsAbs(p) && !strings.Contains(p, "..") && Name(p) != "" && strings.Contains(filepath.Base(p), ".ko")
}

// Resolve returns the module paths needed to load the named modules, each
// after its dependencies, without duplicates. Built-in modules need nothing.
func (ix *Index) Resolve(names []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var visit func(p string, stack []string) error
	visit = func(p string, stack []string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		for _, d := range ix.deps[p] {
			if err := visit(d, append(stack, p)); err != nil {
				return err
			}
		}
		out = append(out, p)
		return nil
	}
	for _, n := range names {
		n = Name(n)
		if ix.builtin[n] {
			continue
		}
		p, ok := ix.paths[n]
		if !ok {
			return nil, fmt.Errorf("kernel module %q is not in kernel %s (check the name: it must be a file under /lib/modules/%s without .ko)", n, ix.Version, ix.Version)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DepFile renders modules.dep for the given module paths (which must be
// closed under dependencies, as Resolve returns them): each line lists all
// transitive dependencies, nearest last-loaded first, as depmod writes it.
func (ix *Index) DepFile(paths []string) []byte {
	sorted := append([]string{}, paths...)
	sort.Strings(sorted)
	var b bytes.Buffer
	for _, p := range sorted {
		all, _ := ix.Resolve([]string{Name(p)})
		all = all[:len(all)-1] // itself
		fmt.Fprintf(&b, "%s:", p)
		for i := len(all) - 1; i >= 0; i-- {
			fmt.Fprintf(&b, " %s", all[i])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// depsFromModinfo builds modules.dep from the "depends=" field of the
// .modinfo section of every module below dir in tree.
func depsFromModinfo(tree *rootfs.Tree, dir string) (map[string][]string, error) {
	byName := map[string]string{}
	needs := map[string][]string{}
	err := tree.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".ko") {
			return err
		}
		rel := strings.TrimPrefix(p, dir+"/")
		names, err := modinfoDepends(tree, p)
		if err != nil {
			return fmt.Errorf("kernel module %s: %w", rel, err)
		}
		byName[Name(rel)] = rel
		needs[rel] = names
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading kernel modules: %w", err)
	}
	deps := map[string][]string{}
	for rel, names := range needs {
		for _, n := range names {
			if p, ok := byName[Name(n)]; ok {
				deps[rel] = append(deps[rel], p)
			}
		}
		if deps[rel] == nil {
			deps[rel] = []string{}
		}
	}
	return deps, nil
}

// modinfoDepends returns the module names in the "depends=" field of the
// module p of tree.
func modinfoDepends(tree *rootfs.Tree, p string) ([]string, error) {
	r, err := tree.Open(p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("not an ELF module (compressed modules need a modules.dep in the kernel image): %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	return ParseModinfoDepends(data), nil
}

// ParseModinfoDepends extracts the depends= list from a .modinfo section.
func ParseModinfoDepends(modinfo []byte) []string {
	for _, field := range bytes.Split(modinfo, []byte{0}) {
		if v, ok := bytes.CutPrefix(field, []byte("depends=")); ok && len(v) > 0 {
			return strings.Split(string(v), ",")
		}
	}
	return nil
}
