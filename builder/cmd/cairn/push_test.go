package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/sign"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pushFixture is a spec and two boards (amd64, arm64) over small fake
// inputs: kernel images, a boot loader image and our binaries.
type pushFixture struct {
	spec, boards, bin, pki, cache string
}

func newPushFixture(t *testing.T) *pushFixture {
	t.Helper()
	dir := t.TempDir()
	write := func(root string, files map[string]string) {
		t.Helper()
		for p, content := range files {
			p = filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	layout := filepath.Join(dir, "oci")
	pack := func(tag, arch string, files map[string]string) {
		t.Helper()
		src := t.TempDir()
		write(src, files)
		if _, err := source.PackDir(src, arch, layout, tag); err != nil {
			t.Fatal(err)
		}
	}
	efi := map[string]string{"amd64": "systemd-bootx64.efi", "arm64": "systemd-bootaa64.efi"}
	for _, arch := range []string{"amd64", "arm64"} {
		pack("linux-"+arch, arch, map[string]string{
			"boot/vmlinuz":                                              strings.Repeat("MZkernel-"+arch, 2048),
			"lib/modules/6.1.0-test/modules.dep":                        "kernel/drivers/block/virtio_blk.ko:\n",
			"lib/modules/6.1.0-test/modules.builtin":                    "",
			"lib/modules/6.1.0-test/kernel/drivers/block/virtio_blk.ko": "module",
		})
		pack("systemd-boot-"+arch, arch, map[string]string{"efi/" + efi[arch]: "MZ-efi"})
		write(filepath.Join(dir, "bin"), map[string]string{"linux-" + arch + "/cairn-init": "#!init " + arch, "linux-" + arch + "/cairn-agent": "#!agent"})
	}
	for board, arch := range map[string]string{"test-x86": "amd64", "test-arm": "arm64"} {
		write(filepath.Join(dir, "boards"), map[string]string{board + ".yaml": fmt.Sprintf(`name: %s
arch: %s
firmware: uefi
kernel:
  image: oci-layout:../oci:linux-%s
  cmdline: [console=ttyS0]
  bootModules: [virtio_blk]
bootloader:
  image: oci-layout:../oci:systemd-boot-%s
  path: efi/%s
`, board, arch, arch, arch, efi[arch])})
	}
	write(dir, map[string]string{"images/edge.yaml": "name: edge\nversion: 1.2.0\ndisk:\n  espSize: 64MiB\n  slotSize: 16MiB\n  dataSize: 16MiB\n"})
	return &pushFixture{spec: filepath.Join(dir, "images", "edge.yaml"), boards: filepath.Join(dir, "boards"), bin: filepath.Join(dir, "bin"), pki: filepath.Join(dir, "pki"), cache: filepath.Join(dir, "cache")}
}

// args are cairn push's arguments for the fixture, then extra.
func (f *pushFixture) args(out string, extra ...string) []string {
	return append([]string{"push", "-f", f.spec, "--boards", f.boards, "--bin-dir", f.bin, "--pki", f.pki, "--cache", f.cache, "-o", out}, extra...)
}

func testRegistry(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func writeKey(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := sign.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := sign.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cairn.key")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, key
}

// ggcrRegistry is sign.Registry over go-containerregistry, for checking
// that what cairn push signed verifies as the agent checks it.
type ggcrRegistry struct{ host string }

func (r ggcrRegistry) Manifest(ctx context.Context, repo, reference string) (string, []byte, error) {
	ref, err := name.ParseReference(r.host + "/" + repo + refSep(reference) + reference)
	if err != nil {
		return "", nil, err
	}
	d, err := remote.Get(ref, remote.WithContext(ctx))
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", sign.ErrNotFound, err)
	}
	return string(d.MediaType), d.Manifest, nil
}

func (r ggcrRegistry) Blob(ctx context.Context, repo, digest string, max int64) ([]byte, error) {
	ref, err := name.NewDigest(r.host + "/" + repo + "@" + digest)
	if err != nil {
		return nil, err
	}
	l, err := remote.Layer(ref, remote.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, max))
}

func refSep(reference string) string {
	if strings.HasPrefix(reference, "sha256:") {
		return "@"
	}
	return ":"
}

func TestPushErrors(t *testing.T) {
	f := newPushFixture(t)
	keyPath, _ := writeKey(t)
	reg := testRegistry(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no reference", []string{"--board", "test-x86", "--key", keyPath}, "no reference to push to: pass REF last"},
		{"flags after the reference", []string{"--board", "test-x86", "--key", keyPath, reg + "/edge:1.2.0", "--insecure"}, `unexpected argument "--insecure" after the reference`},
		{"neither key nor unsigned", []string{"--board", "test-x86", reg + "/edge:1.2.0"}, "no signing key: pass --key cairn.key (make a key pair with cairn keygen"},
		{"key and unsigned", []string{"--board", "test-x86", "--key", keyPath, "--unsigned", reg + "/edge:1.2.0"}, "--key and --unsigned together"},
		{"missing key", []string{"--board", "test-x86", "--key", "/nonexistent/cairn.key", reg + "/edge:1.2.0"}, "--key: "},
		{"no tag", []string{"--board", "test-x86", "--unsigned", reg + "/edge"}, "has no tag: name one"},
		{"no board", []string{"--unsigned", reg + "/edge:1.2.0"}, "no board: pass --board NAME, once per board (available: test-arm, test-x86)"},
		{"unknown second board", []string{"--board", "test-x86", "--board", "nosuch", "--unsigned", reg + "/edge:1.2.0"}, `unknown board "nosuch"`},
		{"board twice", []string{"--board", "test-x86", "--board", "test-x86", "--unsigned", reg + "/edge:1.2.0"}, "--board test-x86 is given twice"},
		{"artifact and spec", []string{"--artifact", "x.oci", "--unsigned", reg + "/edge:1.2.0"}, "--artifact pushes artifacts built before: pass it without -f"},
		{"unreachable registry", []string{"--board", "test-x86", "--unsigned", closed + "/edge:1.2.0"}, "registry " + closed + " cannot be reached"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), f.args(out, tt.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("cairn push %v = %v, want an error with %q\n%s", tt.args, err, tt.wantErr, stderr.String())
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("a refused push built into %s", out)
			}
		})
	}
}

