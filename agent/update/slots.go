package update

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cairn-edge/cairn/agent/boot/blockdev"
	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
	"golang.org/x/sys/unix"
)

// Partitions are the slot partitions of the running node, found by their
// GPT labels (contract.Slot.Label).
type Partitions struct{}

// Open implements Slots.
func (Partitions) Open(ctx context.Context, slot contract.Slot) (Device, int64, error) {
	f, size, err := openPartition(slot, os.O_RDWR)
	if err != nil {
		return nil, 0, err
	}
	return &partition{File: f}, size, nil
}

// Read implements Slots.
func (Partitions) Read(ctx context.Context, slot contract.Slot) (ReadDevice, int64, error) {
	return openPartition(slot, os.O_RDONLY)
}

func openPartition(slot contract.Slot, flag int) (*os.File, int64, error) {
	p, err := blockdev.FindPartition(slot.Label())
	if err != nil {
		return nil, 0, fmt.Errorf("finding partition %s: %w", slot.Label(), err)
	}
	size, err := blockdev.SizeBytes(p.Name)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(p.Path, flag, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("opening %s (%s): %w", p.Path, slot.Label(), err)
	}
	return f, size, nil
}

type partition struct{ *os.File }

// Sync flushes the partition and drops its pages, so reads come from disk.
func (p *partition) Sync() error {
	if err := p.File.Sync(); err != nil {
		return err
	}
	return unix.Fadvise(int(p.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// bootRebootPlain is a reboot with no argument.
var bootRebootPlain = bootloader.Reboot{}

// qualify completes a reference with the image's repository: ":TAG",
// "TAG" (no slash, no colon) and "@DIGEST" name an artifact of repo.
func qualify(ref, repo string) string {
	switch {
	case repo == "":
		return ref
	case strings.HasPrefix(ref, ":") || strings.HasPrefix(ref, "@"):
		return repo + ref
	case !strings.ContainsAny(ref, "/:@"):
		return repo + ":" + ref
	}
	return ref
}

// compareVersions orders two semantic versions (1.2.0, v1.3.0-rc.1):
// -1, 0 or 1. A pre-release sorts before its release; build metadata is
// ignored. An unparsable version sorts before every other.
func compareVersions(a, b string) int {
	pa, oka := parseVersion(a)
	pb, okb := parseVersion(b)
	switch {
	case !oka && !okb:
		return strings.Compare(a, b)
	case !oka:
		return -1
	case !okb:
		return 1
	}
	for i := 0; i < 3; i++ {
		if pa.n[i] != pb.n[i] {
			if pa.n[i] < pb.n[i] {
				return -1
			}
			return 1
		}
	}
	return comparePre(pa.pre, pb.pre)
}

type version struct {
	n   [3]uint64
	pre string
}

func parseVersion(s string) (version, bool) {
	var v version
	s = strings.TrimPrefix(s, "v")
	s, _, _ = strings.Cut(s, "+")
	s, v.pre, _ = strings.Cut(s, "-")
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return v, false
		}
		v.n[i] = n
	}
	return v, true
}

// comparePre orders pre-release strings as semantic versioning does:
// none is highest; dot-separated identifiers compare numerically when
// both are numbers, else as text; a shorter list is lower.
func comparePre(a, b string) int {
	switch {
	case a == b:
		return 0
	case a == "":
		return 1
	case b == "":
		return -1
	}
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		na, ea := strconv.ParseUint(as[i], 10, 64)
		nb, eb := strconv.ParseUint(bs[i], 10, 64)
		switch {
		case ea == nil && eb == nil && na != nb:
			if na < nb {
				return -1
			}
			return 1
		case ea == nil && eb != nil:
			return -1
		case ea != nil && eb == nil:
			return 1
		case as[i] != bs[i]:
			return strings.Compare(as[i], bs[i])
		}
	}
	switch {
	case len(as) < len(bs):
		return -1
	case len(as) > len(bs):
		return 1
	}
	return 0
}
