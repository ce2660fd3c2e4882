package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/api/crl"
	"github.com/cairn-edge/cairn/agent/contract"
)

// openCRL opens the node API's revocation list: the newer of the one baked
// into the slot and the one last pushed. A stored list that does not parse
// (it is only ever written verified and atomically, so only a damaged disk
// makes one) is moved aside, and warning says so, rather than leaving the
// node without its management API: the baked list still holds, and an
// admin pushes crl.pem again.
func openCRL() (store *crl.Store, warning string, err error) {
	caPEM, err := os.ReadFile(api.CAFile)
	if err != nil {
		return nil, "", err
	}
	b, _ := pem.Decode(caPEM)
	if b == nil {
		return nil, "", fmt.Errorf("%s holds no PEM certificate", api.CAFile)
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", api.CAFile, err)
	}
	store, err = crl.Open(ca, contract.APICRLBaked, contract.APICRLFile)
	if err == nil {
		return store, "", nil
	}
	warning = fmt.Sprintf("revocation list: %v; moved aside to %s.bad: push the PKI directory's crl.pem again (cairn node revoke)", err, contract.APICRLFile)
	if err := os.Rename(contract.APICRLFile, contract.APICRLFile+".bad"); err != nil {
		return nil, "", err
	}
	store, err = crl.Open(ca, contract.APICRLBaked, contract.APICRLFile)
	return store, warning, err
}
