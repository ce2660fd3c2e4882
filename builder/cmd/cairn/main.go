// Command cairn is Cairn's workstation CLI: it builds images and talks to
// nodes.
//
//	cairn build -f images/minimal.yaml --board qemu-x86_64 [--format raw] [--compress zstd|xz]
//	cairn validate -f images/minimal.yaml --board qemu-aarch64
//	cairn input pack --dir DIR --arch amd64 --layout .cache/oci --tag linux-amd64
//	cairn input pack --dir DIR --arch amd64 --layout .cache/oci --tag cairn-pause-amd64 --entrypoint /pause
//	cairn provision --pki DIR --name edge-1 out/minimal-qemu-x86_64.img
//	cairn flash out/minimal-qemu-x86_64.img.zst /dev/sdb
//	cairn node --config out/edge-1.node.yaml --server 192.0.2.10 status
//	cairn keygen -o ~/.config/cairn
//	cairn push -f images/minimal.yaml --board qemu-x86_64 --key cairn.key registry.example/cairn/minimal:1.0.0
//	cairn serve --interface eth0 out/minimal-generic-x86_64.pxe
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/builder/build"
	"github.com/cairn-edge/cairn/builder/compress"
	"github.com/cairn-edge/cairn/builder/output"
	"github.com/cairn-edge/cairn/builder/plan"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

