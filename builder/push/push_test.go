package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// layoutOf writes an artifact in the format builder/output's OCI writer
// uses, with small layers: slot is the slot's content, the kernel and
// initramfs are the same for every call with the same arch.
func layoutOf(t *testing.T, board, arch, version, slot string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), board+".oci")
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	blob := func(b []byte, mediaType, title string) artifact.Descriptor {
		sum := sha256.Sum256(b)
		d := artifact.Descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b))}
		if title != "" {
			d.Annotations = map[string]string{artifact.AnnotationTitle: title}
		}
		if err := os.WriteFile(blobPath(dir, d.Digest), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	c := artifact.Config{Name: "edge", Version: version, Board: board, Arch: arch, Kernel: "6.1.0-test", Cmdline: []string{"console=ttyS0"}, Created: "2024-01-01T00:00:00Z"}
	layers := []artifact.Descriptor{
		blob([]byte("hsqs"+slot), artifact.SlotMediaType, "slot.squashfs"),
		blob([]byte("MZkernel-"+arch), artifact.KernelMediaType, "vmlinuz"),
		blob([]byte("initrd-"+arch), artifact.InitrdMediaType, "initrd"),
	}
	if strings.HasPrefix(board, "rpi") {
		// A Raspberry Pi's artifact carries its board files.
		var b bytes.Buffer
		var err error
		if c.BootFiles, err = artifact.WriteBootFiles(&b, []artifact.BootFileData{{Name: "start4.elf", Data: []byte("start4")}, {Name: "config.txt", Data: []byte("enable_uart=1\n")}}); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, blob(b.Bytes(), artifact.BootFilesMediaType, "boot-files.tar"))
	}
	cfg, _ := json.Marshal(c)
	m := artifact.Manifest{
		SchemaVersion: 2, MediaType: artifact.ManifestMediaType, ArtifactType: artifact.ArtifactType,
		Config:      blob(cfg, artifact.ConfigMediaType, ""),
		Layers:      layers,
		Annotations: map[string]string{artifact.AnnotationVersion: version, artifact.AnnotationBoard: board, artifact.AnnotationArch: arch, artifact.AnnotationTitle: "edge"},
	}
	mb, _ := json.Marshal(m)
	md := blob(mb, artifact.ManifestMediaType, "")
	ix, _ := json.Marshal(artifact.Index{SchemaVersion: 2, MediaType: artifact.IndexMediaType, Manifests: []artifact.Descriptor{md}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ix, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testRegistry is go-containerregistry's in-memory registry on loopback,
// counting the blob uploads it starts and able to fail requests.
type testRegistry struct {
	*httptest.Server
	mu      sync.Mutex
	uploads int
	// fail, when it returns true for a request, answers it with 400.
	fail func(*http.Request) bool
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/blobs/uploads/") {
			r.uploads++
		}
		fail := r.fail != nil && r.fail(req)
		r.mu.Unlock()
		if fail {
			http.Error(w, `{"errors":[{"code":"DIGEST_INVALID","message":"injected"}]}`, http.StatusBadRequest)
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *testRegistry) host() string { return strings.TrimPrefix(r.URL, "http://") }

func (r *testRegistry) started() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.uploads
}

func mustRef(t *testing.T, s string) name.Tag {
	t.Helper()
	ref, err := ParseRef(s, false)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func mustOpen(t *testing.T, dirs ...string) []*Artifact {
	t.Helper()
	arts, err := Open(dirs...)
	if err != nil {
		t.Fatal(err)
	}
	return arts
}

// signer records what it signs and checks that the tag does not name it
// yet: the reference moves only after the signature is there.
type signer struct {
	t      *testing.T
	ref    name.Tag
	signed []string
}

func (s *signer) sign(ctx context.Context, d name.Digest, opts ...remote.Option) error {
	if desc, err := remote.Head(s.ref, opts...); err == nil && desc.Digest.String() == d.DigestStr() {
		s.t.Errorf("the tag already names %s before it is signed", d.DigestStr())
	}
	s.signed = append(s.signed, d.DigestStr())
	return nil
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestPushOneBoard(t *testing.T) {
	reg := newRegistry(t)
	ref := mustRef(t, reg.host()+"/cairn/edge:1.2.0")
	arts := mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "slot v1"))
	var logs bytes.Buffer
	s := &signer{t: t, ref: ref}
	res, err := Push(context.Background(), ref, arts, Options{Sign: s.sign, Log: slog.New(slog.NewTextHandler(&logs, nil)), Every: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Index || res.Digest != arts[0].Digest || len(res.Manifests) != 1 || !res.Signed {
		t.Errorf("result %+v", res)
	}
	if len(s.signed) != 1 || s.signed[0] != arts[0].Digest {
		t.Errorf("signed %v, want the manifest %s", s.signed, arts[0].Digest)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != arts[0].Digest || string(desc.MediaType) != artifact.ManifestMediaType || !bytes.Equal(desc.Manifest, arts[0].Manifest) {
		t.Errorf("the tag names %s (%s), want the artifact's manifest %s", desc.Digest, desc.MediaType, arts[0].Digest)
	}
	if _, err := artifact.ParseUpdate(desc.Manifest); err != nil {
		t.Errorf("the pushed manifest: %v", err)
	}
	for _, l := range arts[0].Update.Manifest.Layers {
		layer, err := remote.Layer(ref.Context().Digest(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatalf("layer %s: %v", l.MediaType, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		want, _ := os.ReadFile(blobPath(arts[0].Dir, l.Digest))
		if !bytes.Equal(got, want) {
			t.Errorf("layer %s differs in the registry", l.MediaType)
		}
	}
	for _, want := range []string{"blob=slot.squashfs bytes=11 took=", "rate=", "msg=tagged"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestPushTwoBoards(t *testing.T) {
	reg := newRegistry(t)
	ref := mustRef(t, reg.host()+"/cairn/edge:1.2.0")
	// Given in the reverse of board order: the index is in board order anyway.
	arts := mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "x86 slot"), layoutOf(t, "qemu-aarch64", "arm64", "1.2.0", "arm slot"))
	s := &signer{t: t, ref: ref}
	res, err := Push(context.Background(), ref, arts, Options{Sign: s.sign, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Index || len(res.Manifests) != 2 || res.Manifests[0].Board != "qemu-aarch64" {
		t.Fatalf("result %+v", res)
	}
	if len(s.signed) != 3 || s.signed[2] != res.Digest {
		t.Errorf("signed %v, want both manifests and then the index %s", s.signed, res.Digest)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != res.Digest || string(desc.MediaType) != artifact.IndexMediaType {
		t.Fatalf("the tag names %s (%s), want the index %s", desc.Digest, desc.MediaType, res.Digest)
	}
	ix, err := artifact.ParseIndex(desc.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ board, arch string }{{"qemu-x86_64", "amd64"}, {"qemu-aarch64", "arm64"}} {
		d, err := ix.Select(want.board, want.arch)
		if err != nil {
			t.Fatal(err)
		}
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != want.arch || d.ArtifactType != artifact.ArtifactType || d.Annotations[artifact.AnnotationVersion] != "1.2.0" {
			t.Errorf("index entry for %s: %+v", want.board, d)
		}
		m, err := remote.Get(ref.Context().Digest(d.Digest))
		if err != nil {
			t.Fatalf("%s's manifest: %v", want.board, err)
		}
		u, err := artifact.ParseUpdate(m.Manifest)
		if err != nil || u.Manifest.Annotations[artifact.AnnotationBoard] != want.board {
			t.Errorf("%s's manifest: %v %+v", want.board, err, u)
		}
	}
	// The same artifacts in another order make the same index.
	again, err := Push(context.Background(), ref, []*Artifact{arts[1], arts[0]}, Options{Log: quietLog()})
	if err != nil || again.Digest != res.Digest {
		t.Errorf("a second push of the same boards: %v, digest %s, want %s", err, again.Digest, res.Digest)
	}
}

// TestPushReuse: a second push of the same artifact sends no blob; a new
// version that changed only the slot sends only the slot.
func TestPushReuse(t *testing.T) {
	reg := newRegistry(t)
	v1 := mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "slot v1"))
	first, err := Push(context.Background(), mustRef(t, reg.host()+"/cairn/edge:1.2.0"), v1, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if first.Present != 0 || first.Uploaded == 0 || reg.started() != 4 {
		t.Errorf("first push: uploaded %d, present %d, %d uploads started; want everything sent (4 blobs)", first.Uploaded, first.Present, reg.started())
	}
	before := reg.started()
	again, err := Push(context.Background(), mustRef(t, reg.host()+"/cairn/edge:stable"), v1, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if again.Uploaded != 0 || again.Present != first.Uploaded || reg.started() != before {
		t.Errorf("second push: uploaded %d, present %d, %d uploads started; want nothing sent", again.Uploaded, again.Present, reg.started()-before)
	}
	v2 := mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.3.0", "slot v2"))
	before = reg.started()
	next, err := Push(context.Background(), mustRef(t, reg.host()+"/cairn/edge:1.3.0"), v2, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.started() - before; got != 2 { // the config (new version) and the slot
		t.Errorf("new version: %d uploads started, want 2 (config and slot); uploaded %d, present %d", got, next.Uploaded, next.Present)
	}
}

// TestPushFailureKeepsTag: a push that fails midway, or whose signing
// fails, leaves the tag on what it named before.
func TestPushFailureKeepsTag(t *testing.T) {
	reg := newRegistry(t)
	ref := mustRef(t, reg.host()+"/cairn/edge:stable")
	v1 := mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "slot v1"))
	if _, err := Push(context.Background(), ref, v1, Options{Log: quietLog()}); err != nil {
		t.Fatal(err)
	}
	v2 := mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.3.0", "slot v2"), layoutOf(t, "qemu-aarch64", "arm64", "1.3.0", "slot v2 arm"))
	for _, tc := range []struct {
		name string
		fail func(*http.Request) bool
		sign func(context.Context, name.Digest, ...remote.Option) error
		want string
	}{
		{"blob upload fails", func(r *http.Request) bool {
			return r.Method == http.MethodPatch || r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/")
		}, nil, "upload of"},
		{"index fails", func(r *http.Request) bool {
			return r.Method == http.MethodPut && r.Header.Get("Content-Type") == artifact.IndexMediaType
		}, nil, "index"},
		{"signing fails", nil, func(context.Context, name.Digest, ...remote.Option) error { return fmt.Errorf("no key") }, "signature of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.mu.Lock()
			reg.fail = tc.fail
			reg.mu.Unlock()
			defer func() { reg.mu.Lock(); reg.fail = nil; reg.mu.Unlock() }()
			_, err := Push(context.Background(), ref, v2, Options{Sign: tc.sign, Log: quietLog()})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "the tag was not moved") {
				t.Fatalf("Push = %v, want an error with %q", err, tc.want)
			}
			t.Log(err)
			desc, err := remote.Head(ref)
			if err != nil || desc.Digest.String() != v1[0].Digest {
				t.Errorf("after a failed push the tag names %v (%v), want the old %s", desc, err, v1[0].Digest)
			}
		})
	}
}

func TestPushUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	ref := mustRef(t, addr+"/cairn/edge:1.2.0")
	if err := Check(context.Background(), ref, Options{}); err == nil || !strings.Contains(err.Error(), "registry "+addr+" cannot be reached: dial tcp") {
		t.Errorf("Check of a closed port = %v", err)
	}
	_, err = Push(context.Background(), ref, mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "s")), Options{Log: quietLog()})
	if err == nil || !strings.Contains(err.Error(), "registry "+addr+" cannot be reached: dial tcp") {
		t.Fatalf("Push to a closed port = %v", err)
	}
	t.Log(err)
}

func TestParseRef(t *testing.T) {
	for _, tc := range []struct {
		ref, want string // want: error text, or "" for valid
		insecure  bool
		scheme    string
	}{
		{ref: "127.0.0.1:5000/cairn/edge:1.2.0", scheme: "http"},
		{ref: "localhost:5000/cairn/edge:stable", scheme: "http"},
		{ref: "registry.example/cairn/edge:1.2.0", scheme: "https"},
		{ref: "registry.example:5000/cairn/edge:1.2.0", insecure: true, scheme: "http"},
		{ref: "registry.example/cairn/edge", want: "has no tag: name one, e.g. registry.example/cairn/edge:1.0.0"},
		{ref: "registry.example/cairn/edge@sha256:" + strings.Repeat("0", 64), want: "names a digest: push to a tag"},
		{ref: "Bad Ref!", want: "is not an OCI reference"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			ref, err := ParseRef(tc.ref, tc.insecure)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("ParseRef = %v, want an error with %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ref.Context().Scheme(); got != tc.scheme {
				t.Errorf("scheme %s, want %s", got, tc.scheme)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	x86 := layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "a")
	for _, tc := range []struct {
		name string
		dirs func(t *testing.T) []string
		want string
	}{
		{"nothing", func(*testing.T) []string { return nil }, "no artifact to push"},
		{"not a layout", func(t *testing.T) []string { return []string{t.TempDir()} }, "is not an OCI layout directory"},
		{"same board twice", func(t *testing.T) []string {
			return []string{x86, layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "b")}
		}, "both for board qemu-x86_64"},
		{"two versions", func(t *testing.T) []string {
			return []string{x86, layoutOf(t, "qemu-aarch64", "arm64", "1.3.0", "b")}
		}, "one reference holds one image version"},
		{"missing layer", func(t *testing.T) []string {
			d := layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "c")
			a, _ := open(d)
			os.Remove(blobPath(d, a.Update.Slot.Digest))
			return []string{d}
		}, "layer " + artifact.SlotMediaType},
		{"tampered board files", func(t *testing.T) []string {
			d := layoutOf(t, "rpi4", "arm64", "1.2.0", "e")
			a, err := open(d)
			if err != nil {
				t.Fatalf("a Raspberry Pi's artifact: %v", err)
			}
			p := blobPath(d, a.Update.BootFiles.Digest)
			b, _ := os.ReadFile(p)
			i := bytes.LastIndex(b, []byte("start4")) // the content, after its header
			copy(b[i:], "evil!!")
			os.WriteFile(p, b, 0o644)
			return []string{d}
		}, "start4.elf does not hash"},
		{"board files listed, no layer", func(t *testing.T) []string {
			d := layoutOf(t, "rpi4", "arm64", "1.2.0", "f")
			a, _ := open(d)
			a.Update.Manifest.Layers = a.Update.Manifest.Layers[:3]
			mb, _ := json.Marshal(a.Update.Manifest)
			sum := sha256.Sum256(mb)
			md := artifact.Descriptor{MediaType: artifact.ManifestMediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(mb))}
			os.WriteFile(blobPath(d, md.Digest), mb, 0o644)
			ix, _ := json.Marshal(artifact.Index{SchemaVersion: 2, MediaType: artifact.IndexMediaType, Manifests: []artifact.Descriptor{md}})
			os.WriteFile(filepath.Join(d, "index.json"), ix, 0o644)
			return []string{d}
		}, "no " + artifact.BootFilesMediaType + " layer"},
		{"tampered manifest", func(t *testing.T) []string {
			d := layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "d")
			a, _ := open(d)
			os.WriteFile(blobPath(d, a.Digest), append(a.Manifest, ' '), 0o644)
			return []string{d}
		}, "does not match its digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.dirs(t)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestPushInsecure: a plain-HTTP registry that go-containerregistry does
// not take for local (127.0.0.2, as a LAN host would be) needs --insecure,
// and the error without it says so.
func TestPushInsecure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	s := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	s.Listener.Close()
	s.Listener = l
	s.Start()
	defer s.Close()
	host := l.Addr().String()
	arts := mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "s"))
	_, err = Push(context.Background(), mustRef(t, host+"/cairn/edge:1.2.0"), arts, Options{Log: quietLog()})
	if err == nil || !strings.Contains(err.Error(), "speaks plain HTTP (pass --insecure)") {
		t.Fatalf("Push over HTTPS to a plain-HTTP registry = %v", err)
	}
	t.Log(err)
	if err := Check(context.Background(), mustRef(t, host+"/cairn/edge:1.2.0"), Options{}); err == nil || !strings.Contains(err.Error(), "speaks plain HTTP (pass --insecure)") {
		t.Errorf("Check over HTTPS of a plain-HTTP registry = %v", err)
	}
	ref, err := ParseRef(host+"/cairn/edge:1.2.0", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(context.Background(), ref, Options{}); err != nil {
		t.Errorf("Check with insecure: %v", err)
	}
	if _, err := Push(context.Background(), ref, arts, Options{Log: quietLog()}); err != nil {
		t.Fatalf("Push with insecure: %v", err)
	}
}

// TestPushUntrustedCert: a registry whose certificate does not verify is
// named as such.
func TestPushUntrustedCert(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	s := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	s.Listener.Close()
	s.Listener = l
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	defer s.Close()
	arts := mustOpen(t, layoutOf(t, "qemu-x86_64", "amd64", "1.2.0", "s"))
	_, err = Push(context.Background(), mustRef(t, l.Addr().String()+"/cairn/edge:1.2.0"), arts, Options{Log: quietLog()})
	if err == nil || !strings.Contains(err.Error(), "has a TLS certificate that does not verify") {
		t.Fatalf("Push to a registry with an untrusted certificate = %v", err)
	}
	t.Log(err)
}
