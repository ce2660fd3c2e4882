package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/builder/disk/disktest"
	"github.com/cairn-edge/cairn/builder/pki"
)

func TestProvisionCommand(t *testing.T) {
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	if _, err := pki.Ensure(pkiDir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	img := disktest.Image(t)
	tests := []struct {
		args    []string
		want    string
		wantErr string
	}{
		{args: []string{"--pki", pkiDir, "--name", "edge-1", img}, want: "node edge-1"},
		{args: []string{"--pki", pkiDir, "--name", "edge-2", img}, wantErr: `already has the identity of node "edge-1": pass --replace`},
		{args: []string{img, "--replace", "--name", "edge-2", "--address", "10.0.0.5", "--pki", pkiDir}, want: "node edge-2"},
		{args: []string{"--pki", pkiDir, img}, wantErr: "no node name: pass --name NAME"},
		{args: []string{"--pki", pkiDir, "--name", "edge-1"}, wantErr: "no disk"},
		{args: []string{"--pki", pkiDir, "--name", "edge-1", img, img}, wantErr: "provision one disk at a time"},
		{args: []string{"--name", "edge-1", img}, wantErr: "which PKI? pass --pki DIR"},
		{args: []string{"--pki", filepath.Join(dir, "nopki"), "--name", "edge-1", img}, wantErr: "has no ca.crt"},
		{args: []string{"--pki", pkiDir, "--name", "edge-1", "/dev/null"}, wantErr: "neither a disk image file nor a block device"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"provision"}, tt.args...), &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(stdout.String(), tt.want) {
				t.Fatalf("err = %v, stdout = %q, want %q", err, stdout.String(), tt.want)
			}
		})
	}
	// The node's client config, beside the image, asks for that node.
	c, err := pki.LoadClientConfig(filepath.Join(filepath.Dir(img), "edge-2.node.yaml"))
	if err != nil || c.ServerName != "edge-2" || c.Server != "https://edge-2:7443" {
		t.Fatalf("edge-2.node.yaml: %+v, %v", c, err)
	}
	if st, _ := os.Stat(filepath.Join(filepath.Dir(img), "edge-2.node.yaml")); st.Mode().Perm() != 0o600 {
		t.Errorf("client config mode %v", st.Mode().Perm())
	}
}
