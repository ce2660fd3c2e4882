package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/api/role"
	"github.com/cairn-edge/cairn/builder/pki"
)

const nodeIssueUsage = `usage: cairn node issue --pki DIR --name NAME --role ROLE -o FILE [--server HOST[:PORT]] [--node NODE]

Issues a client credential from the CA in the PKI directory (its ca.key must
be there) and writes it as a client config like the node.yaml cairn build
writes (mode 0600: it holds the private key). The certificate is recorded as
DIR/issued/NAME.crt, so cairn node revoke finds it by name.

roles:
  monitor   status, the service list, metrics
  operator  also logs, restart, reboot, upgrade
  admin     everything: also shutdown, kubeconfig, join-kubeconfig, revocation lists
`

const nodeRevokeUsage = `usage: cairn node revoke --pki DIR [--config FILE [--server HOST[:PORT]] [--name NODE]] NAME

Adds the certificate called NAME (issued by cairn node issue, or the
builder's own client) to the PKI directory's revocation list, DIR/crl.pem,
signed by the CA with the next CRL number. With --config it then pushes the
list to that node (POST /v1/crl, an admin credential's job); images built
from DIR from now on carry it. A node refuses revoked clients at the TLS
handshake.
`

// pkiFlag is --pki, required: issuing and revoking work on an existing CA.
func pkiFlag(fs *flag.FlagSet) *string {
	return fs.String("pki", os.Getenv("CAIRN_PKI"), "the PKI directory cairn build used (its ca.key must be there) ($CAIRN_PKI)")
}

func checkPKIDir(cmd, dir string) error {
	if dir == "" {
		return fmt.Errorf("cairn node %s needs --pki DIR, the PKI directory cairn build used (or set CAIRN_PKI)", cmd)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
		return fmt.Errorf("--pki %s: no ca.crt there: point --pki at the directory cairn build used (cairn build --pki, $CAIRN_PKI or ~/.config/cairn/pki/<spec name>)", dir)
	}
	return nil
}

// cmdNodeIssue is cairn node issue.
func cmdNodeIssue(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("node issue", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, nodeIssueUsage) }
	dir := pkiFlag(fs)
	name := fs.String("name", "", "the credential's name, shown in the node's audit log (e.g. grafana, ops-laptop)")
	roleName := fs.String("role", "", "monitor, operator or admin")
	out := fs.String("o", "", "client config file to write")
	server := fs.String("server", "", "node address written into the config, HOST[:PORT] or https://HOST[:PORT] (default as cairn build's)")
	node := fs.String("node", "", "the node's name the config checks its certificate for (default: the host dialled, as cairn build's node.yaml)")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return fmt.Errorf("unexpected argument %q to cairn node issue (the name goes in --name)", pos[0])
	case *name == "":
		return errors.New("cairn node issue needs --name NAME, e.g. --name grafana")
	case *roleName == "":
		return errors.New("cairn node issue needs --role ROLE: monitor, operator or admin")
	case *out == "":
		return errors.New("cairn node issue needs -o FILE, the client config to write (e.g. -o grafana.node.yaml)")
	}
	if err := checkPKIDir("issue", *dir); err != nil {
		return err
	}
	r, err := role.Parse(*roleName)
	if err != nil {
		return fmt.Errorf("--role: %w", err)
	}
	if *node != "" {
		if _, err := pki.NodeNames(*node, nil); err != nil {
			return fmt.Errorf("--node: %w", err)
		}
	}
	addr := fmt.Sprintf("https://%s:%d", pki.DefaultNodeName, api.DefaultPort)
	if *server != "" {
		if addr, err = serverURL(*server); err != nil {
			return fmt.Errorf("--server: %w", err)
		}
	}
	p, err := pki.IssueClient(*dir, *name, r, time.Now())
	if err != nil {
		return err
	}
	if err := pki.WriteClientConfig(*out, addr, *node, p); err != nil {
		return err
	}
	c := p.Client.Cert
	fmt.Fprintf(stdout, "issued %s (role %s, serial %s, valid until %s): wrote %s (it holds the private key: keep it like a password)\n",
		*name, r, c.SerialNumber.Text(16), c.NotAfter.Format(time.DateOnly), *out)
	return nil
}

// cmdNodeRevoke is cairn node revoke.
func cmdNodeRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("node revoke", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, nodeRevokeUsage) }
	dir := pkiFlag(fs)
	config := fs.String("config", "", "push the list to the node this admin client config reaches")
	server := fs.String("server", "", "with --config: the node's address, overriding the config's")
	name := fs.String("name", "", "with --config: the node's name, which its certificate must carry (as for cairn node)")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return errors.New("cairn node revoke needs the credential's name, e.g. cairn node revoke --pki DIR grafana")
	case len(pos) > 1:
		return fmt.Errorf("unexpected argument %q to cairn node revoke (one name at a time)", pos[1])
	case (*server != "" || *name != "") && *config == "":
		return errors.New("--server and --name need --config, an admin client config to push the list with")
	}
	if err := checkPKIDir("revoke", *dir); err != nil {
		return err
	}
	rev, err := pki.Revoke(*dir, pos[0], time.Now())
	if err != nil {
		return err
	}
	crlPath := filepath.Join(*dir, pki.CRLFile)
	if rev.Already {
		fmt.Fprintf(stdout, "%s (serial %s) was revoked already: %s is CRL number %s\n", pos[0], rev.Cert.SerialNumber.Text(16), crlPath, rev.CRL.Number)
	} else {
		fmt.Fprintf(stdout, "revoked %s (serial %s): %s is now CRL number %s, %d revoked; images built from %s carry it\n", pos[0], rev.Cert.SerialNumber.Text(16), crlPath, rev.CRL.Number, rev.CRL.Len(), *dir)
	}
	if *config == "" {
		fmt.Fprintf(stdout, "push it to running nodes: cairn node revoke --pki %s --config NODE.yaml [--server HOST] %s\n", *dir, pos[0])
		return nil
	}
	c, addr, err := nodeClient(*config, *server, *name)
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	rep, err := c.InstallCRL(ctx, rev.CRL.PEM)
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.StatusCode == 409 {
		return fmt.Errorf("the node at %s holds a newer revocation list than %s (%s): was it revoked with another copy of the PKI directory? Use that copy's crl.pem", addr, crlPath, apiErr.Message)
	}
	if err != nil {
		return explainNodeError(err, addr)
	}
	fmt.Fprintf(stdout, "%s: CRL number %s in force, %d revoked\n", addr, rep.Number, rep.Revoked)
	return nil
}
