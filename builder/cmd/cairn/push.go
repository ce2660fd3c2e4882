package main

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-edge/cairn/agent/update/sign"
	"github.com/cairn-edge/cairn/builder/build"
	"github.com/cairn-edge/cairn/builder/push"
	"github.com/cairn-edge/cairn/builder/signature"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const pushUsage = `usage: cairn push -f SPEC --board BOARD [--board BOARD2 …] (--key cairn.key | --unsigned) [--insecure] [-o OUTDIR] REF
       cairn push --artifact DIR.oci [--artifact DIR2.oci …] (--key cairn.key | --unsigned) [--insecure] REF

Builds the update artifact of each board (cairn build --format oci, into
OUTDIR) and pushes it to REF, a tag: one board's manifest, or an index over
several boards. --artifact pushes artifacts built before instead. Each
manifest and the index are signed with --key before the tag moves.

`

// cmdPush builds (or takes) update artifacts and pushes them.
//
// It always builds: a build is a pure function of its inputs, so a
// rebuild of unchanged inputs is byte-identical and the push then finds
// every blob in the registry and uploads none. Deciding from the
// .inputs.json record instead would miss what it does not list (the
// spec's own settings, the overlay, our binaries). --artifact pushes
// exactly what an earlier build wrote.
func cmdPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("push", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, pushUsage)
		fs.PrintDefaults()
	}
	specFile := fs.String("f", "", "image spec file (e.g. images/minimal.yaml)")
	var boardNames, artifacts argList
	fs.Var(&boardNames, "board", "board to build and push (a file in --boards, or a board .yaml); repeat it for several boards")
	fs.Var(&artifacts, "artifact", "an OCI layout directory cairn build --format oci wrote, pushed as it is instead of building; repeat it for several boards")
	boards := fs.String("boards", "boards", "directory of board definitions")
	keyPath := fs.String("key", "", "private key to sign with (cairn keygen makes one)")
	unsigned := fs.Bool("unsigned", false, "push without a signature (nodes accept it only where the spec's update section allows unsigned artifacts)")
	insecure := fs.Bool("insecure", false, "allow a registry that speaks plain HTTP (automatic for localhost and 127.0.0.1)")
	out := fs.String("o", "out", "output directory of the builds")
	cache := fs.String("cache", defaultCache(), "input cache directory ($CAIRN_CACHE)")
	bin := fs.String("bin-dir", "out/bin", "directory of our binaries per arch (BIN/linux-<arch>/cairn-init)")
	pkiDir := fs.String("pki", "", "directory of the node API's CA and keys ($CAIRN_PKI; default ~/.config/cairn/pki/<spec name>), as for cairn build")
	verbose := fs.Bool("v", false, "verbose logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 0:
		return errors.New("no reference to push to: pass REF last, e.g. cairn push -f images/minimal.yaml --board qemu-x86_64 --key cairn.key 127.0.0.1:5000/cairn/minimal:1.0.0")
	case fs.NArg() > 1:
		return fmt.Errorf("unexpected argument %q after the reference %s (flags go before REF)", fs.Arg(1), fs.Arg(0))
	}

	// Everything that can be refused is refused before a build starts.
	var key *ecdsa.PrivateKey
	switch {
	case *keyPath != "" && *unsigned:
		return errors.New("--key and --unsigned together: sign with --key, or pass --unsigned alone to push without a signature")
	case *keyPath == "" && !*unsigned:
		return errors.New("no signing key: pass --key cairn.key (make a key pair with cairn keygen and list cairn.pub in the spec's update.keys), or --unsigned to push without a signature")
	case *keyPath != "":
		var err error
		if key, err = sign.LoadPrivateKey(*keyPath); err != nil {
			return fmt.Errorf("--key: %w", err)
		}
	}
	ref, err := push.ParseRef(fs.Arg(0), *insecure)
	if err != nil {
		return err
	}
	setupLog(stderr, *verbose)
	if len(artifacts) > 0 && (*specFile != "" || len(boardNames) > 0) {
		return errors.New("--artifact pushes artifacts built before: pass it without -f and --board (or drop it to build)")
	}
	var imgs []*spec.Image
	if len(artifacts) == 0 {
		if imgs, err = loadImages(*specFile, *boards, boardNames); err != nil {
			return err
		}
	}
	// The registry is asked before the build, which takes a while.
	opt := push.Options{}
	if err := push.Check(ctx, ref, opt); err != nil {
		return err
	}
	dirs := []string(artifacts)
	if len(artifacts) == 0 {
		if dirs, err = buildArtifacts(ctx, imgs, build.Options{OutDir: *out, BinDir: *bin, PKIDir: *pkiDir, Format: "oci"}, *cache); err != nil {
			return err
		}
	}
	arts, err := push.Open(dirs...)
	if err != nil {
		return err
	}
	if key != nil {
		opt.Sign = func(ctx context.Context, d name.Digest, opts ...remote.Option) error {
			return signature.Attach(ctx, d, key, opts...)
		}
	}
	res, err := push.Push(ctx, ref, arts, opt)
	if err != nil {
		return err
	}
	printPushed(stdout, res)
	return nil
}

