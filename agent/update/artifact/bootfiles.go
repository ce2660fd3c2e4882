package artifact

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Board files: on a board whose slots have a boot partition each (the
// Raspberry Pi), the files the boot loader copies there as they are
// (bootloader.BootFiles.Files: firmware, DTBs, overlays, the board's
// config.txt) travel in one layer of BootFilesMediaType, a tar of them,
// and the config lists each (Config.BootFiles: name, size, digest), in the
// tar's order. The listing, signed with the manifest, lets the node copy
// the files its running slot already holds instead of downloading the
// layer, and check every file it takes from the layer; the layer's own
// digest is checked like every other's.
//
// Everything about them is checked before it is used: the count
// (MaxBootFiles), the sizes (MaxBootFilesSize), the names (relative,
// slash-separated, no "." or ".." element, no dot-named element, only
// letters, digits and ._+-, no two that FAT, which ignores case, takes
// for one, none the boot loader writes itself: contract.RPiLoaderFiles),
// and in the tar, regular files only, exactly those listed, in order.

// BootFilesMediaType is the board files layer: a tar (WriteBootFiles).
const BootFilesMediaType = "application/vnd.cairn.bootfiles.v1.tar"

// Bounds on the board files. A Raspberry Pi 4's firmware, device trees
// and a few overlays are 3-10 MiB in 10-50 files.
const (
	// MaxBootFiles bounds how many the config lists.
	MaxBootFiles = 256
	// MaxBootFilesSize bounds the bytes of all of them together.
	MaxBootFilesSize = 64 << 20
	// MaxBootFilesLayer bounds the layer: the files and, per file, a
	// header (with room for a PAX record) and padding, and the tar's end.
	MaxBootFilesLayer = MaxBootFilesSize + MaxBootFiles*3*512 + 1024
	// maxBootFileName bounds a name, as FAT bounds a long file name.
	maxBootFileName = 255
)

// BootFile is one board file as the config lists it.
type BootFile struct {
	// Name is its slash-separated path on the boot partition, as
	// "overlays/disable-bt.dtbo".
	Name string `json:"name"`
	// Size and Digest are its length and SHA-256 (sha256:<hex>).
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
}

// BootFileData is one board file to write into the layer.
type BootFileData struct {
	Name string
	Data []byte
}

// rebuild is the fix for an artifact that breaks the format: it was not
// written by cairn build, or was tampered with.
const rebuild = "not what cairn build writes: rebuild the artifact with cairn build --format oci"

// CheckBootFileName checks one board file's name (see above).
func CheckBootFileName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("board file with no name (%s)", rebuild)
	case len(name) > maxBootFileName:
		return fmt.Errorf("board file %q…: name of %d bytes, more than %d (FAT's limit); shorten it", trunc(name), len(name), maxBootFileName)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("board file %q is an absolute path; name it relative to the boot partition's root (%s)", trunc(name), rebuild)
	case strings.Contains(name, "\\"):
		return fmt.Errorf("board file %q holds a backslash; separate directories with / (%s)", trunc(name), rebuild)
	}
	for _, elem := range strings.Split(name, "/") {
		switch {
		case elem == "..":
			return fmt.Errorf("board file %q leaves the boot partition (a .. element; %s)", trunc(name), rebuild)
		case elem == "" || elem == ".":
			return fmt.Errorf("board file %q has an empty or . element; write a clean path such as overlays/x.dtbo (%s)", trunc(name), rebuild)
		case strings.HasPrefix(elem, "."):
			return fmt.Errorf("board file %q is dot-named, as the boot media's temporary files are; rename it", trunc(name))
		}
		for _, c := range elem {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+-", c)) {
				return fmt.Errorf("board file %q holds %q; use letters, digits and ._+- only, which every FAT driver takes; rename it", trunc(name), c)
			}
		}
	}
	if !fs.ValidPath(name) {
		return fmt.Errorf("board file %q is not a clean relative path (%s)", trunc(name), rebuild)
	}
	for _, own := range contract.RPiLoaderFiles {
		if strings.EqualFold(name, own) {
			return fmt.Errorf("board file %q is a file the boot loader writes itself; take it out of the board's files", trunc(name))
		}
	}
	return nil
}

// checkBootFiles checks the config's listing of the board files.
func checkBootFiles(files []BootFile) error {
	if len(files) > MaxBootFiles {
		return fmt.Errorf("update config: %d board files, more than the %d allowed (%s)", len(files), MaxBootFiles, rebuild)
	}
	var total int64
	seen := map[string]string{}
	for _, f := range files {
		if err := CheckBootFileName(f.Name); err != nil {
			return fmt.Errorf("update config: %w", err)
		}
		lower := strings.ToLower(f.Name)
		if first, ok := seen[lower]; ok {
			return fmt.Errorf("update config: board files %q and %q are one file on FAT, which ignores case; list it once (%s)", first, f.Name, rebuild)
		}
		seen[lower] = f.Name
		if !ValidDigest(f.Digest) {
			return fmt.Errorf("update config: board file %q: digest %q is not sha256:<64 hex> (%s)", f.Name, trunc(f.Digest), rebuild)
		}
		if f.Size < 0 || f.Size > MaxBootFilesSize-total {
			return fmt.Errorf("update config: board file %q of %d bytes: the board files would pass the %d bytes allowed, or it is negative (%s)", f.Name, f.Size, MaxBootFilesSize, rebuild)
		}
		total += f.Size
	}
	return nil
}

