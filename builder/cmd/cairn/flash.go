package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/flash"
	"github.com/cairn-edge/cairn/builder/pki"
	"golang.org/x/sys/unix"
)

const flashUsage = `usage: cairn flash [flags] IMAGE DEVICE

Writes a disk image (.img, .img.zst or .img.xz, as cairn build writes
them) onto a card or disk, then reads it back to verify it. With the
block map beside the image (IMAGE.bmap, or NAME.bmap for NAME.img and
NAME.img.zst), only the blocks that hold data are written. DEVICE is the
whole card (/dev/sdb, /dev/mmcblk0; lsblk lists them): one that is
mounted, in use, holds this computer's system, or is smaller than the
image is refused. It asks before writing unless --yes.

  cairn flash out/edge-qemu-x86_64.img.zst /dev/sdb
  cairn flash --hostname edge-7 --address 192.168.1.7/24 --gateway 192.168.1.1 out/edge.img /dev/sdb

--node FILE, or --hostname, --address, --gateway and --dns, put the
per-node file ` + contract.NodeFileName + ` (this card's network settings over the
image's) on the flashed card's boot partition. --name NAME with --pki DIR
(or -f SPEC) gives the card its node identity as cairn provision does,
its certificate carrying the --address IPs too.

Flags:
`

// Seams for tests: the terminal the confirmation is asked on.
var (
	confirmIn  io.Reader = os.Stdin
	isTerminal           = func() bool {
		_, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
		return err == nil
	}
)

func cmdFlash(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("flash", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, flashUsage); fs.PrintDefaults() }
	yes := fs.Bool("yes", false, "write without asking (needed when stdin is not a terminal)")
	bmapFile := fs.String("bmap", "", "the block map (default: beside the image, see above)")
	noBmap := fs.Bool("no-bmap", false, "write the whole image, even with a block map beside it")
	nodeFile := fs.String("node", "", "a per-node file to put on the card's boot partition as "+contract.NodeFileName)
	var node flash.Node
	fs.StringVar(&node.Hostname, "hostname", "", "the node's host name, for a generated per-node file")
	fs.StringVar(&node.Interface, "interface", "eth0", "the link --address goes on (a name or a glob such as \"en*\")")
	var addrs, dns argList
	fs.Var(&addrs, "address", "a static address in CIDR form, e.g. 192.168.1.7/24 (repeatable)")
	fs.StringVar(&node.Gateway, "gateway", "", "the default route's next hop, inside an --address's subnet")
	fs.Var(&dns, "dns", "a DNS server (repeatable)")
	id := addIdentityFlags(fs)
	verbose := fs.Bool("v", false, "verbose logs")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) < 2:
		return errors.New("cairn flash needs IMAGE and DEVICE, e.g. cairn flash out/edge-qemu-x86_64.img.zst /dev/sdb")
	case len(pos) > 2:
		return fmt.Errorf("unexpected argument %q: flash one image onto one device", pos[2])
	case *bmapFile != "" && *noBmap:
		return errors.New("--bmap and --no-bmap contradict each other: pass one")
	}
	image, device := pos[0], pos[1]
	node.Addresses, node.DNS = addrs, dns
	generate := node.Hostname != "" || len(addrs) > 0 || node.Gateway != "" || len(dns) > 0
	var nodeData []byte
	switch {
	case *nodeFile != "" && generate:
		return errors.New("--node FILE and --hostname/--address/--gateway/--dns both make the per-node file: pass one or the other")
	case *nodeFile != "":
		if nodeData, err = os.ReadFile(*nodeFile); err != nil {
			return fmt.Errorf("--node: %w", err)
		}
		if err := flash.CheckNodeFile(nodeData); err != nil {
			return fmt.Errorf("--node %s: %w (the node would ignore it)", *nodeFile, err)
		}
	case generate:
		if nodeData, err = flash.NodeFile(node); err != nil {
			return err
		}
	}
	// The identity's PKI is checked before anything is written.
	var creds *pki.PKI
	if *id.name != "" {
		if creds, err = id.pki(); err != nil {
			return err
		}
	} else if *id.pkiDir != "" || *id.specFile != "" || *id.replace || *id.out != "" {
		return errors.New("--pki, -f, --replace and -o are for the node's identity: pass --name NAME too")
	}
	// Without a terminal no one can answer: refuse before reading anything.
	if !*yes && !isTerminal() {
		return errors.New("stdin is not a terminal, so cairn flash cannot ask before erasing the device: pass --yes to flash without asking")
	}
	setupLog(stderr, *verbose)
	im, err := flash.OpenImage(image, flash.ImageOptions{Bmap: *bmapFile, NoBmap: *noBmap})
	if err != nil {
		return err
	}
	dev, err := flash.CheckDevice(device, im.Size)
	if err != nil {
		return err
	}
	if !*yes {
		fmt.Fprintf(stderr, "Write %s (%d MiB) to %s?\nEverything on %s is lost. Type y to go on: ", im.Path, im.Size>>20, dev, dev.Path)
		answer, _ := bufio.NewReader(confirmIn).ReadString('\n')
		if a := strings.TrimSpace(answer); a != "y" && a != "Y" && a != "yes" {
			return fmt.Errorf("not confirmed (answered %q): nothing was written", a)
		}
	}
	res, err := flash.Flash(ctx, im, dev, flash.Options{NodeFile: nodeData})
	if err != nil {
		return err
	}
	if creds != nil {
		// The certificate also carries the static addresses the node
		// file gives it, so clients may dial the node by them.
		var ips []string
		for _, a := range node.Addresses {
			ip, _, _ := strings.Cut(a, "/")
			ips = append(ips, ip)
		}
		if err := id.provision(dev.Path, creds, ips, stdout, stderr); err != nil {
			return fmt.Errorf("the image is on %s, but its node identity is not: %w (run cairn provision on it)", dev.Path, err)
		}
	}
	slog.Info("done: the card can be removed", "device", dev.Path)
	fmt.Fprintf(stdout, "%s\t%s: %d MiB written and verified in %s (%.0f MiB/s)", dev.Path, im.Path, res.Written>>20, (res.Took + res.Verify).Round(time.Second), float64(res.Written)/(1<<20)/max(res.Took.Seconds(), 1e-3))
	if nodeData != nil {
		fmt.Fprintf(stdout, ", %s on its boot partition", contract.NodeFileName)
	}
	fmt.Fprintln(stdout, "; the card can be removed")
	return nil
}
