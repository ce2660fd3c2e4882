package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/disk/disktest"
	"github.com/cairn-edge/cairn/builder/pki"
)

// flashImage is a test disk with its block map beside it.
func flashImage(t *testing.T) string {
	t.Helper()
	img := disktest.Image(t)
	disktest.WriteBmap(t, img)
	return img
}

// testLoop is a loop device of 80 MiB, detached at the test's end.
func testLoop(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("losetup"); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root and losetup (loop devices)")
		}
		t.Skip("needs root and losetup (loop devices)")
	}
	backing := filepath.Join(t.TempDir(), "card")
	if err := os.WriteFile(backing, bytes.Repeat([]byte("old!"), 80<<20/4), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", backing).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func TestFlashCommand(t *testing.T) {
	img := flashImage(t)
	file := filepath.Join(t.TempDir(), "not-a-card")
	os.WriteFile(file, []byte("x"), 0o644)
	nodeFile := filepath.Join(t.TempDir(), "node.yaml")
	os.WriteFile(nodeFile, []byte("hostname: edge-3\n"), 0o644)
	badNode := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badNode, []byte("hostnam: edge-3\n"), 0o644)
	terminal := true
	isTerminal = func() bool { return terminal }
	t.Cleanup(func() { isTerminal = func() bool { return false } })
	tests := []struct {
		name     string
		args     []string
		terminal bool
		wantErr  string
	}{
		{"no device", []string{img}, true, "needs IMAGE and DEVICE"},
		{"two devices", []string{img, file, file}, true, "flash one image onto one device"},
		{"bmap and no-bmap", []string{"--bmap", "x", "--no-bmap", img, file}, true, "contradict"},
		{"two node files", []string{"--node", nodeFile, "--hostname", "a", img, file}, true, "pass one or the other"},
		{"bad node file", []string{"--node", badNode, img, file}, true, "the node would ignore it"},
		{"bad hostname", []string{"--hostname", "no_way", img, file}, true, "hostname"},
		{"bad address", []string{"--address", "10.0.0.1", img, file}, true, "CIDR"},
		{"no terminal", []string{img, file}, false, "pass --yes"},
		{"regular file", []string{"--yes", img, file}, false, "is a regular file, not a block device"},
		{"no image", []string{"--yes", img + ".missing", file}, false, "no such file"},
		{"pki without a name", []string{"--yes", "--pki", t.TempDir(), img, file}, false, "pass --name NAME too"},
		{"name without a PKI", []string{"--yes", "--name", "edge-9", img, file}, false, "which PKI?"},
		{"name with a PKI that has no CA", []string{"--yes", "--name", "edge-9", "--pki", t.TempDir(), img, file}, false, "has no ca.crt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			terminal = tc.terminal
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"flash"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Errorf("the regular file was written: %q", b)
	}

	t.Run("not confirmed", func(t *testing.T) {
		dev := testLoop(t)
		before, _ := os.ReadFile(dev)
		terminal, confirmIn = true, strings.NewReader("n\n")
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"flash", img, dev}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "not confirmed") || !strings.Contains(stderr.String(), "Type y to go on") {
			t.Fatalf("err = %v, stderr:\n%s", err, stderr.String())
		}
		if after, _ := os.ReadFile(dev); !bytes.Equal(before, after) {
			t.Error("the device was written")
		}
	})
	t.Run("confirmed, with a node file", func(t *testing.T) {
		dev := testLoop(t)
		terminal, confirmIn = true, strings.NewReader("y\n")
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"flash", "--hostname", "edge-9", "--address", "10.1.0.9/16", img, dev}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "written and verified") || !strings.Contains(stderr.String(), "the card can be removed") {
			t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		b, err := espFile(t, dev, contract.NodeFileName)
		if err != nil || !strings.Contains(string(b), "hostname: edge-9") || !strings.Contains(string(b), "10.1.0.9/16") {
			t.Errorf("%s: %v\n%s", contract.NodeFileName, err, b)
		}
	})
	t.Run("with a node identity", func(t *testing.T) {
		dev := testLoop(t)
		p, err := pki.Ensure(t.TempDir(), pki.Options{})
		if err != nil {
			t.Fatal(err)
		}
		config := filepath.Join(t.TempDir(), "edge-9.node.yaml")
		var stdout, stderr bytes.Buffer
		err = run(context.Background(), []string{"flash", "--yes", "--name", "edge-9", "--pki", p.Dir, "-o", config, "--address", "10.1.0.9/16", img, dev}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		cert, err := espFile(t, dev, contract.NodeCertFileName)
		if err != nil {
			t.Fatal(err)
		}
		key, err := espFile(t, dev, contract.NodeKeyFileName)
		if err != nil {
			t.Fatal(err)
		}
		ca, _ := os.ReadFile(filepath.Join(p.Dir, "ca.crt"))
		pair, name, err := api.ParseIdentity(ca, cert, key)
		if err != nil || name != "edge-9" {
			t.Fatalf("identity on the card: %q, %v", name, err)
		}
		if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err != nil || leaf.VerifyHostname("10.1.0.9") != nil {
			t.Errorf("the certificate does not carry the node file's address: %v", err)
		}
		if _, err := os.Stat(config); err != nil {
			t.Errorf("client config: %v", err)
		}
	})
}

// espFile reads name from the ESP of the disk at dev.
func espFile(t *testing.T, dev, name string) ([]byte, error) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	esp, err := disk.OpenESP(f)
	if err != nil {
		t.Fatal(err)
	}
	return esp.ReadFile(name)
}
