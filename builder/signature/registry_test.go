package signature

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/sign"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// startRegistry runs go-containerregistry's registry on loopback and
// returns its host:port.
func startRegistry(t *testing.T, opts ...registry.Option) string {
	t.Helper()
	opts = append(opts, registry.Logger(log.New(io.Discard, "", 0)))
	s := httptest.NewServer(registry.New(opts...))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// pushArtifact pushes a small manifest shaped like an update artifact
// (our artifactType, config and a slot layer) and returns its digest.
func pushArtifact(t *testing.T, repo string) name.Digest {
	t.Helper()
	r, err := name.NewRepository(repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	cfg := static.NewLayer([]byte(`{"name":"edge","version":"1.0.0","board":"qemu-x86_64","arch":"amd64","cmdline":[]}`), artifact.ConfigMediaType)
	slot := static.NewLayer([]byte("squashfs, in a test"), artifact.SlotMediaType)
	for _, l := range []v1.Layer{cfg, slot} {
		if err := remote.WriteLayer(r, l); err != nil {
			t.Fatal(err)
		}
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifact.ArtifactType,
		Config: descriptor(cfg), Layers: []v1.Descriptor{descriptor(slot)}}
	raw, _ := json.Marshal(m)
	if err := remote.Put(r.Tag("v1"), rawManifest(raw)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return r.Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// httpRegistry is the sign.Registry an agent would have: plain HTTP GETs.
type httpRegistry struct{ host string }

func (h httpRegistry) get(ctx context.Context, path, accept string, max int64) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.host+path, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, "", fmt.Errorf("GET %s: %w", path, sign.ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("GET %s: more than %d bytes", path, max)
	}
	return b, resp.Header.Get("Content-Type"), err
}

func (h httpRegistry) Manifest(ctx context.Context, repo, ref string) (string, []byte, error) {
	b, mt, err := h.get(ctx, "/v2/"+repo+"/manifests/"+ref, artifact.ManifestMediaType+","+artifact.IndexMediaType, artifact.MaxManifestSize)
	return mt, b, err
}

func (h httpRegistry) Blob(ctx context.Context, repo, digest string, max int64) ([]byte, error) {
	b, _, err := h.get(ctx, "/v2/"+repo+"/blobs/"+digest, "*/*", max)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return nil, fmt.Errorf("blob %s: content does not match its digest", digest)
	}
	return b, nil
}

func (h httpRegistry) Referrers(ctx context.Context, repo, digest string) ([]byte, error) {
	b, _, err := h.get(ctx, "/v2/"+repo+"/referrers/"+digest, artifact.IndexMediaType, artifact.MaxManifestSize)
	if err == nil && !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		return nil, fmt.Errorf("referrers of %s: not JSON", digest)
	}
	return b, err
}

func descriptor(l v1.Layer) v1.Descriptor {
	d, _ := l.Digest() // static layers: in memory, cannot fail
	n, _ := l.Size()
	mt, _ := l.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n}
}

// rawManifest is an OCI manifest to put as it is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