// loadImages loads the spec on each board: every board before the first
// build, so a misspelt second board costs no build.
func loadImages(specFile, boards string, boardNames []string) ([]*spec.Image, error) {
	if specFile == "" {
		return nil, errors.New("no image spec: pass -f FILE, e.g. -f images/minimal.yaml (or --artifact DIR.oci to push a build you have)")
	}
	if len(boardNames) == 0 {
		return nil, fmt.Errorf("no board: pass --board NAME, once per board (available: %s)", strings.Join(spec.BoardNames(boards), ", "))
	}
	s, err := spec.LoadSpec(specFile)
	if err != nil {
		return nil, err
	}
	var imgs []*spec.Image
	for _, bn := range boardNames {
		b, err := spec.LoadBoard(boards, bn)
		if err != nil {
			return nil, err
		}
		for _, o := range imgs {
			if o.Board.Name == b.Name {
				return nil, fmt.Errorf("--board %s is given twice", b.Name)
			}
		}
		imgs = append(imgs, spec.Merge(s, b))
	}
	return imgs, nil
}

// buildArtifacts builds each image as an OCI artifact and returns the
// layout directories.
func buildArtifacts(ctx context.Context, imgs []*spec.Image, opt build.Options, cache string) ([]string, error) {
	c, err := source.OpenCache(cache)
	if err != nil {
		return nil, err
	}
	opt.Cache = c
	if opt.PKIDir == "" {
		opt.PKIDir = defaultPKI(imgs[0].Spec.Name)
	}
	var dirs []string
	for _, img := range imgs {
		res, err := build.Build(ctx, img, opt)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, res.Image)
	}
	return dirs, nil
}

// printPushed prints the reference pinned to its digest first (what to
// give cairn node upgrade), then each board's manifest.
func printPushed(w io.Writer, res *push.Result) {
	signed := "signed"
	if !res.Signed {
		signed = "unsigned"
	}
	what := "board " + res.Manifests[0].Board
	if res.Index {
		what = fmt.Sprintf("index of %d boards", len(res.Manifests))
	}
	fmt.Fprintf(w, "%s@%s\t%s %s, %s; %s\n", res.Ref, res.Digest, res.Manifests[0].Version, what, signed, sizes(res.Uploaded, res.Present))
	if res.Index {
		for _, m := range res.Manifests {
			fmt.Fprintf(w, "  %s\t%s\t%s@%s\n", m.Board, m.Arch, res.Ref.Context(), m.Digest)
		}
	}
}

func sizes(uploaded, present int64) string {
	mib := func(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
	if present == 0 {
		return mib(uploaded) + " uploaded"
	}
	return fmt.Sprintf("%s uploaded, %s already there", mib(uploaded), mib(present))
}
