package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/qemu-tests/picard"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
	"github.com/cairn-edge/cairn/qemu-tests/testimage"
)

// piBoard is the Raspberry Pi's card on the Pi QEMU emulates (raspi3b),
// TestRaspberryPi's board.
const piBoard = "qemu-tests/testdata/qemu-raspi3b.yaml"

// benchPi measures the boot of the minimal image's Raspberry Pi card
// under the Pi harness (picard: QEMU's raspi3b, the Pi 4 firmware's part
// played by the host), a fresh card each run.
func benchPi(env *testimage.Env, tmp string, runs int) error {
	if env.Cache == "" {
		env.Cache = filepath.Join(tmp, "cache")
	}
	res, err := env.Minimal(filepath.Join(env.Root, piBoard), filepath.Join(tmp, "out-pi"))
	if err != nil {
		return err
	}
	return timeBoots("qemu-raspi3b (Pi harness, SD card)", runs, func() (*qemu.VM, func(), error) {
		disk := filepath.Join(tmp, "pi.img")
		if err := qemu.CopySparse(disk, res.Image); err != nil {
			return nil, nil, err
		}
		if err := os.Truncate(disk, picard.SDSize); err != nil {
			return nil, nil, err
		}
		dir, err := os.MkdirTemp(tmp, "pi-boot-")
		if err != nil {
			return nil, nil, err
		}
		card := picard.Card{Disk: disk}
		opts, _, err := card.Boot(dir)
		if err != nil {
			return nil, nil, err
		}
		vm, err := qemu.Start(context.Background(), opts...)
		return vm, func() { os.Remove(disk); os.RemoveAll(dir) }, err
	})
}