const usage = `usage: cairn <command> [flags]

commands:
  build       build a disk image from an image spec and a board
  validate    check an image spec and a board without building (references, Kubernetes manifests)
  input pack  pack a directory as an OCI image into an OCI layout (make inputs uses it)
  provision   give one node its own identity on its disk (image file or card), and its client config
  flash       write an image (.img, .img.zst, .img.xz) onto a card or disk by its block map, and verify it
  node        talk to a running node's API: status, services, restart, logs, reboot, shutdown, metrics
  keygen      make a key pair that signs update artifacts (cairn.key, cairn.pub)
  push        build the update artifact of one or more boards and push it, signed, to a registry
  serve       network-boot machines from PXE bundles: HTTP, iPXE scripts and proxy DHCP

Run 'cairn <command> -h' for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "cairn: error: %v\n", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "build":
		return cmdBuild(ctx, args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "node":
		return cmdNode(ctx, args[1:], stdout, stderr)
	case "provision":
		return cmdProvision(ctx, args[1:], stdout, stderr)
	case "flash":
		return cmdFlash(ctx, args[1:], stdout, stderr)
	case "keygen":
		return cmdKeygen(args[1:], stdout, stderr)
	case "push":
		return cmdPush(ctx, args[1:], stdout, stderr)
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "input":
		if len(args) > 1 && args[1] == "pack" {
			return cmdPack(args[2:], stdout, stderr)
		}
		return fmt.Errorf("unknown input command %q: use 'cairn input pack'", strings.Join(args[1:], " "))
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (commands: build, validate, input pack, provision, flash, node, keygen, push, serve)", args[0])
}

// imageFlags are the flags that name a spec and a board.
type imageFlags struct {
	spec, board, boards string
	verbose             bool
}

func (f *imageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.spec, "f", "", "image spec file (e.g. images/minimal.yaml)")
	fs.StringVar(&f.board, "board", "", "board name (a file in --boards) or a board .yaml file")
	fs.StringVar(&f.boards, "boards", "boards", "directory of board definitions")
	fs.BoolVar(&f.verbose, "v", false, "verbose logs")
}

func (f *imageFlags) load() (*spec.Image, error) {
	if f.spec == "" {
		return nil, errors.New("no image spec: pass -f FILE, e.g. -f images/minimal.yaml")
	}
	if f.board == "" {
		return nil, fmt.Errorf("no board: pass --board NAME (available: %s)", strings.Join(spec.BoardNames(f.boards), ", "))
	}
	s, err := spec.LoadSpec(f.spec)
	if err != nil {
		return nil, err
	}
	b, err := spec.LoadBoard(f.boards, f.board)
	if err != nil {
		return nil, err
	}
	return spec.Merge(s, b), nil
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cairn "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags go before nothing else; see 'cairn %s -h')", fs.Arg(0), strings.TrimPrefix(fs.Name(), "cairn "))
	}
	return nil
}

// parseMixed parses args where flags may come before and after the
// positional arguments, and returns those.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func setupLog(stderr io.Writer, verbose bool) {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
}

func defaultCache() string {
	if d := os.Getenv("CAIRN_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "cairn")
	}
	return ".cache/cairn"
}

func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("build", stderr)
	var f imageFlags
	f.register(fs)
	out := fs.String("o", "out", "output directory")
	cache := fs.String("cache", defaultCache(), "input cache directory ($CAIRN_CACHE)")
	bin := fs.String("bin-dir", "out/bin", "directory of our binaries per arch (BIN/linux-<arch>/cairn-init)")
	pkiDir := fs.String("pki", "", "directory of the node API's CA and keys, made if missing and reused after ($CAIRN_PKI; default ~/.config/cairn/pki/<spec name>)")
	format := fs.String("format", output.DefaultFormat, "output format: "+strings.Join(output.Formats(), ", "))
	compression := fs.String("compress", "", "also write the disk image compressed, as .img.zst or .img.xz beside the .img and .bmap: "+strings.Join(compress.Formats(), ", "))
	if err := parse(fs, args); err != nil {
		return err
	}
	// A format Cairn does not write is refused before anything is read or built.
	if _, err := output.Lookup(*format); err != nil {
		return err
	}
	comp, err := compress.Parse(*compression)
	if err != nil {
		return err
	}
	if err := build.CheckCompress(*format, comp); err != nil {
		return err
	}
	setupLog(stderr, f.verbose)
	img, err := f.load()
	if err != nil {
		return err
	}
	c, err := source.OpenCache(*cache)
	if err != nil {
		return err
	}
	if *pkiDir == "" {
		*pkiDir = defaultPKI(img.Spec.Name)
	}
	res, err := build.Build(ctx, img, build.Options{OutDir: *out, Cache: c, BinDir: *bin, PKIDir: *pkiDir, Format: *format, Compress: comp})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\t%d MiB (slot %.1f MiB, initramfs %.1f MiB, kernel %s)\n", res.Image, res.ImageSize>>20, float64(res.SlotSize)/(1<<20), float64(res.InitramfsSize)/(1<<20), res.KernelVersion)
	if res.Bmap != "" { // the oci format has none
		fmt.Fprintln(stdout, res.Bmap)
	}
	if res.Compressed != "" {
		fmt.Fprintf(stdout, "%s\t(cairn flash %s DEVICE)\n", res.Compressed, res.Compressed)
	}
	fmt.Fprintf(stdout, "%s\n%s\t(give each node its identity: cairn provision --pki %s --name NAME DISK)\n", res.Inputs, res.NodeConfig, *pkiDir)
	return nil
}

// defaultPKI keeps an image's credentials with the user's configuration,
// not in the output directory, so that `make clean` does not orphan nodes.
func defaultPKI(specName string) string {
	if d := os.Getenv("CAIRN_PKI"); d != "" {
		return d
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "cairn", "pki", specName)
	}
	return filepath.Join(".cairn-pki", specName)
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	var f imageFlags
	f.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	img, err := f.load()
	if err != nil {
		return err
	}
	if err := plan.Check(img); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s on %s: ok (%s %s, %s)\n", img.Spec.File(), img.Board.Name, img.Spec.Name, img.Spec.Version, img.Board.Arch)
	return nil
}

func cmdPack(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("input pack", stderr)
	dir := fs.String("dir", "", "directory to pack")
	arch := fs.String("arch", "", "architecture of the content: amd64 or arm64")
	layoutDir := fs.String("layout", "", "OCI layout directory to store the image in (created if missing)")
	tag := fs.String("tag", "", "tag of the image in the layout")
	var entrypoint, cmd argList
	fs.Var(&entrypoint, "entrypoint", "the image config's Entrypoint, one argument per flag, in order (repeat it: --entrypoint /coredns --entrypoint -conf --entrypoint /Corefile); not split at spaces or commas")
	fs.Var(&cmd, "cmd", "the image config's Cmd (arguments after the entrypoint), one argument per flag, in order, like --entrypoint")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *arch == "" || *layoutDir == "" || *tag == "" {
		return errors.New("cairn input pack needs --dir, --arch, --layout and --tag")
	}
	if !slices.Contains(spec.Arches, *arch) {
		return fmt.Errorf("--arch %q is not supported: use one of %s (Go names, not x86_64/aarch64)", *arch, strings.Join(spec.Arches, ", "))
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--dir %s is not a directory", *dir)
	}
	var opts []source.PackOption
	if entrypoint != nil {
		opts = append(opts, source.WithEntrypoint(entrypoint...))
	}
	if cmd != nil {
		opts = append(opts, source.WithCmd(cmd...))
	}
	h, err := source.PackDir(*dir, *arch, *layoutDir, *tag, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "oci-layout:%s:%s@%s\n", *layoutDir, *tag, h)
	return nil
}

// argList is a flag given once per argument: each use appends one,
// verbatim, so arguments may hold spaces and commas.
type argList []string

func (a *argList) String() string { return strings.Join(*a, " ") }

func (a *argList) Set(v string) error {
	if v == "" {
		return errors.New("an empty argument (give one argument per flag)")
	}
	*a = append(*a, v)
	return nil
}
