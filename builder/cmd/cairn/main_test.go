package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func TestRunErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"build"}, "no image spec: pass -f FILE"},
		{[]string{"build", "-f", "../../../images/minimal.yaml"}, "no board: pass --board NAME"},
		{[]string{"validate", "-f", "../../../images/minimal.yaml", "--board", "nosuch", "--boards", "../../../boards"}, `unknown board "nosuch"`},
		{[]string{"validate", "-f", "nosuch.yaml", "--board", "qemu-x86_64"}, "pass an existing file with -f"},
		{[]string{"validate", "-f", "../../../images/minimal.yaml", "--board", "qemu-x86_64", "--boards", "../../../boards", "extra"}, `unexpected argument "extra"`},
		{[]string{"build", "-f", "../../../images/minimal.yaml", "--board", "qemu-x86_64", "--boards", "../../../boards", "--format", "iso", "-o", "/nonexistent/out"}, `output format "iso" is not one Cairn writes (use --format oci or pxe or raw)`},
		{[]string{"input", "pack"}, "needs --dir, --arch, --layout and --tag"},
		{[]string{"input", "frob"}, "unknown input command"},
		{[]string{"input", "pack", "--dir", ".", "--arch", "x86_64", "--layout", "x", "--tag", "t"}, `--arch "x86_64" is not supported`},
		{[]string{"input", "pack", "--dir", ".", "--arch", "amd64", "--layout", "x", "--tag", "t", "--entrypoint", ""}, "an empty argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run(%v) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, board := range []string{"qemu-x86_64", "qemu-aarch64", "generic-x86_64", "generic-arm64"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"validate", "-f", "../../../images/minimal.yaml", "--board", board, "--boards", "../../../boards"}, &out, &out)
		if err != nil || !strings.Contains(out.String(), ": ok") {
			t.Errorf("validate on %s: %v\n%s", board, err, out.String())
		}
	}
}

// TestPack packs with an entrypoint and arguments: each flag is one
// argument, spaces and commas included.
func TestPack(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "coredns"), []byte("#!fake"), 0o755)
	lay := filepath.Join(t.TempDir(), "oci")
	var out bytes.Buffer
	args := []string{"input", "pack", "--dir", dir, "--arch", "amd64", "--layout", lay, "--tag", "cairn-coredns-amd64",
		"--entrypoint", "/coredns", "--entrypoint", "-conf", "--cmd", "/etc/core file", "--cmd", "a,b"}
	if err := run(context.Background(), args, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "oci-layout:"+lay+":cairn-coredns-amd64@sha256:") {
		t.Errorf("output: %s", out.String())
	}
	p, err := layout.FromPath(lay)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := p.ImageIndex()
	im, _ := idx.IndexManifest()
	img, err := p.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	if got, want := strings.Join(cfg.Config.Entrypoint, "|"), "/coredns|-conf"; got != want {
		t.Errorf("Entrypoint = %s, want %s", got, want)
	}
	if got, want := strings.Join(cfg.Config.Cmd, "|"), "/etc/core file|a,b"; got != want {
		t.Errorf("Cmd = %s, want %s", got, want)
	}
}

// TestValidateKubernetes checks a spec that runs Kubernetes against every
// board: each has the cluster's images (with the pod sandbox) and tools.
func TestValidateKubernetes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k8s.yaml"), []byte("name: k8s\nversion: 1.0.0\nkubernetes:\n  manifests: [app.yaml]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n"), 0o644)
	for _, board := range []string{"qemu-x86_64", "qemu-aarch64", "generic-x86_64", "generic-arm64"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"validate", "-f", filepath.Join(dir, "k8s.yaml"), "--board", board, "--boards", "../../../boards"}, &out, &out)
		if err != nil || !strings.Contains(out.String(), ": ok") {
			t.Errorf("validate on %s: %v\n%s", board, err, out.String())
		}
	}
	os.WriteFile(filepath.Join(dir, "app.yaml"), []byte("apiVersion: v1\nmetadata: {name: app}\n"), 0o644)
	err := run(context.Background(), []string{"validate", "-f", filepath.Join(dir, "k8s.yaml"), "--board", "qemu-x86_64", "--boards", "../../../boards"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "app.yaml:1: document 1 has no kind") {
		t.Errorf("validate with a manifest without kind: %v", err)
	}
}