// TestPush builds two boards and pushes them signed: an index at the tag
// over both manifests, every one of them signed so that the agent's
// verification accepts it; then pushes the same builds again with
// --artifact, which uploads nothing.
func TestPush(t *testing.T) {
	f := newPushFixture(t)
	keyPath, key := writeKey(t)
	reg := testRegistry(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), f.args(out, "--board", "test-x86", "--board", "test-arm", "--key", keyPath, reg+"/cairn/edge:1.2.0"), &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	t.Logf("stdout:\n%s", stdout.String())
	first := regexp.MustCompile(`^(\S+)@(sha256:[0-9a-f]{64})\t1\.2\.0 index of 2 boards, signed; [0-9.]+ MiB uploaded\n`).FindStringSubmatch(stdout.String())
	if first == nil || first[1] != reg+"/cairn/edge:1.2.0" {
		t.Fatalf("stdout does not start with REF@DIGEST and what was pushed:\n%s", stdout.String())
	}
	for _, want := range []string{"  test-arm\tarm64\t" + reg + "/cairn/edge@sha256:", "  test-x86\tamd64\t" + reg + "/cairn/edge@sha256:"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, want := range []string{"msg=uploaded board=test-x86 blob=slot.squashfs", "msg=\"index signed\"", "msg=tagged"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, stderr.String())
		}
	}

	ref, _ := name.ParseReference(reg + "/cairn/edge:1.2.0")
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != first[2] {
		t.Fatalf("the tag names %s, cairn push printed %s", desc.Digest, first[2])
	}
	ix, err := artifact.ParseIndex(desc.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(digest string) {
		t.Helper()
		res, err := sign.Verify(context.Background(), ggcrRegistry{reg}, "cairn/edge", digest, []*ecdsa.PublicKey{&key.PublicKey})
		if err != nil {
			t.Errorf("signature of %s: %v", digest, err)
			return
		}
		t.Logf("%s: %+v", digest, res)
	}
	verify(first[2])
	for _, b := range []struct{ board, arch string }{{"test-x86", "amd64"}, {"test-arm", "arm64"}} {
		d, err := ix.Select(b.board, b.arch)
		if err != nil {
			t.Fatal(err)
		}
		verify(d.Digest)
	}

	// The same builds again, as they are: nothing to upload.
	stdout.Reset()
	stderr.Reset()
	err = run(context.Background(), []string{"push", "--artifact", filepath.Join(out, "edge-test-x86.oci"), "--artifact", filepath.Join(out, "edge-test-arm.oci"), "--unsigned", reg + "/cairn/edge:stable"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), reg+"/cairn/edge:stable@"+first[2]+"\t1.2.0 index of 2 boards, unsigned; 0.0 MiB uploaded, ") {
		t.Errorf("a push of the same artifacts:\n%s", stdout.String())
	}
}
