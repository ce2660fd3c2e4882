package provision

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
	"github.com/cairn-edge/cairn/builder/disk/disktest"
	"github.com/cairn-edge/cairn/builder/pki"
)

func image(t *testing.T) string { return disktest.Image(t) }

// identity reads the node identity on the disk at path.
func identity(t *testing.T, path string) (cert, key []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e, err := disk.OpenESP(f)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = e.ReadFile(contract.NodeCertFileName); err != nil {
		t.Fatal(err)
	}
	if key, err = e.ReadFile(contract.NodeKeyFileName); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestDisk provisions two cards of one image: each gets its own key, for
// its own name, that the agent accepts; a card that has an identity keeps
// it unless asked to replace it.
func TestDisk(t *testing.T) {
	p, err := pki.Ensure(filepath.Join(t.TempDir(), "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := image(t), image(t)
	if res, err := Disk(a, p, Options{Name: "edge-1", Addresses: []string{"10.0.0.5"}}); err != nil {
		t.Fatal(err)
	} else if strings.Join(res.Names, ",") != "10.0.0.5,edge-1" || res.Replaced != "" {
		t.Errorf("result = %+v", res)
	}
	if _, err := Disk(b, p, Options{Name: "edge-2"}); err != nil {
		t.Fatal(err)
	}
	certA, keyA := identity(t, a)
	certB, keyB := identity(t, b)
	if bytes.Equal(keyA, keyB) {
		t.Fatal("two nodes got the same key")
	}
	for _, c := range []struct {
		name       string
		cert, key  []byte
		wantName   string
		wantRecord string
	}{{"edge-1", certA, keyA, "edge-1", "edge-1.crt"}, {"edge-2", certB, keyB, "edge-2", "edge-2.crt"}} {
		_, name, err := api.ParseIdentity(p.CA.CertPEM, c.cert, c.key)
		if err != nil || name != c.wantName {
			t.Errorf("%s: ParseIdentity = %q, %v", c.name, name, err)
		}
		if rec, err := os.ReadFile(filepath.Join(p.Dir, "nodes", c.wantRecord)); err != nil || !bytes.Equal(rec, c.cert) {
			t.Errorf("%s: the PKI directory does not record its certificate: %v", c.name, err)
		}
	}
	// The key is on the card only.
	filepath.WalkDir(p.Dir, func(path string, d os.DirEntry, err error) error {
		if b, _ := os.ReadFile(path); !d.IsDir() && (bytes.Contains(b, bytes.TrimSpace(keyA)) || bytes.Contains(b, bytes.TrimSpace(keyB))) {
			t.Errorf("%s holds a node's key", path)
		}
		return nil
	})

	before, _ := os.ReadFile(a)
	if _, err := Disk(a, p, Options{Name: "edge-3"}); err == nil || !strings.Contains(err.Error(), `already has the identity of node "edge-1": pass --replace`) {
		t.Errorf("second provisioning: err = %v", err)
	}
	if after, _ := os.ReadFile(a); !bytes.Equal(before, after) {
		t.Error("a refused provisioning changed the disk")
	}
	res, err := Disk(a, p, Options{Name: "edge-3", Replace: true})
	if err != nil || res.Replaced != `"edge-1"` {
		t.Fatalf("replace: %+v, %v", res, err)
	}
	cert, key := identity(t, a)
	if _, name, err := api.ParseIdentity(p.CA.CertPEM, cert, key); err != nil || name != "edge-3" {
		t.Errorf("after replace: %q, %v", name, err)
	}
}

// TestDiskRefuses: bad names, non-Cairn disks and a PKI without its CA key
// write nothing.
func TestDiskRefuses(t *testing.T) {
	p, err := pki.Ensure(filepath.Join(t.TempDir(), "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	offline := *p
	offline.CA = &pki.Pair{Cert: p.CA.Cert, CertPEM: p.CA.CertPEM}
	notCairn := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notCairn, bytes.Repeat([]byte("notes\n"), 1000), 0o644)
	for _, tt := range []struct {
		name string
		pki  *pki.PKI
		disk string
		opt  Options
		want string
	}{
		{"bad name", p, image(t), Options{Name: "Edge_1"}, "not a lowercase host name"},
		{"name with a dot", p, image(t), Options{Name: "edge.example"}, "not a lowercase host name"},
		{"bad address", p, image(t), Options{Name: "edge-1", Addresses: []string{"-x-"}}, "neither an IP address nor a lowercase DNS name"},
		{"not a Cairn disk", p, notCairn, Options{Name: "edge-1"}, "no partition table"},
		{"no such disk", p, filepath.Join(t.TempDir(), "missing.img"), Options{Name: "edge-1"}, "no such file"},
		{"CA key offline", &offline, image(t), Options{Name: "edge-1"}, "ca.key is missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := os.ReadFile(tt.disk)
			if _, err := Disk(tt.disk, tt.pki, tt.opt); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
			if after, _ := os.ReadFile(tt.disk); !bytes.Equal(before, after) {
				t.Error("the disk changed")
			}
		})
	}
}

// TestBlockDevice provisions a card as the kernel sees it (a loop device),
// and refuses one in use.
func TestBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a loop device")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("no losetup")
	}
	p, err := pki.Ensure(filepath.Join(t.TempDir(), "pki"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := image(t)
	out, err := exec.Command("losetup", "--find", "--show", "--partscan", img).Output()
	if err != nil {
		t.Skipf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if _, err := Disk(dev, p, Options{Name: "edge-1"}); err != nil {
		t.Fatal(err)
	}
	exec.Command("losetup", "-d", dev).Run()
	if cert, _ := identity(t, img); !bytes.Contains(cert, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("the device does not hold the identity")
	}
	// A device someone else holds exclusively (mounted, or being
	// flashed) is refused.
	out, err = exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	dev = strings.TrimSpace(string(out))
	held, err := os.OpenFile(dev, os.O_RDONLY|syscall.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := Disk(dev, p, Options{Name: "edge-2", Replace: true}); err == nil || !strings.Contains(err.Error(), "must not be mounted") {
		t.Errorf("provisioning a device in use: err = %v", err)
	}
}
