// Package artifact is the OS update artifact's format: the OCI manifest
// `cairn push` writes and the agent reads, one per board. It holds the
// media types, the annotations and the config, and checks what a registry
// sent before anything acts on it. It imports only the contract package and
// nothing heavy, so the builder and the agent share it.
//
// An artifact is an OCI image manifest with ArtifactType, a config blob of
// ConfigMediaType (Config) and these layers, each at most once:
//
//	SlotMediaType    the slot's squashfs, stored as is (already compressed),
//	                 so an offset in the blob is an offset in the slot
//	KernelMediaType  the kernel image
//	InitrdMediaType  the initramfs
//	ChunksMediaType  the slot's content-defined chunk index (agent/update/chunk)
//	BootFilesMediaType  the board files of a slot's boot partition, a tar
//	                 (only on boards that have them: the Raspberry Pi;
//	                 see WriteBootFiles)
//
// Several boards pushed to one reference form an OCI index whose
// descriptors carry the same board and arch annotations.
package artifact

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Media types.
const (
	// ArtifactType is the manifest's artifactType.
	ArtifactType = "application/vnd.cairn.update.v1"
	// ConfigMediaType is the config blob's media type (Config as JSON).
	ConfigMediaType = "application/vnd.cairn.update.config.v1+json"
	// SlotMediaType is the slot squashfs layer.
	SlotMediaType = "application/vnd.cairn.slot.v1.squashfs"
	// KernelMediaType is the kernel layer.
	KernelMediaType = "application/vnd.cairn.kernel.v1"
	// InitrdMediaType is the initramfs layer.
	InitrdMediaType = "application/vnd.cairn.initrd.v1"
	// ChunksMediaType is the chunk index layer.
	ChunksMediaType = "application/vnd.cairn.chunks.v1+json"

	// ManifestMediaType and IndexMediaType are OCI's.
	ManifestMediaType = "application/vnd.oci.image.manifest.v1+json"
	IndexMediaType    = "application/vnd.oci.image.index.v1+json"
)

// Annotations on the manifest (and on its descriptor in an index).
const (
	AnnotationVersion = "org.opencontainers.image.version"
	AnnotationTitle   = "org.opencontainers.image.title" // the spec's name; on a layer, its file name
	AnnotationCreated = "org.opencontainers.image.created"
	AnnotationBoard   = "dev.cairn.board"
	AnnotationArch    = "dev.cairn.arch"
)

// MaxConfigSize bounds a config blob; a larger one is refused unread.
const MaxConfigSize = 64 << 10

// Config is the artifact's config blob: what the update is, for whom, and
// how its kernel boots. The agent checks it before touching a slot.
type Config struct {
	// Name is the image spec's name.
	Name string `json:"name"`
	// Version is the OS version (semantic-version style).
	Version string `json:"version"`
	// Board and Arch are what the artifact is for (board name, amd64 or arm64).
	Board string `json:"board"`
	Arch  string `json:"arch"`
	// Kernel is the kernel's release (uname -r).
	Kernel string `json:"kernel,omitempty"`
	// Cmdline is the kernel command line without the slot parameter.
	Cmdline []string `json:"cmdline"`
	// Created is the build's time (SOURCE_DATE_EPOCH), RFC 3339.
	Created string `json:"created,omitempty"`
	// BootFiles list the board files layer's files (BootFilesMediaType),
	// in its order; none on a board whose boot loader takes no board
	// files (UEFI).
	BootFiles []BootFile `json:"bootFiles,omitempty"`
}

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	versionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]{1,64})?(\+[0-9A-Za-z.-]{1,64})?$`)
	boardRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	archRE    = regexp.MustCompile(`^(amd64|arm64)$`)
)

// ParseConfig decodes and checks a config blob from a registry: every
// field present and well formed, nothing that could add a kernel parameter
// line or a slot of its own.
func ParseConfig(b []byte) (*Config, error) {
	if len(b) > MaxConfigSize {
		return nil, fmt.Errorf("update config is %d bytes, more than the %d allowed (not a Cairn artifact?)", len(b), MaxConfigSize)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("update config is not JSON: %v (not a Cairn artifact?)", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks each field's form.
func (c *Config) Validate() error {
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("update config: name %q is not an image name (lowercase letters, digits, dashes)", trunc(c.Name))
	}
	if !versionRE.MatchString(c.Version) {
		return fmt.Errorf("update config: version %q is not a semantic version like 1.2.0", trunc(c.Version))
	}
	if !boardRE.MatchString(c.Board) {
		return fmt.Errorf("update config: board %q is not a board name", trunc(c.Board))
	}
	if !archRE.MatchString(c.Arch) {
		return fmt.Errorf("update config: arch %q is not amd64 or arm64", trunc(c.Arch))
	}
	if len(c.Cmdline) > 256 {
		return fmt.Errorf("update config: %d kernel parameters, more than 256", len(c.Cmdline))
	}
	for _, a := range c.Cmdline {
		if a == "" || len(a) > 1024 || strings.ContainsAny(a, " \t\r\n\x00") {
			return fmt.Errorf("update config: kernel parameter %q is empty, too long or holds white space", trunc(a))
		}
		if strings.HasPrefix(a, contract.SlotParam+"=") {
			return fmt.Errorf("update config: the kernel command line names a slot (%q); the agent adds the slot", trunc(a))
		}
	}
	if strings.ContainsAny(c.Kernel+c.Created, "\r\n\x00") {
		return fmt.Errorf("update config: kernel or created holds a line break")
	}
	return checkBootFiles(c.BootFiles)
}

// Check refuses an artifact made for another board or arch.
func (c *Config) Check(board, arch string) error {
	if c.Arch != arch {
		return fmt.Errorf("artifact %s %s is for arch %s, this node is %s (push the spec for board %s)", c.Name, c.Version, c.Arch, arch, board)
	}
	if c.Board != board {
		return fmt.Errorf("artifact %s %s is for board %s, this node is %s (push the spec with --board %s)", c.Name, c.Version, c.Board, board, board)
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
