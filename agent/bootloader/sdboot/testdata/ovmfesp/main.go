// Command ovmfesp runs one sdboot operation on an ESP tree in a directory,
// for ovmf.sh: the entries systemd-boot sees under OVMF are the ones this
// package writes.
//
//	go run ./testdata/ovmfesp DIR install SLOT VERSION MARKER KERNEL
//	go run ./testdata/ovmfesp DIR arm|commit|markbad|default SLOT
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/bootloader/sdboot"
	"github.com/cairn-edge/cairn/agent/contract"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ovmfesp:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: ovmfesp DIR OP SLOT [VERSION MARKER KERNEL]")
	}
	bl := sdboot.New(bootloader.DirFS(args[0]), slog.Default())
	slot, err := contract.ParseSlot(args[2])
	if err != nil {
		return err
	}
	switch args[1] {
	case "install":
		if len(args) != 6 {
			return fmt.Errorf("usage: ovmfesp DIR install SLOT VERSION MARKER KERNEL")
		}
		k, err := os.Open(args[5])
		if err != nil {
			return err
		}
		defer k.Close()
		return bl.Install(slot, bootloader.BootFiles{
			Kernel:  k,
			Cmdline: []string{"console=ttyS0", "panic=-1", "cairn.marker=" + args[4]},
			Title:   "Cairn " + args[3],
			Version: args[3],
		})
	case "arm":
		_, err := bl.ArmTrial(slot)
		return err
	case "commit":
		return bl.Commit(slot)
	case "markbad":
		return bl.MarkBad(slot)
	case "default":
		d, err := bl.Default()
		if err == nil {
			fmt.Println(d)
		}
		return err
	}
	return fmt.Errorf("unknown operation %q", args[1])
}
