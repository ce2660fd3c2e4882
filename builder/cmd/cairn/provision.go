package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/builder/provision"
	"github.com/cairn-edge/cairn/builder/spec"
)

const provisionUsage = `usage: cairn provision [--pki DIR | -f SPEC] --name NAME [--address ADDR]... [--replace] [-o FILE] DISK

Gives one node its own identity for the node API: a key and a certificate
for NAME, issued by the PKI the image was built with, written onto the
boot partition of DISK (an image file, or the card or disk it was written
to). Clients then check that the node they reach is NAME. It also writes
NAME's client config (default: NAME.node.yaml beside an image file, or in
the current directory for a device).

  cairn provision --pki ~/.config/cairn/pki/shop --name edge-1 out/shop-qemu-x86_64.img
  cairn node --config out/edge-1.node.yaml --server 192.0.2.10 status

Flags:
`

func cmdProvision(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("provision", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, provisionUsage); fs.PrintDefaults() }
	id := addIdentityFlags(fs)
	var addrs argList
	fs.Var(&addrs, "address", "an extra DNS name or IP address for the certificate (repeatable)")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return errors.New("no disk: name the image file or device to provision, e.g. cairn provision --name edge-1 out/shop-qemu-x86_64.img")
	case len(pos) > 1:
		return fmt.Errorf("unexpected argument %q: provision one disk at a time", pos[1])
	case *id.name == "":
		return errors.New("no node name: pass --name NAME, e.g. --name edge-1")
	}
	p, err := id.pki()
	if err != nil {
		return err
	}
	return id.provision(pos[0], p, addrs, stdout, stderr)
}

// identityFlags are the flags that give a disk its node identity, which
// cairn provision and cairn flash --name share.
type identityFlags struct {
	pkiDir, specFile, name, out *string
	replace                     *bool
}

func addIdentityFlags(fs *flag.FlagSet) identityFlags {
	return identityFlags{
		pkiDir:   fs.String("pki", "", "the PKI directory the image was built with (default: cairn build's for -f's spec: $CAIRN_PKI or ~/.config/cairn/pki/<spec name>)"),
		specFile: fs.String("f", "", "the image spec, to find cairn build's default PKI directory"),
		name:     fs.String("name", "", "the node's name (a lowercase host name, e.g. edge-1)"),
		replace:  fs.Bool("replace", false, "replace an identity the disk already has"),
		out:      fs.String("o", "", "where to write the node's client config (default NAME.node.yaml beside an image file, or in the current directory for a device)"),
	}
}

// pki opens the PKI directory the flags name, refusing one without a CA:
// a CA made afresh would be one the image does not trust.
func (id identityFlags) pki() (*pki.PKI, error) {
	dir := *id.pkiDir
	if dir == "" {
		if *id.specFile == "" {
			return nil, errors.New("which PKI? pass --pki DIR, the directory the image was built with, or -f SPEC for cairn build's default one")
		}
		s, err := spec.LoadSpec(*id.specFile)
		if err != nil {
			return nil, err
		}
		dir = defaultPKI(s.Name)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s has no ca.crt: it is not the PKI directory an image was built with (cairn build --pki)", dir)
	}
	p, err := pki.Ensure(dir, pki.Options{})
	if err != nil {
		return nil, fmt.Errorf("PKI %s: %w", dir, err)
	}
	return p, nil
}

// provision writes the identity of the flags' node, with the extra
// names addrs, onto diskPath, and the node's client config.
func (id identityFlags) provision(diskPath string, p *pki.PKI, addrs []string, stdout, stderr io.Writer) error {
	name, out := *id.name, *id.out
	if out == "" {
		out = name + ".node.yaml"
		if st, err := os.Stat(diskPath); err == nil && st.Mode().IsRegular() {
			out = filepath.Join(filepath.Dir(diskPath), out)
		}
	}
	res, err := provision.Disk(diskPath, p, provision.Options{Name: name, Addresses: addrs, Replace: *id.replace})
	if err != nil {
		return err
	}
	slog.New(slog.NewTextHandler(stderr, nil)).Info("provisioned", "disk", diskPath, "node", res.Name, "names", strings.Join(res.Names, ","), "until", res.NotAfter.Format(time.DateOnly), "replaced", res.Replaced)
	if err := pki.WriteClientConfig(out, fmt.Sprintf("https://%s:%d", name, api.DefaultPort), name, p); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\tnode %s\n%s\t(cairn node --config %s --server HOST:PORT status)\n", diskPath, res.Name, out, out)
	return nil
}
