package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/registry/faultproxy"
)

func TestParseReference(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		in   string
		want Reference
		err  string
	}{
		{in: "registry.example.com/cairn/edge:1.2.0", want: Reference{Host: "registry.example.com", Repo: "cairn/edge", Tag: "1.2.0"}},
		{in: "10.0.2.2:5000/edge:v2", want: Reference{Host: "10.0.2.2:5000", Repo: "edge", Tag: "v2"}},
		{in: "localhost/edge:latest", want: Reference{Host: "localhost", Repo: "edge", Tag: "latest"}},
		{in: "[::1]:5000/a/b@" + dg, want: Reference{Host: "[::1]:5000", Repo: "a/b", Digest: dg}},
		{in: "r.io/a/b:t@" + dg, want: Reference{Host: "r.io", Repo: "a/b", Tag: "t", Digest: dg}},
		{in: "r.io/a_b/c-d/e.f:t", want: Reference{Host: "r.io", Repo: "a_b/c-d/e.f", Tag: "t"}},
		{in: "edge:1.2.0", err: "no registry host"},
		{in: "cairn/edge:1.2.0", err: "not a registry host"},
		{in: "r.io/edge", err: "no tag or digest"},
		{in: "r.io/Edge:1", err: "lowercase"},
		{in: "r.io/a//b:1", err: "lowercase"},
		{in: "r.io/a/b:", err: "tag"},
		{in: "r.io/a/b:-x", err: "tag"},
		{in: "r.io/a/b@sha256:abc", err: "digest"},
		{in: "r.io:0/a:1", err: "port"},
		{in: "r.io:99999/a:1", err: "port"},
		{in: "r.io:/a:1", err: "port"},
		{in: "[::1/a:1", err: "unclosed"},
		{in: "bad_host.io/a:1", err: "not a host name"},
		{in: "r.io/../a:1", err: "lowercase"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseReference(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseReference(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseReference(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"registry.example.com/cairn/edge:1.2.0", "[::1]:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "localhost/x:y", "a:1/b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			return
		}
		r2, err := ParseReference(r.String())
		if err != nil || r2 != r {
			t.Fatalf("ParseReference(%q) = %+v, but its String %q parses to %+v, %v", s, r, r.String(), r2, err)
		}
		if checkName(r.Repo, r.Reference()) != nil {
			t.Fatalf("ParseReference(%q) accepted a name the API refuses", s)
		}
	})
}

func TestParseChallenge(t *testing.T) {
	for _, tc := range []struct {
		in     string
		scheme string
		params map[string]string
		err    string
	}{
		{in: `Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:cairn/edge:pull"`,
			scheme: "bearer", params: map[string]string{"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:cairn/edge:pull"}},
		{in: `bearer  Realm="x", Scope="repository:a:pull,push"`, scheme: "bearer", params: map[string]string{"realm": "x", "scope": "repository:a:pull,push"}},
		{in: `Bearer realm=https://a/t,service=reg`, scheme: "bearer", params: map[string]string{"realm": "https://a/t", "service": "reg"}},
		{in: `Bearer realm="a\"b"`, scheme: "bearer", params: map[string]string{"realm": `a"b`}},
		{in: `Basic realm="Registry"`, scheme: "basic", params: map[string]string{"realm": "Registry"}},
		{in: `Basic`, scheme: "basic", params: map[string]string{}},
		{in: ``, err: "no auth scheme"},
		{in: `Bearer realm="x`, err: "unterminated"},
		{in: `Bearer realm`, err: "no value"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseChallenge(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseChallenge = %+v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got.scheme != tc.scheme || fmt.Sprint(got.params) != fmt.Sprint(tc.params) {
				t.Fatalf("parseChallenge = %+v, %v; want %s %v", got, err, tc.scheme, tc.params)
			}
		})
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://auth.example.com/token",service="r",scope="repository:a:pull"`)
	f.Add(`Basic realm="x\"y", charset=UTF-8`)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseChallenge(s)
		if err == nil && (c.scheme == "" || c.params == nil) {
			t.Fatalf("parseChallenge(%q) = %+v without error", s, c)
		}
	})
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 5-5/*", 5, 5, -1, true},
		{"bytes 0-100/100", 0, 0, 0, false},
		{"bytes 9-3/100", 0, 0, 0, false},
		{"bytes -3/100", 0, 0, 0, false},
		{"bytes 0-+3/100", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"0-99/100", 0, 0, 0, false},
		{"bytes 0-99", 0, 0, 0, false},
		{"bytes 0-99999999999999999999/100", 0, 0, 0, false},
	} {
		first, last, total, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || tc.ok && (first != tc.first || last != tc.last || total != tc.total) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tc.in, first, last, total, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-99/100")
	f.Add("bytes 1-2/*")
	f.Fuzz(func(t *testing.T, s string) {
		first, last, total, err := parseContentRange(s)
		if err == nil && (first < 0 || last < first || total != -1 && last >= total) {
			t.Fatalf("parseContentRange(%q) = %d, %d, %d", s, first, last, total)
		}
	})
}

func TestManifestAndBlob(t *testing.T) {
	tr := newTestRegistry(t, nil)
	body, slot := tr.pushArtifact(t, "cairn/edge", "1.2.0", "qemu-x86_64", random(1, 1000))
	c := newClient(t, tr.host)

	mt, got, err := c.Manifest(bg, "cairn/edge", "1.2.0")
	if err != nil || mt != artifact.ManifestMediaType || !bytes.Equal(got, body) {
		t.Fatalf("Manifest by tag = %q, %d bytes, %v", mt, len(got), err)
	}
	if _, got, err = c.Manifest(bg, "cairn/edge", Digest(body)); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Manifest by digest: %v", err)
	}
	if _, _, err = c.Manifest(bg, "cairn/edge", "9.9.9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing tag: %v, want ErrNotFound", err)
	}
	if _, _, err = c.Manifest(bg, "cairn/edge", "sha256:"+strings.Repeat("0", 64)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing digest: %v, want ErrNotFound", err)
	}
	if _, _, err = c.Manifest(bg, "cairn/edge", "../../x"); err == nil || !strings.Contains(err.Error(), "neither a tag") {
		t.Fatalf("path in reference: %v", err)
	}
	b, err := c.Blob(bg, "cairn/edge", slot.Digest, 1000)
	if err != nil || len(b) != 1000 {
		t.Fatalf("Blob = %d bytes, %v", len(b), err)
	}
	if _, err = c.Blob(bg, "cairn/edge", slot.Digest, 999); err == nil || !strings.Contains(err.Error(), "more than the 999") {
		t.Fatalf("Blob over its cap: %v", err)
	}
	if _, err = c.Blob(bg, "cairn/edge", "sha256:"+strings.Repeat("1", 64), 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v, want ErrNotFound", err)
	}
}

func TestTampered(t *testing.T) {
	tamper := onBlobGET(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&respWriter{ResponseWriter: w, body: func(p []byte, n int) []byte {
			if n == 0 && len(p) > 0 {
				p[0] ^= 0xff
			}
			return p
		}}, r)
	})
	tr := newTestRegistry(t, tamper)
	_, slot := tr.pushArtifact(t, "cairn/edge", "1", "pc", random(2, 3<<20))
	c := newClient(t, tr.host)
	err := c.Fetch(bg, "cairn/edge", slot, io.Discard, FetchOptions{})
	if err == nil || !strings.Contains(err.Error(), slot.Digest) || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("Fetch of a tampered blob = %v, want a digest mismatch naming %s", err, slot.Digest)
	}
	small := tr.push(t, "cairn/edge", "x", []byte("config"))
	if _, err := c.Blob(bg, "cairn/edge", small.Digest, 100); err == nil || !strings.Contains(err.Error(), small.Digest) {
		t.Fatalf("Blob of a tampered blob = %v", err)
	}
}

func TestResolve(t *testing.T) {
	tr := newTestRegistry(t, nil)
	one, _ := tr.pushArtifact(t, "cairn/edge", "single", "qemu-x86_64", random(3, 100))
	a, _ := tr.pushArtifact(t, "cairn/edge", "", "qemu-x86_64", random(4, 100))
	b, _ := tr.pushArtifact(t, "cairn/edge", "", "nuc", random(5, 100))
	ix := artifact.Index{SchemaVersion: 2, MediaType: artifact.IndexMediaType}
	for _, m := range []struct {
		body  []byte
		board string
	}{{b, "nuc"}, {a, "qemu-x86_64"}} {
		ix.Manifests = append(ix.Manifests, artifact.Descriptor{MediaType: artifact.ManifestMediaType, Digest: Digest(m.body), Size: int64(len(m.body)),
			Annotations: map[string]string{artifact.AnnotationBoard: m.board, artifact.AnnotationArch: "amd64"}})
	}
	ixBody, _ := json.Marshal(ix)
	tr.putManifest(t, "cairn/edge", "multi", artifact.IndexMediaType, ixBody)
	c := newClient(t, tr.host)

	for _, tc := range []struct {
		ref, board string
		digest     string
		index      bool
		err        string
	}{
		{ref: "single", board: "qemu-x86_64", digest: Digest(one)},
		{ref: "multi", board: "qemu-x86_64", digest: Digest(a), index: true},
		{ref: "multi", board: "nuc", digest: Digest(b), index: true},
		{ref: "multi", board: "rpi4", err: "no artifact for board rpi4"},
		{ref: "single", board: "nuc", err: "is for board qemu-x86_64"},
		{ref: "gone", board: "nuc", err: "404"},
	} {
		t.Run(tc.ref+"/"+tc.board, func(t *testing.T) {
			ref, err := ParseReference(tr.host + "/cairn/edge:" + tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Resolve(bg, ref, tc.board, "amd64")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Resolve = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Digest != tc.digest || (res.IndexDigest != "") != tc.index || res.Config.Board != tc.board || res.Update.Slot.Size != 100 {
				t.Errorf("Resolve = digest %s index %q board %s slot %d; want digest %s", res.Digest, res.IndexDigest, res.Config.Board, res.Update.Slot.Size, tc.digest)
			}
		})
	}
}

// TestResolveBoardFiles: a Raspberry Pi's artifact resolves with its
// board files layer; one whose config lists board files the manifest
// lacks is refused before anything is downloaded.
func TestResolveBoardFiles(t *testing.T) {
	tr := newTestRegistry(t, nil)
	c := newClient(t, tr.host)
	layer := artifact.Descriptor{}
	for _, tc := range []struct {
		tag       string
		withLayer bool
		err       string
	}{
		{"pi", true, ""},
		{"no-layer", false, "no " + artifact.BootFilesMediaType + " layer"},
	} {
		var b bytes.Buffer
		list, err := artifact.WriteBootFiles(&b, []artifact.BootFileData{{Name: "start4.elf", Data: []byte("start4")}})
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := json.Marshal(artifact.Config{Name: "edge", Version: "1.2.0", Board: "rpi4", Arch: "arm64", Cmdline: []string{"console=serial0"}, BootFiles: list})
		m := artifact.Manifest{
			SchemaVersion: 2, MediaType: artifact.ManifestMediaType, ArtifactType: artifact.ArtifactType,
			Config: tr.push(t, "cairn/edge", artifact.ConfigMediaType, cfg),
			Layers: []artifact.Descriptor{
				tr.push(t, "cairn/edge", artifact.SlotMediaType, random(9, 100)),
				tr.push(t, "cairn/edge", artifact.KernelMediaType, []byte("kernel")),
				tr.push(t, "cairn/edge", artifact.InitrdMediaType, []byte("initrd")),
			},
		}
		if tc.withLayer {
			layer = tr.push(t, "cairn/edge", artifact.BootFilesMediaType, b.Bytes())
			m.Layers = append(m.Layers, layer)
		}
		body, _ := json.Marshal(m)
		tr.putManifest(t, "cairn/edge", tc.tag, artifact.ManifestMediaType, body)
		ref, _ := ParseReference(tr.host + "/cairn/edge:" + tc.tag)
		res, err := c.Resolve(bg, ref, "rpi4", "arm64")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: Resolve = %v, want an error with %q", tc.tag, err, tc.err)
			}
			continue
		}
		if err != nil || res.Update.BootFiles == nil || res.Update.BootFiles.Digest != layer.Digest || len(res.Config.BootFiles) != 1 {
			t.Errorf("%s: Resolve = %+v, %v; want the board files layer and listing", tc.tag, res, err)
		}
	}
}

// tokenAuth puts a registry behind the Docker token flow: requests need a
// bearer token that the token server hands out anonymously for the scope.
func tokenAuth(t *testing.T, tokens *counter, extraScope bool) (wrap func(http.Handler) http.Handler) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens.inc()
		if r.URL.Query().Get("service") != "test-registry" {
			http.Error(w, "no service", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"token": "tok:" + r.URL.Query().Get("scope"), "expires_in": 300})
	}))
	t.Cleanup(ts.Close)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				next.ServeHTTP(w, r) // pushes from the test itself
				return
			}
			repo := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/", 2)[0]
			repo = strings.SplitN(repo, "/blobs/", 2)[0]
			scope := "repository:" + repo + ":pull"
			if r.Header.Get("Authorization") != "Bearer tok:"+scope {
				ch := fmt.Sprintf(`Bearer realm="%s/token",service="test-registry"`, ts.URL)
				if extraScope {
					ch += `,scope="` + scope + `"`
				}
				w.Header().Set("WWW-Authenticate", ch)
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestTokenAuth(t *testing.T) {
	for _, withScope := range []bool{false, true} {
		t.Run(fmt.Sprint("scope in challenge ", withScope), func(t *testing.T) {
			var tokens counter
			tr := newTestRegistry(t, tokenAuth(t, &tokens, withScope))
			tr.pushArtifact(t, "cairn/edge", "1.2.0", "qemu-x86_64", random(6, 3<<20))
			c := newClient(t, tr.host)
			ref, _ := ParseReference(tr.host + "/cairn/edge:1.2.0")
			res, err := c.Resolve(bg, ref, "qemu-x86_64", "amd64")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Fetch(bg, ref.Repo, res.Update.Slot, io.Discard, FetchOptions{}); err != nil {
				t.Fatal(err)
			}
			if n := tokens.get(); n != 1 {
				t.Errorf("%d token requests, want 1 (the token is reused)", n)
			}
		})
	}
	basic := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Basic realm="Registry"`)
			w.WriteHeader(http.StatusUnauthorized)
		})
	}
	c := newClient(t, newTestRegistry(t, basic).host)
	if _, _, err := c.Manifest(bg, "cairn/edge", "1"); err == nil || !strings.Contains(err.Error(), `"basic" authentication`) {
		t.Fatalf("Manifest behind basic auth = %v", err)
	}
}

func TestFetch(t *testing.T) {
	const size = 3<<20 + 12345
	slotData := random(7, size)
	ignoreRange := onBlobGET(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		r.Header.Del("Range")
		next.ServeHTTP(w, r)
	})
	wrongRange := onBlobGET(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		next.ServeHTTP(&respWriter{ResponseWriter: w, header: func(code int, h http.Header) int {
			h.Set("Content-Range", "bytes 0-9/"+fmt.Sprint(size))
			return code
		}}, r)
	})
	// truncate drops the connection after at bytes of the body of the
	// first n blob responses.
	truncate := func(n, at int) func(http.Handler) http.Handler {
		var calls counter
		return onBlobGET(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if calls.inc() > n {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(&respWriter{ResponseWriter: w, body: func(p []byte, written int) []byte {
				if written+len(p) > at {
					panic(http.ErrAbortHandler) // drops the connection mid-body
				}
				return p
			}}, r)
		})
	}
	unavailable := func(n int) func(http.Handler) http.Handler {
		var calls counter
		return onBlobGET(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			if calls.inc() <= n {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	for _, tc := range []struct {
		name string
		wrap func(http.Handler) http.Handler
		from int64
		err  string // error text; empty means success
		is   error
	}{
		{name: "ranges", wrap: nil},
		{name: "resume", wrap: nil, from: size / 3},
		{name: "resume at end", wrap: nil, from: size},
		{name: "registry ignores Range, from 0", wrap: ignoreRange},
		{name: "registry ignores Range, resume", wrap: ignoreRange, from: 1000, err: "sent the whole blob", is: ErrRangeUnsupported},
		{name: "wrong Content-Range", wrap: wrongRange, err: "Content-Range"},
		{name: "truncated bodies", wrap: truncate(3, 300<<10)},
		{name: "always truncated, with progress", wrap: truncate(1<<30, 300<<10)},
		{name: "always truncated, no progress", wrap: truncate(1<<30, 0), err: "gave up"},
		{name: "503 then served", wrap: unavailable(3)},
		{name: "always 503", wrap: unavailable(1 << 30), err: "503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestRegistry(t, tc.wrap)
			_, slot := tr.pushArtifact(t, "cairn/edge", "1", "pc", slotData)
			c := newClient(t, tr.host)
			var out bytes.Buffer
			var h = sha256.New()
			h.Write(slotData[:tc.from])
			var last int64
			err := c.Fetch(bg, "cairn/edge", slot, &out, FetchOptions{From: tc.from, Hash: h, Progress: func(d int64) { last = d }})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || (tc.is != nil && !errors.Is(err, tc.is)) {
					t.Fatalf("Fetch = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), slotData[tc.from:]) || last != size && tc.from != size {
				t.Fatalf("Fetch wrote %d bytes (progress %d), want %d", out.Len(), last, size-tc.from)
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	tr := newTestRegistry(t, nil)
	_, slot := tr.pushArtifact(t, "cairn/edge", "1", "pc", random(8, 2<<20))
	c := newClient(t, tr.host)
	missing := slot
	missing.Digest = "sha256:" + strings.Repeat("2", 64)
	if err := c.Fetch(bg, "cairn/edge", missing, io.Discard, FetchOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing blob: %v, want ErrNotFound", err)
	}
	if err := c.Fetch(bg, "cairn/edge", slot, io.Discard, FetchOptions{From: 5}); err == nil || !strings.Contains(err.Error(), "HashPrefix") {
		t.Errorf("resume without a hash: %v", err)
	}
	// A resume whose first bytes changed on disk: the whole does not verify.
	if err := c.Fetch(bg, "cairn/edge", slot, io.Discard, FetchOptions{From: 5, Hash: sha256.New()}); err == nil || !strings.Contains(err.Error(), "retry from byte 0") {
		t.Errorf("resume with a wrong hash: %v", err)
	}
	// The writer's error is final: no retry, no backoff.
	var writes counter
	broken := writerFunc(func(p []byte) (int, error) { writes.inc(); return 0, errors.New("disk full") })
	if err := c.Fetch(bg, "cairn/edge", slot, broken, FetchOptions{}); err == nil || !strings.Contains(err.Error(), "disk full") || writes.get() != 1 {
		t.Errorf("writer error: %v after %d writes", err, writes.get())
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := c.Fetch(ctx, "cairn/edge", slot, io.Discard, FetchOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := c.FetchRange(bg, "cairn/edge", slot, slot.Size-10, 11, io.Discard); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("range past the end: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSpottyLink is the spotty link at unit scale: a proxy between
// client and registry cuts the connection three times and stalls it once
// mid-download. The download completes, verified, and receives at most
// 5 % more than the blob.
func TestSpottyLink(t *testing.T) {
	tr := newTestRegistry(t, nil)
	const size = 8 << 20
	_, slot := tr.pushArtifact(t, "cairn/edge", "1", "pc", random(9, size))
	p, err := faultproxy.Start(faultproxy.Options{Upstream: tr.host, Total: []faultproxy.Fault{
		{After: 1<<20 + 777, Cut: true},
		{After: 3<<20 + 4242, Cut: true},
		{After: 4 << 20, Stall: 2 * time.Second},
		{After: 6<<20 + 1, Cut: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := newClient(t, p.Addr(), func(o *Options) { o.RangeSize = 2 << 20 })
	h := sha256.New()
	start := time.Now()
	if err := c.Fetch(bg, "cairn/edge", slot, h, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	ratio := float64(c.Received()) / size
	t.Logf("%d bytes in %v over %d connections: received %d (%.4f×), proxy sent %d; %d cuts, %d stall",
		size, time.Since(start).Round(time.Millisecond), st.Conns, c.Received(), ratio, st.Down, st.Cuts, st.Stalls)
	if st.Cuts != 3 || st.Stalls != 1 {
		t.Errorf("proxy made %d cuts and %d stalls, want 3 and 1", st.Cuts, st.Stalls)
	}
	if ratio > 1.05 {
		t.Errorf("received %.3f× the blob, want ≤ 1.05×", ratio)
	}
}

// TestRedirect follows a registry's redirect to blob storage for every
// range, without sending the registry's token there.
func TestRedirect(t *testing.T) {
	data := random(10, 3<<20)
	var storageAuth counter
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			storageAuth.inc()
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	}))
	defer storage.Close()
	var tokens counter
	auth := tokenAuth(t, &tokens, false)
	redirect := onBlobGET(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		http.Redirect(w, r, storage.URL+"/presigned?sig=x", http.StatusTemporaryRedirect)
	})
	tr := newTestRegistry(t, func(h http.Handler) http.Handler { return auth(redirect(h)) })
	c := newClient(t, tr.host)
	desc := artifact.Descriptor{MediaType: artifact.SlotMediaType, Digest: Digest(data), Size: int64(len(data))}
	var out bytes.Buffer
	if err := c.Fetch(bg, "cairn/edge", desc, &out, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("redirected download differs")
	}
	if n := storageAuth.get(); n != 0 {
		t.Errorf("the registry's token went to blob storage %d times", n)
	}
}

func TestMaxRate(t *testing.T) {
	tr := newTestRegistry(t, nil)
	_, slot := tr.pushArtifact(t, "cairn/edge", "1", "pc", random(11, 1<<20))
	c := newClient(t, tr.host, func(o *Options) { o.MaxRate = 4 << 20 })
	start := time.Now()
	if err := c.Fetch(bg, "cairn/edge", slot, io.Discard, FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("1 MiB at 4 MiB/s took %v, want ≥ 250 ms", d)
	}
}

func TestNew(t *testing.T) {
	for _, o := range []Options{{Host: "edge"}, {Host: ""}, {Host: "r.io", MaxRate: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
	c, err := New(Options{Host: "r.io"})
	if err != nil || c.base != "https://r.io" {
		t.Fatalf("New = %v, %v", c, err)
	}
}
