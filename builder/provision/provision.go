// Package provision gives one node its own identity: a key and a
// certificate for its name, issued on the workstation by the PKI the image
// was built with and written onto the node's boot partition (the ESP's
// per-node files cairn-node.crt and cairn-node.key), where its agent
// serves the node API with them.
//
//	p, err := pki.Ensure(dir, pki.Options{})
//	res, err := provision.Disk("edge-1.img", p, provision.Options{Name: "edge-1"})
//
// The same image is written to every card of a fleet; each card then gets
// its own identity, so one card read by someone impersonates only that
// node. The key exists only on that card: the PKI directory keeps the
// certificate (nodes/NAME.crt), not the key.
package provision

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/pki"
)

// Options say who the node is.
type Options struct {
	// Name is the node's name, which its certificate carries and clients
	// check: a lowercase host name such as edge-1.
	Name string
	// Addresses are extra DNS names or IP addresses the certificate
	// carries, for clients that dial the node by them.
	Addresses []string
	// Replace allows replacing an identity the disk already has.
	Replace bool
}

// Result is what Disk wrote.
type Result struct {
	Name string
	// Names are the certificate's DNS names and addresses.
	Names []string
	// NotAfter is when the certificate expires.
	NotAfter time.Time
	// Replaced is the name of the identity replaced, if any.
	Replaced string
}

// Disk writes a new identity for opt.Name, issued by p, onto the ESP of
// the Cairn disk at path (an image file or a block device). A disk that
// is not Cairn's, or that has an identity already (unless opt.Replace),
// is refused before anything is issued or written.
func Disk(path string, p *pki.PKI, opt Options) (*Result, error) {
	if _, err := pki.NodeNames(opt.Name, opt.Addresses); err != nil {
		return nil, err
	}
	flag := os.O_RDWR
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if st.Mode()&fs.ModeDevice != 0 && st.Mode()&fs.ModeCharDevice == 0 {
		flag |= os.O_EXCL // Linux: refused while any of its partitions is mounted
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is neither a disk image file nor a block device", path)
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s to write: %w (a block device must not be mounted)", path, err)
	}
	defer f.Close()
	esp, err := disk.OpenESP(f)
	if err != nil {
		return nil, err
	}
	res := &Result{Name: opt.Name}
	old, err := esp.ReadFile(contract.NodeCertFileName)
	switch {
	case err == nil:
		res.Replaced = certName(old)
		if !opt.Replace {
			return nil, fmt.Errorf("%s already has the identity of node %s: pass --replace to give it a new one (clients then reach it by the new name only)", path, res.Replaced)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	pair, err := p.IssueNode(opt.Name, opt.Addresses)
	if err != nil {
		return nil, err
	}
	// The key first: a write cut in between leaves a pair that does not
	// match, which the node reports, rather than an old key with a new name.
	if err := esp.WriteFile(contract.NodeKeyFileName, pair.KeyPEM); err != nil {
		return nil, err
	}
	if err := esp.WriteFile(contract.NodeCertFileName, pair.CertPEM); err != nil {
		return nil, err
	}
	if err := esp.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	res.Names, res.NotAfter = pki.CertNames(pair.Cert), pair.Cert.NotAfter
	return res, nil
}

// certName is the common name of the PEM certificate b, or a description
// when it cannot be read.
func certName(b []byte) string {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "(unreadable certificate)"
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || c.Subject.CommonName == "" {
		return "(unreadable certificate)"
	}
	return fmt.Sprintf("%q", c.Subject.CommonName)
}
