// Package netboot is the PXE bundle's manifest: what `cairn build --format
// pxe` writes for an architecture and `cairn serve` hands to the machines
// that boot from it. A bundle is a directory with one folder per Go
// architecture (amd64, arm64), each holding the kernel, the initrds in
// the order the kernel unpacks them, and contract.NetbootManifest naming
// them with their sizes and digests and the kernel command line.
package netboot

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Manifest describes one architecture's network boot.
type Manifest struct {
	// Name and Version are the image's.
	Name    string `json:"name"`
	Version string `json:"version"`
	// Arch is the Go architecture, the folder's name.
	Arch string `json:"arch"`
	// Cmdline is the kernel command line.
	Cmdline string `json:"cmdline"`
	// Kernel is the kernel's file; Initrds are the initrds', in order.
	Kernel  File   `json:"kernel"`
	Initrds []File `json:"initrds"`
}

// File is one file of the bundle, in the architecture's folder.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Files are the kernel and the initrds.
func (m *Manifest) Files() []File { return append([]File{m.Kernel}, m.Initrds...) }

// Archs are the architectures a bundle may hold.
var Archs = []string{"amd64", "arm64"}

// maxManifest bounds the manifest read: it is a few hundred bytes.
const maxManifest = 64 << 10

var (
	plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Describe hashes the file name in dir as a bundle File.
func Describe(dir, name string) (File, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, err
	}
	return File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Pack describes the kernel and the initrds, files already in the
// architecture folder dir, into m, and writes m there.
func (m *Manifest) Pack(dir, kernel string, initrds ...string) error {
	var err error
	if m.Kernel, err = Describe(dir, kernel); err != nil {
		return err
	}
	m.Initrds = nil
	for _, name := range initrds {
		f, err := Describe(dir, name)
		if err != nil {
			return err
		}
		m.Initrds = append(m.Initrds, f)
	}
	return m.Write(dir)
}

// Write writes m into its architecture's folder dir.
func (m *Manifest) Write(dir string) error {
	if err := m.check(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, contract.NetbootManifest), append(data, '\n'), 0o644)
}

// Read reads and checks the manifest of the architecture folder dir: the
// files it names are there, plain names in the folder, of their sizes.
// Digests are checked by Verify, which reads every byte.
func Read(dir string) (*Manifest, error) {
	path := filepath.Join(dir, contract.NetbootManifest)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := Parse(io.LimitReader(f, maxManifest))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (rebuild the bundle: cairn build --format pxe)", path, err)
	}
	if m.Arch != filepath.Base(dir) {
		return nil, fmt.Errorf("%s: arch %q in a folder named %q (a bundle's folders are named by their architecture: move it to %s)", path, m.Arch, filepath.Base(dir), m.Arch)
	}
	for _, file := range m.Files() {
		st, err := os.Stat(filepath.Join(dir, file.Name))
		if err != nil {
			return nil, fmt.Errorf("%s names %s: %w (copy the whole bundle)", path, file.Name, err)
		}
		if !st.Mode().IsRegular() || st.Size() != file.Size {
			return nil, fmt.Errorf("%s names %s of %d bytes; the folder's is %d (copy the whole bundle again)", path, file.Name, file.Size, st.Size())
		}
	}
	return m, nil
}

// Parse decodes and checks a manifest: unknown fields, names that are not
// plain file names in the folder, digests that are not sha256 are errors.
func Parse(r io.Reader) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Verify reads every file of m in dir and checks its digest.
func (m *Manifest) Verify(dir string) error {
	for _, want := range m.Files() {
		got, err := Describe(dir, want.Name)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s/%s: sha256 %s, size %d; the manifest says %s, %d (the bundle was changed or damaged: copy it again)", dir, want.Name, got.SHA256, got.Size, want.SHA256, want.Size)
		}
	}
	return nil
}

// check checks the fields of m alone.
func (m *Manifest) check() error {
	if !slices.Contains(Archs, m.Arch) {
		return fmt.Errorf("arch %q is not one Cairn boots (%v)", m.Arch, Archs)
	}
	if len(m.Initrds) == 0 {
		return errors.New("no initrds")
	}
	if len(m.Cmdline) > 4096 {
		return fmt.Errorf("kernel command line of %d bytes (at most 4096)", len(m.Cmdline))
	}
	for _, s := range []string{m.Name, m.Version, m.Cmdline} {
		if strings.IndexFunc(s, unicode.IsControl) >= 0 {
			return fmt.Errorf("control character in %q", s) // it goes into a boot script
		}
	}
	seen := map[string]bool{contract.NetbootManifest: true}
	for _, f := range m.Files() {
		if !plainName.MatchString(f.Name) || seen[f.Name] {
			return fmt.Errorf("file name %q is not a plain name of its own in the folder", f.Name)
		}
		seen[f.Name] = true
		if !hexDigest.MatchString(f.SHA256) || f.Size < 0 {
			return fmt.Errorf("file %s: sha256 %q, size %d", f.Name, f.SHA256, f.Size)
		}
	}
	return nil
}
