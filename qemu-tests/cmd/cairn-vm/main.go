// Command cairn-vm boots a Cairn disk image under QEMU with the serial
// console on this terminal; `make run` uses it.
//
//	cairn-vm -arch amd64 -image out/minimal-qemu-x86_64.img
//
// The image is first copied (sparse) to a run disk grown to -disk-size, so
// the build output stays untouched and the first boot can grow CAIRN-DATA.
// The node API (port 7443 in the guest) is forwarded to 127.0.0.1:-api-port,
// so `cairn node --server 127.0.0.1:7443 status` reaches the VM.
// Press Ctrl-C to stop the VM, or power it off from inside.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cairn-vm: error: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	archName := flag.String("arch", "amd64", "guest architecture: amd64 or arm64")
	image := flag.String("image", "", "disk image built by cairn build")
	disk := flag.String("disk", "", "run disk (default: the image name with .run.img); reused with -keep")
	size := flag.Int64("disk-size", 4<<30, "size the run disk is grown to, in bytes")
	keep := flag.Bool("keep", false, "boot the existing run disk again instead of a fresh copy")
	mem := flag.Int("m", 1024, "memory in MiB")
	apiPort := flag.Int("api-port", 7443, "port on 127.0.0.1 that reaches the node API in the VM (0: none)")
	flag.Parse()
	arch, err := qemu.ParseArch(*archName)
	if err != nil {
		return err
	}
	if *image == "" {
		return fmt.Errorf("pass -image out/<spec>-<board>.img (build one with make image)")
	}
	if *disk == "" {
		*disk = strings.TrimSuffix(*image, ".img") + ".run.img"
	}
	if _, err := os.Stat(*disk); !*keep || err != nil {
		if err := qemu.CopySparse(*disk, *image); err != nil {
			return fmt.Errorf("%w (build the image first: make image)", err)
		}
	}
	if err := os.Truncate(*disk, *size); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(os.Stderr, "cairn-vm: booting %s (%s) — Ctrl-C stops the VM\n", *disk, arch)
	opts := []qemu.Option{qemu.WithArch(arch), qemu.WithDisk(*disk), qemu.WithMemory(*mem),
		qemu.WithNetwork(), qemu.WithTerminal(os.Stdin, os.Stdout)}
	if *apiPort != 0 {
		opts = append(opts, qemu.WithPortForward(*apiPort, api.DefaultPort))
		fmt.Fprintf(os.Stderr, "cairn-vm: node API at 127.0.0.1:%d\n", *apiPort)
	}
	vm, err := qemu.Start(ctx, opts...)
	if err != nil {
		return err
	}
	err = vm.Wait(100 * 365 * 24 * time.Hour)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
