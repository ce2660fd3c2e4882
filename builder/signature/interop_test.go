package signature

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/update/sign"
	"github.com/google/go-containerregistry/pkg/registry"
)

// The real clients, as `make tools` builds them: cosign v2 and v3 from the
// module proxy. The test runs them against go-containerregistry's registry
// on loopback:
//
//   - our Attach, then `cosign verify --key` of each accepts it;
//   - `cosign sign --key` of each (keys from cosign generate-key-pair), then
//     our sign.Verify accepts it, in the form that cosign wrote;
//   - tampered, other-key and absent signatures are refused as such;
//   - why Attach writes no bundle (a bundle hides the .sig from both).
func TestInteropCosign(t *testing.T) {
	tools := toolsDir(t)
	host := startRegistry(t)
	ctx := context.Background()

	key, _ := sign.GenerateKey()
	pubPEM, _ := sign.MarshalPublicKey(&key.PublicKey)
	cairnPub := filepath.Join(t.TempDir(), "cairn.pub")
	if err := os.WriteFile(cairnPub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	newArtifact := func() string { // a fresh repository per case
		n++
		return "edge/case" + string(rune('a'+n))
	}

	for _, cosign := range []string{"cosign2", "cosign3"} {
		t.Run(cosign+" verifies Attach", func(t *testing.T) {
			repo := newArtifact()
			ref := pushArtifact(t, host+"/"+repo)
			if err := Attach(ctx, ref, key); err != nil {
				t.Fatal(err)
			}
			run(t, tools, cosign, t.TempDir(), "verify", "--key", cairnPub, "--insecure-ignore-tlog",
				"--allow-insecure-registry", "--allow-http-registry", ref.String())
		})
	}

	// Once a bundle refers to the artifact (here: another key's, from
	// cosign v3 sign), both cosigns look only at bundles: v2 then wants a
	// trusted root it cannot fetch offline, and v3 finds none by our key
	// unless told --new-bundle-format=false. A bundle of ours next to the
	// .sig would break cosign v2 always; that is why Attach writes none.
	t.Run("a bundle hides the .sig", func(t *testing.T) {
		dir := t.TempDir()
		run(t, tools, "cosign3", dir, "generate-key-pair")
		ref := pushArtifact(t, host+"/"+newArtifact())
		if err := Attach(ctx, ref, key); err != nil {
			t.Fatal(err)
		}
		run(t, tools, "cosign3", dir, "sign", "--key", filepath.Join(dir, "cosign.key"), "-y", "--allow-insecure-registry",
			"--allow-http-registry", "--tlog-upload=false", "--use-signing-config=false", ref.String())
		verify := []string{"verify", "--key", cairnPub, "--insecure-ignore-tlog", "--allow-insecure-registry", "--allow-http-registry"}
		for _, c := range []struct {
			tool, flag, want string // want: the failure seen; empty: accepted
		}{
			{"cosign2", "", "trusted root is required"},
			{"cosign3", "", "no matching attestations"},
			{"cosign3", "--new-bundle-format=false", ""},
		} {
			args := append(append(slices.Clone(verify), strings.Fields(c.flag)...), ref.String())
			out, err := runErr(tools, c.tool, t.TempDir(), args...)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%s verify %s: %v\n%s", c.tool, c.flag, err, out)
			case c.want != "" && err == nil:
				t.Errorf("%s verify %s now accepts our .sig next to a bundle: revisit the package doc\n%s", c.tool, c.flag, out)
			case c.want != "" && !strings.Contains(string(out), c.want):
				t.Errorf("%s verify %s failed otherwise than seen before (want %q):\n%s", c.tool, c.flag, c.want, out)
			}
		}
	})

	// A registry with the OCI referrers API, where cosign v3 writes no
	// fallback tag: Verify finds the bundle through the API.
	apiHost := startRegistry(t, registry.WithReferrersSupport(true))

	for _, tc := range []struct {
		cosign string
		host   string
		form   sign.Form
		flags  []string // what signing offline takes
	}{
		{"cosign2", host, sign.FormSimpleSigning, []string{"--tlog-upload=false"}},
		// v3 refuses --tlog-upload=false with its default TUF signing config.
		{"cosign3", host, sign.FormBundle, []string{"--tlog-upload=false", "--use-signing-config=false"}},
		{"cosign3 referrers API", apiHost, sign.FormBundle, []string{"--tlog-upload=false", "--use-signing-config=false"}},
	} {
		t.Run("Verify accepts "+tc.cosign+" sign", func(t *testing.T) {
			cosign, reg := strings.Fields(tc.cosign)[0], httpRegistry{tc.host}
			dir := t.TempDir()
			run(t, tools, cosign, dir, "generate-key-pair")
			b, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
			if err != nil {
				t.Fatal(err)
			}
			cosignPub, err := config.ParsePublicKey(b)
			if err != nil {
				t.Fatal(err)
			}
			// cosign's own private key is encrypted: LoadPrivateKey says so.
			if _, err := sign.LoadPrivateKey(filepath.Join(dir, "cosign.key")); err == nil || !strings.Contains(err.Error(), "cosign sign --key") {
				t.Errorf("LoadPrivateKey(cosign.key) = %v, want the hint for encrypted cosign keys", err)
			}

			repo := newArtifact()
			ref := pushArtifact(t, tc.host+"/"+repo)
			keys := []*ecdsa.PublicKey{&key.PublicKey, cosignPub}
			if _, err := sign.Verify(ctx, reg, repo, ref.DigestStr(), keys); !errors.Is(err, sign.ErrUnsigned) {
				t.Fatalf("before signing: Verify = %v, want ErrUnsigned", err)
			}
			args := append([]string{"sign", "--key", filepath.Join(dir, "cosign.key"), "-y",
				"--allow-insecure-registry", "--allow-http-registry"}, tc.flags...)
			run(t, tools, cosign, dir, append(args, ref.String())...)

			res, err := sign.Verify(ctx, reg, repo, ref.DigestStr(), keys)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.Form != tc.form || res.Key != sign.Fingerprint(cosignPub) {
				t.Fatalf("Verify = %+v, want form %q by %s", res, tc.form, sign.Fingerprint(cosignPub))
			}
			t.Logf("%s sign wrote: %s (%s)", tc.cosign, res.Form, res.Manifest)
			if tc.host == apiHost {
				if _, _, err := reg.Manifest(ctx, repo, sign.ReferrersTag(ref.DigestStr())); !errors.Is(err, sign.ErrNotFound) {
					t.Fatalf("%s wrote a fallback tag on a registry with the referrers API (%v): the API path is not tested", cosign, err)
				}
			}

			if _, err := sign.Verify(ctx, reg, repo, ref.DigestStr(), []*ecdsa.PublicKey{&key.PublicKey}); !errors.Is(err, sign.ErrBadSignature) {
				t.Fatalf("other key: Verify = %v, want ErrBadSignature", err)
			}
			if _, err := sign.Verify(ctx, tampering{reg}, repo, ref.DigestStr(), keys); !errors.Is(err, sign.ErrBadSignature) {
				t.Fatalf("tampered: Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

// tampering is a registry that changes the identity in every signature
// payload it serves, under a matching digest: what a registry's owner
// could do.
type tampering struct{ httpRegistry }

func (r tampering) Blob(ctx context.Context, repo, digest string, max int64) ([]byte, error) {
	b, err := r.httpRegistry.Blob(ctx, repo, digest, max)
	if err != nil {
		return nil, err
	}
	var bundle struct {
		MediaType            string          `json:"mediaType"`
		VerificationMaterial json.RawMessage `json:"verificationMaterial"`
		DSSEEnvelope         *struct {
			Payload     []byte          `json:"payload"`
			PayloadType string          `json:"payloadType"`
			Signatures  json.RawMessage `json:"signatures"`
		} `json:"dsseEnvelope"`
	}
	if json.Unmarshal(b, &bundle) == nil && bundle.DSSEEnvelope != nil {
		// The same statement with one more space: still valid JSON.
		bundle.DSSEEnvelope.Payload = bytes.Replace(bundle.DSSEEnvelope.Payload, []byte(`"_type"`), []byte(` "_type"`), 1)
		return json.Marshal(bundle)
	}
	return bytes.Replace(b, []byte("127.0.0.1"), []byte("127.0.0.2"), 1), nil
}

// toolsDir finds the real clients: $CAIRN_TEST_TOOLS, or out/bin/tools in
// the repository; the test is skipped when they are not built.
func toolsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CAIRN_TEST_TOOLS")
	if dir == "" {
		root, err := filepath.Abs("../..")
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "out", "bin", "tools")
	}
	for _, tool := range []string{"cosign2", "cosign3"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			t.Skipf("real cosign not built (no %s in %s): run make tools, or set CAIRN_TEST_TOOLS", tool, dir)
		}
	}
	return dir
}

// run runs a real client in dir, offline: a home of its own, no key
// password, and a proxy on a closed loopback port so that the TUF lookups
// cosign tries fail here at once (loopback, the registry, is not proxied).
func run(t *testing.T, tools, tool, dir string, args ...string) {
	t.Helper()
	if out, err := runErr(tools, tool, dir, args...); err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
}

func runErr(tools, tool, dir string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tools, tool), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "COSIGN_PASSWORD=", "COSIGN_YES=true",
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=")
	return cmd.CombinedOutput()
}
