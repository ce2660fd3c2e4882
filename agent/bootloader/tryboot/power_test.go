package tryboot

import (
	"errors"
	"io"

	"github.com/cairn-edge/cairn/agent/bootloader"
)

// The boot partitions behind a power switch, for the scenarios whose every
// state pifirmware.Boot judges.

// errCut is the power going off.
var errCut = errors.New("power cut")

// power counts the card's mutations and cuts after left of them: every
// later mutation, on any partition, fails with errCut and changes nothing.
// left < 0 never cuts. A WriteFile, Remove or Overwrite is done whole or
// not at all, as the FS and Overwriter contracts say.
type power struct {
	left int
	log  []string
}

func (p *power) mutate(what string) error {
	if p.left == 0 {
		return errCut
	}
	p.left--
	p.log = append(p.log, what)
	return nil
}

// cutFS is one partition behind the power. With tornRename (CAIRN-AUTO),
// a WriteFile over an existing file is two mutations, a removal and a
// write, as a FAT rename is not atomic: a cut in between leaves no file
// (the FS contract promises more, which the boot partitions get; the
// firmware reading autoboot.txt by its name is where a lost one bricks).
type cutFS struct {
	bootloader.FS
	label      string
	p          *power
	tornRename bool
}

func (c *cutFS) WriteFile(name string, r io.Reader) error {
	if _, err := c.FS.ReadFile(name); err == nil && c.tornRename {
		if err := c.Remove(name); err != nil {
			return err
		}
	}
	if err := c.p.mutate("write " + c.label + "/" + name); err != nil {
		return err
	}
	return c.FS.WriteFile(name, r)
}

func (c *cutFS) Remove(name string) error {
	if err := c.p.mutate("remove " + c.label + "/" + name); err != nil {
		return err
	}
	return c.FS.Remove(name)
}

func (c *cutFS) Overwrite(name string, data []byte) error {
	if err := c.p.mutate("overwrite " + c.label + "/" + name); err != nil {
		return err
	}
	return c.FS.(bootloader.Overwriter).Overwrite(name, data)
}