// Match checks that the manifest and its config agree on the board files:
// a layer if and only if the config lists files, large enough to hold
// them.
func Match(u *Update, c *Config) error {
	total := bootFilesBytes(c.BootFiles)
	switch {
	case u.BootFiles == nil && len(c.BootFiles) > 0:
		return fmt.Errorf("the config lists %d board files but the manifest has no %s layer (%s)", len(c.BootFiles), BootFilesMediaType, rebuild)
	case u.BootFiles != nil && len(c.BootFiles) == 0:
		return fmt.Errorf("the manifest has a %s layer but the config lists no board files (%s)", BootFilesMediaType, rebuild)
	case u.BootFiles != nil && u.BootFiles.Size < total:
		return fmt.Errorf("the %s layer is %d bytes, less than the %d bytes of board files the config lists (%s)", BootFilesMediaType, u.BootFiles.Size, total, rebuild)
	}
	return nil
}

// WriteBootFiles writes the board files layer to w: a tar of files sorted
// by name, each a regular file with fixed metadata (mode 0644, owner 0,
// time 0), so the same files give the same bytes. It returns the config's
// listing, and refuses what the node would refuse.
func WriteBootFiles(w io.Writer, files []BootFileData) ([]BootFile, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b BootFileData) int { return strings.Compare(a.Name, b.Name) })
	list := make([]BootFile, len(files))
	for i, f := range files {
		sum := sha256.Sum256(f.Data)
		list[i] = BootFile{Name: f.Name, Size: int64(len(f.Data)), Digest: "sha256:" + hex.EncodeToString(sum[:])}
	}
	if err := checkBootFiles(list); err != nil {
		return nil, err
	}
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Size: int64(len(f.Data)), Mode: 0o644, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("board file %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("board file %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return list, nil
}

// ReadBootFiles reads the board files layer from r, a layer of at most
// MaxBootFilesLayer bytes whose digest the caller checks, against want,
// the config's listing (checked by ParseConfig): every entry a regular
// file, the entries exactly want's, in want's order, each of its size and
// digest. It returns the files' contents in want's order.
func ReadBootFiles(r io.Reader, want []BootFile) ([][]byte, error) {
	if err := checkBootFiles(want); err != nil {
		return nil, err
	}
	tr := tar.NewReader(io.LimitReader(r, MaxBootFilesLayer))
	out := make([][]byte, len(want))
	for i, w := range want {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("board files layer: it ends after %d files, the config lists %d (%s)", i, len(want), rebuild)
		}
		if err != nil {
			return nil, fmt.Errorf("board files layer: entry %d: %v (not a tar: %s)", i+1, err, rebuild)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("board files layer: entry %q is not a regular file (type %q): only files go onto a boot partition (%s)", trunc(hdr.Name), hdr.Typeflag, rebuild)
		}
		if hdr.Name != w.Name {
			return nil, fmt.Errorf("board files layer: entry %d is %q, the config lists %q there (%s)", i+1, trunc(hdr.Name), w.Name, rebuild)
		}
		if hdr.Size != w.Size {
			return nil, fmt.Errorf("board files layer: %s is %d bytes, the config says %d (%s)", w.Name, hdr.Size, w.Size, rebuild)
		}
		b := make([]byte, w.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			return nil, fmt.Errorf("board files layer: reading %s: %v (%s)", w.Name, err, rebuild)
		}
		if sum := sha256.Sum256(b); "sha256:"+hex.EncodeToString(sum[:]) != w.Digest {
			return nil, fmt.Errorf("board files layer: %s does not hash to the %s the config lists (corrupt or tampered; %s)", w.Name, w.Digest, rebuild)
		}
		out[i] = b
	}
	if hdr, err := tr.Next(); err != io.EOF {
		what := "a damaged end"
		if err == nil {
			what = fmt.Sprintf("an entry %q", trunc(hdr.Name))
		}
		return nil, fmt.Errorf("board files layer: after the %d files the config lists it holds %s (%s)", len(want), what, rebuild)
	}
	return out, nil
}

// VerifyBootFiles reads the layer with ReadBootFiles and checks its
// digest and size against d, for a publisher checking an artifact before
// it is pushed.
func VerifyBootFiles(r io.Reader, d Descriptor, want []BootFile) error {
	h := sha256.New()
	cr := &countReader{r: io.TeeReader(r, h)}
	if _, err := ReadBootFiles(cr, want); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest || cr.n != d.Size {
		return fmt.Errorf("board files layer: %d bytes hashing to %s, the manifest says %d bytes, %s (%s)", cr.n, got, d.Size, d.Digest, rebuild)
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// bootFilesBytes is the listing's total, for messages.
func bootFilesBytes(files []BootFile) int64 {
	var n int64
	for _, f := range files {
		n += f.Size
	}
	return n
}
