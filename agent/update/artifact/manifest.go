package artifact

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// MaxManifestSize bounds a manifest or index; a larger one is refused unread.
const MaxManifestSize = 4 << 20

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
}

// Platform is an index entry's platform.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Index is an OCI image index.
type Index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []Descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Update is a checked artifact manifest with its layers picked out.
type Update struct {
	Manifest Manifest
	Slot     Descriptor
	Kernel   Descriptor
	Initrd   Descriptor
	// Chunks is the slot's chunk index; nil when the artifact has none
	// (then only a full download is possible).
	Chunks *Descriptor
	// BootFiles is the board files layer (BootFilesMediaType); nil on a
	// board without board files (Match checks it against the config).
	BootFiles *Descriptor
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ValidDigest reports whether d is a sha256 digest in OCI form.
func ValidDigest(d string) bool { return digestRE.MatchString(d) }

func (d Descriptor) check(what string) error {
	if !ValidDigest(d.Digest) {
		return fmt.Errorf("%s digest %q is not sha256:<64 hex>", what, trunc(d.Digest))
	}
	if d.Size < 0 {
		return fmt.Errorf("%s size %d is negative", what, d.Size)
	}
	return nil
}

// ParseUpdate decodes and checks an artifact manifest: OCI media type, our
// artifact type and config, and exactly one slot, kernel and initramfs
// layer (at most one chunk index and one board files layer) with
// well-formed digests.
func ParseUpdate(b []byte) (*Update, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the %d allowed", len(b), MaxManifestSize)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest is not JSON: %v", err)
	}
	if m.SchemaVersion != 2 || (m.MediaType != "" && m.MediaType != ManifestMediaType) {
		return nil, fmt.Errorf("manifest has media type %q (schema %d), want %s (not a Cairn update artifact)", trunc(m.MediaType), m.SchemaVersion, ManifestMediaType)
	}
	if m.ArtifactType != ArtifactType && m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("manifest's artifact type is %q, want %s (not a Cairn update artifact: push one with cairn push)", trunc(m.ArtifactType), ArtifactType)
	}
	if m.Config.MediaType != ConfigMediaType {
		return nil, fmt.Errorf("manifest's config has media type %q, want %s", trunc(m.Config.MediaType), ConfigMediaType)
	}
	if err := m.Config.check("config"); err != nil {
		return nil, err
	}
	if m.Config.Size > MaxConfigSize {
		return nil, fmt.Errorf("config is %d bytes, more than the %d allowed", m.Config.Size, MaxConfigSize)
	}
	u := &Update{Manifest: m}
	seen := map[string]bool{}
	for _, l := range m.Layers {
		var dst *Descriptor
		switch l.MediaType {
		case SlotMediaType:
			dst = &u.Slot
		case KernelMediaType:
			dst = &u.Kernel
		case InitrdMediaType:
			dst = &u.Initrd
		case ChunksMediaType:
			u.Chunks = &Descriptor{}
			dst = u.Chunks
		case BootFilesMediaType:
			u.BootFiles = &Descriptor{}
			dst = u.BootFiles
		default:
			continue // a layer of a later format: ignored
		}
		if seen[l.MediaType] {
			return nil, fmt.Errorf("manifest has two %s layers", l.MediaType)
		}
		seen[l.MediaType] = true
		if err := l.check(l.MediaType); err != nil {
			return nil, err
		}
		if l.MediaType == BootFilesMediaType && l.Size > MaxBootFilesLayer {
			return nil, fmt.Errorf("manifest's %s layer is %d bytes, more than the %d allowed (%s)", l.MediaType, l.Size, MaxBootFilesLayer, rebuild)
		}
		*dst = l
	}
	for _, mt := range []string{SlotMediaType, KernelMediaType, InitrdMediaType} {
		if !seen[mt] {
			return nil, fmt.Errorf("manifest has no %s layer (not a Cairn update artifact)", mt)
		}
	}
	return u, nil
}

// ParseIndex decodes an OCI index.
func ParseIndex(b []byte) (*Index, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("index is %d bytes, more than the %d allowed", len(b), MaxManifestSize)
	}
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("index is not JSON: %v", err)
	}
	if ix.SchemaVersion != 2 {
		return nil, fmt.Errorf("index has schema version %d, want 2", ix.SchemaVersion)
	}
	for i, d := range ix.Manifests {
		if err := d.check(fmt.Sprintf("index entry %d", i)); err != nil {
			return nil, err
		}
	}
	return &ix, nil
}

// Select picks the index's artifact for board (and arch).
func (ix *Index) Select(board, arch string) (Descriptor, error) {
	var boards []string
	for _, d := range ix.Manifests {
		b := d.Annotations[AnnotationBoard]
		if b == board && d.Annotations[AnnotationArch] == arch {
			return d, nil
		}
		if b != "" {
			boards = append(boards, b)
		}
	}
	return Descriptor{}, fmt.Errorf("the index holds no artifact for board %s (%s); it has %v (push the spec with --board %s to the same reference)", board, arch, boards, board)
}
