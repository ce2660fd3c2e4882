// Package kubeconfig writes the kubeconfigs the components of cairn-kube
// use to reach the API server: one per client identity of the PKI, naming
// the certificate files in place (not copying them), so a renewed
// certificate is used without rewriting anything.
package kubeconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Write writes a kubeconfig at path for the API server at server, trusting
// the CA certificate caFile and authenticating with certFile and keyFile.
// The file is replaced atomically.
func Write(path, server, caFile, certFile, keyFile string) error {
	q := strconv.Quote
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: cairn
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: cairn
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: cairn
  context:
    cluster: cairn
    user: cairn
current-context: cairn
`, q(server), q(caFile), q(certFile), q(keyFile))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
