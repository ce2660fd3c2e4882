// Package bootentry is what is left of the builder's systemd-boot entries,
// which moved to agent/bootloader/sdboot (the entry format is
// systemd-boot's, and the agent writes entries too). It keeps the builder
// compiling until the builder writes its ESP through sdboot; then it goes.
//
// Deprecated: use sdboot.New on a bootloader.MemFS: Install, then Commit.
package bootentry

import (
	"github.com/cairn-edge/cairn/agent/bootloader/sdboot"
	"github.com/cairn-edge/cairn/agent/contract"
)

// Entry is one slot's boot entry, without a generation: its file name is
// cairn-<slot>.conf, which sdboot reads as the oldest generation.
type Entry struct {
	// Slot is "a" or "b".
	Slot string
	// Title is shown in the boot menu.
	Title string
	// Version is for people reading the ESP.
	Version string
	// Linux and Initrd are paths on the ESP.
	Linux, Initrd string
	// Options is the kernel command line.
	Options string
}

func (e Entry) sd() sdboot.Entry {
	return sdboot.Entry{Slot: contract.Slot(e.Slot), Title: e.Title, Version: e.Version, Linux: e.Linux, Initrd: e.Initrd, Options: e.Options}
}

// FileName is the entry's name under loader/entries/.
func (e Entry) FileName() string { return e.sd().FileName() }

// Render returns the entry file's content.
func (e Entry) Render() []byte { return e.sd().Render() }

// LoaderConf is loader/loader.conf.
func LoaderConf() []byte { return sdboot.LoaderConf() }
