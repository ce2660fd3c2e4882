// Package push sends OS update artifacts — the OCI layout directories
// `cairn build --format oci` writes (builder/output) — to a registry with
// go-containerregistry: one board's artifact as the manifest at the
// reference, several boards' as an OCI index over their manifests whose
// entries carry the board and arch annotations and the platform.
//
//	arts, err := push.Open(dirs...)          // read and checked, nothing sent
//	ref, err := push.ParseRef("registry.example/cairn/edge:1.2.0", false)
//	res, err := push.Push(ctx, ref, arts, push.Options{Sign: sign})
//	fmt.Println(res.Ref.Context().Digest(res.Digest))
//
// Nothing moves the reference before everything it names is in the
// registry: blobs first (each skipped when the registry already holds it),
// then each manifest by digest, its signature, the index by digest and its
// signature, and only then the tag. A push cut at any point leaves the tag
// where it was; pushed again, it sends only what is missing.
package push

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact is one board's update artifact read from an OCI layout directory.
type Artifact struct {
	// Dir is the layout directory.
	Dir string
	// Update is the checked manifest; Config its checked config.
	Update *artifact.Update
	Config *artifact.Config
	// Manifest is the manifest as stored (its digest is the artifact's).
	Manifest []byte
	// Digest is the manifest's digest, sha256:<hex>.
	Digest string
}

// Open reads the artifacts of layout directories and checks them as the
// agent will (artifact.ParseUpdate, artifact.ParseConfig, artifact.Match,
// and a Raspberry Pi's board files layer, artifact.VerifyBootFiles), and
// that every blob is there with its size. Two artifacts for one board, or artifacts
// of different images or versions, are refused: they cannot share a
// reference.
func Open(dirs ...string) ([]*Artifact, error) {
	if len(dirs) == 0 {
		return nil, errors.New("no artifact to push (build one with cairn build --format oci)")
	}
	var arts []*Artifact
	for _, dir := range dirs {
		a, err := open(dir)
		if err != nil {
			return nil, err
		}
		for _, o := range arts {
			if o.Config.Board == a.Config.Board {
				return nil, fmt.Errorf("%s and %s are both for board %s: one reference holds one artifact per board (push them to two references)", o.Dir, a.Dir, a.Config.Board)
			}
			if o.Config.Name != a.Config.Name || o.Config.Version != a.Config.Version {
				return nil, fmt.Errorf("%s is %s %s but %s is %s %s: one reference holds one image version (build both from the same spec)", o.Dir, o.Config.Name, o.Config.Version, a.Dir, a.Config.Name, a.Config.Version)
			}
		}
		arts = append(arts, a)
	}
	return arts, nil
}

func open(dir string) (*Artifact, error) {
	fix := "(build it again with cairn build --format oci)"
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout directory: %v %s", dir, err, fix)
	}
	ix, err := artifact.ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s/index.json: %v %s", dir, err, fix)
	}
	if len(ix.Manifests) != 1 {
		return nil, fmt.Errorf("%s/index.json names %d manifests, want the one of a Cairn update artifact %s", dir, len(ix.Manifests), fix)
	}
	a := &Artifact{Dir: dir, Digest: ix.Manifests[0].Digest}
	if a.Manifest, err = readBlob(dir, ix.Manifests[0]); err != nil {
		return nil, fmt.Errorf("%s: manifest: %v %s", dir, err, fix)
	}
	if a.Update, err = artifact.ParseUpdate(a.Manifest); err != nil {
		return nil, fmt.Errorf("%s: %v", dir, err)
	}
	cfg, err := readBlob(dir, a.Update.Manifest.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: config: %v %s", dir, err, fix)
	}
	if a.Config, err = artifact.ParseConfig(cfg); err != nil {
		return nil, fmt.Errorf("%s: %v", dir, err)
	}
	if err := artifact.Match(a.Update, a.Config); err != nil {
		return nil, fmt.Errorf("%s: %v", dir, err)
	}
	for _, l := range a.Update.Manifest.Layers {
		st, err := os.Stat(blobPath(dir, l.Digest))
		if err != nil {
			return nil, fmt.Errorf("%s: layer %s: %v %s", dir, l.MediaType, err, fix)
		}
		if st.Size() != l.Size {
			return nil, fmt.Errorf("%s: layer %s is %d bytes, the manifest says %d %s", dir, l.MediaType, st.Size(), l.Size, fix)
		}
	}
	if d := a.Update.BootFiles; d != nil {
		// A few MiB, read whole as the node will: a layer the node would
		// refuse is not sent.
		f, err := os.Open(blobPath(dir, d.Digest))
		if err != nil {
			return nil, fmt.Errorf("%s: %v %s", dir, err, fix)
		}
		defer f.Close()
		if err := artifact.VerifyBootFiles(f, *d, a.Config.BootFiles); err != nil {
			return nil, fmt.Errorf("%s: %v", dir, err)
		}
	}
	return a, nil
}

// readBlob reads a small blob (manifest, config) and checks its digest.
func readBlob(dir string, d artifact.Descriptor) ([]byte, error) {
	if !artifact.ValidDigest(d.Digest) || d.Size > artifact.MaxManifestSize {
		return nil, fmt.Errorf("descriptor %s of %d bytes is not one to read", d.Digest, d.Size)
	}
	b, err := os.ReadFile(blobPath(dir, d.Digest))
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); "sha256:"+hex.EncodeToString(sum[:]) != d.Digest || int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s does not match its digest or size", d.Digest)
	}
	return b, nil
}

func blobPath(dir, digest string) string {
	return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// ParseRef parses the reference to push to. It must name a tag: the
// agent and `cairn node upgrade` follow tags, and a digest cannot be
// pushed to. insecure allows plain HTTP; go-containerregistry uses it on
// its own for localhost and 127.0.0.1.
func ParseRef(ref string, insecure bool) (name.Tag, error) {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	if strings.Contains(ref, "@") {
		return name.Tag{}, fmt.Errorf("reference %q names a digest: push to a tag, e.g. %s", ref, strings.SplitN(ref, "@", 2)[0]+":1.0.0")
	}
	t, err := name.NewTag(ref, opts...)
	if err != nil {
		if _, lax := name.NewTag(ref); lax == nil {
			return name.Tag{}, fmt.Errorf("reference %q has no tag: name one, e.g. %s:1.0.0 (the version, or a channel such as stable)", ref, ref)
		}
		return name.Tag{}, fmt.Errorf("reference %q is not an OCI reference: %v (write HOST[:PORT]/REPOSITORY:TAG, e.g. 127.0.0.1:5000/cairn/edge:1.0.0)", ref, err)
	}
	return t, nil
}

// Options are a push's settings.
type Options struct {
	// Sign, when set, signs a pushed manifest or index by its digest
	// (builder/signature.Attach) before the tag is moved to it; opts reach
	// the same registry with the same credentials.
	Sign func(ctx context.Context, d name.Digest, opts ...remote.Option) error
	// Keychain finds the registry's credentials; nil means the Docker
	// config's (docker login, crane auth login).
	Keychain authn.Keychain
	// Transport carries the requests; nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// Log receives the progress; nil means slog.Default().
	Log *slog.Logger
	// Every is how often a blob's upload logs its progress; zero means 5 s.
	Every time.Duration
}

// Result is what a push did.
type Result struct {
	// Ref is the tag pushed to; Digest is what it now names (the one
	// artifact's manifest, or the index).
	Ref    name.Tag
	Digest string
	// Index tells whether Digest is an index over several boards.
	Index bool
	// Manifests are each board's manifest, in the order pushed.
	Manifests []Pushed
	// Uploaded and Present count blob bytes sent and skipped (already in
	// the registry).
	Uploaded, Present int64
	// Signed tells whether every manifest (and the index) was signed.
	Signed bool
}

// Pushed is one board's manifest in the registry.
type Pushed struct {
	Board, Arch, Version string
	Digest               string
	Size                 int64
}

// Check reaches the registry of ref and asks for push access, as the
// first upload would: cairn push runs it before building, so that a
// registry that is down, speaks plain HTTP or refuses the credentials
// costs no build. It sends nothing.
func Check(ctx context.Context, ref name.Tag, opt Options) error {
	auth, err := authn.Resolve(ctx, cmpOr(opt.Keychain, authn.DefaultKeychain), ref.Context())
	if err != nil {
		return fmt.Errorf("credentials for %s: %w (check the Docker config: docker login %s)", ref.Context(), err, ref.RegistryStr())
	}
	tr := opt.Transport
	if tr == nil {
		tr = remote.DefaultTransport
	}
	if _, err := transport.NewWithContext(ctx, ref.Context().Registry, auth, tr, []string{ref.Scope(transport.PushScope)}); err != nil {
		return explain(ref, "push access", err)
	}
	return nil
}

// Push sends arts to ref: blobs, manifests by digest, signatures, the
// index for several boards, then the tag. Artifacts are pushed in board
// order, so the same artifacts give the same index.
func Push(ctx context.Context, ref name.Tag, arts []*Artifact, opt Options) (*Result, error) {
	if len(arts) == 0 {
		return nil, errors.New("no artifact to push (build one with cairn build --format oci)")
	}
	log := opt.Log
	if log == nil {
		log = slog.Default()
	}
	if opt.Every == 0 {
		opt.Every = 5 * time.Second
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(cmpOr(opt.Keychain, authn.DefaultKeychain))}
	if opt.Transport != nil {
		ropts = append(ropts, remote.WithTransport(opt.Transport))
	}
	pusher, err := remote.NewPusher(ropts...)
	if err != nil {
		return nil, err
	}
	arts = slices.Clone(arts)
	slices.SortFunc(arts, func(a, b *Artifact) int { return strings.Compare(a.Config.Board, b.Config.Board) })

	repo := ref.Context()
	res := &Result{Ref: ref, Signed: opt.Sign != nil}
	fail := func(what string, err error) (*Result, error) {
		return nil, explain(ref, what, err)
	}
	for _, a := range arts {
		blog := log.With("board", a.Config.Board)
		blobs := append([]artifact.Descriptor{a.Update.Manifest.Config}, a.Update.Manifest.Layers...)
		for _, d := range blobs {
			l := &fileLayer{path: blobPath(a.Dir, d.Digest), desc: d, log: blog, every: opt.Every}
			if err := pusher.Upload(ctx, repo, l); err != nil {
				return fail(fmt.Sprintf("upload of %s (%s)", l.title(), a.Dir), err)
			}
			if l.opened {
				res.Uploaded += d.Size
			} else {
				res.Present += d.Size
				blog.Info("blob already in the registry", "blob", l.title(), "size", d.Size)
			}
		}
		dig := repo.Digest(a.Digest)
		if err := pusher.Put(ctx, dig, rawManifest{a.Manifest, artifact.ManifestMediaType}); err != nil {
			return fail("manifest of "+a.Config.Board, err)
		}
		blog.Info("manifest pushed", "digest", a.Digest)
		if opt.Sign != nil {
			if err := opt.Sign(ctx, dig, ropts...); err != nil {
				return fail("signature of "+a.Config.Board+"'s manifest", err)
			}
			blog.Info("manifest signed", "digest", a.Digest)
		}
		res.Manifests = append(res.Manifests, Pushed{Board: a.Config.Board, Arch: a.Config.Arch, Version: a.Config.Version, Digest: a.Digest, Size: int64(len(a.Manifest))})
	}

	top := rawManifest{arts[0].Manifest, artifact.ManifestMediaType}
	res.Digest = arts[0].Digest
	if len(arts) > 1 {
		b, err := Index(arts)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		top = rawManifest{b, artifact.IndexMediaType}
		res.Digest, res.Index = "sha256:"+hex.EncodeToString(sum[:]), true
		dig := repo.Digest(res.Digest)
		if err := pusher.Put(ctx, dig, top); err != nil {
			return fail("index", err)
		}
		log.Info("index pushed", "digest", res.Digest, "boards", len(arts))
		if opt.Sign != nil {
			if err := opt.Sign(ctx, dig, ropts...); err != nil {
				return fail("signature of the index", err)
			}
			log.Info("index signed", "digest", res.Digest)
		}
	}
	// Last: the tag moves only to something complete and signed.
	if err := pusher.Put(ctx, ref, top); err != nil {
		return fail("tag", err)
	}
	log.Info("tagged", "ref", ref.String(), "digest", res.Digest, "uploaded", res.Uploaded, "present", res.Present)
	return res, nil
}

// Index is the OCI index over arts, one entry per board in the given
// order, each with the board, arch, version and title annotations and the
// platform (linux and the arch), so both the agent (artifact.Index.Select)
// and platform-aware clients pick the right one.
func Index(arts []*Artifact) ([]byte, error) {
	c0 := arts[0].Config
	ix := artifact.Index{
		SchemaVersion: 2,
		MediaType:     artifact.IndexMediaType,
		Annotations: map[string]string{
			artifact.AnnotationVersion: c0.Version,
			artifact.AnnotationTitle:   c0.Name,
		},
	}
	if c0.Created != "" {
		ix.Annotations[artifact.AnnotationCreated] = c0.Created
	}
	for _, a := range arts {
		ix.Manifests = append(ix.Manifests, artifact.Descriptor{
			MediaType:    artifact.ManifestMediaType,
			Digest:       a.Digest,
			Size:         int64(len(a.Manifest)),
			ArtifactType: artifact.ArtifactType,
			Annotations: map[string]string{
				artifact.AnnotationBoard:   a.Config.Board,
				artifact.AnnotationArch:    a.Config.Arch,
				artifact.AnnotationVersion: a.Config.Version,
				artifact.AnnotationTitle:   a.Config.Name,
			},
			Platform: &artifact.Platform{OS: "linux", Architecture: a.Config.Arch},
		})
	}
	return json.MarshalIndent(ix, "", "  ")
}

// rawManifest is a manifest or index as bytes, for remote.Put.
type rawManifest struct {
	b         []byte
	mediaType string
}

func (m rawManifest) RawManifest() ([]byte, error) { return m.b, nil }

func (m rawManifest) MediaType() (types.MediaType, error) { return types.MediaType(m.mediaType), nil }

func cmpOr(k, def authn.Keychain) authn.Keychain {
	if k != nil {
		return k
	}
	return def
}

// explain turns a registry error into one that says what to do.
func explain(ref name.Tag, what string, err error) error {
	host := ref.RegistryStr()
	var terr *transport.Error
	var oerr *net.OpError
	var cerr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("push to %s: %s: cancelled; the tag was not moved (push again: what is in the registry is not sent twice)", ref, what)
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		return fmt.Errorf("push to %s: %s: the registry refused access: %v (log in with docker login %s or crane auth login %s)", ref, what, err, host, host)
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("push to %s: registry %s speaks plain HTTP (pass --insecure)", ref, host)
	case errors.As(err, &cerr):
		return fmt.Errorf("push to %s: registry %s has a TLS certificate that does not verify: %v (add its CA to the system's trust store, or use a host name its certificate holds)", ref, host, cerr.Err)
	case errors.As(err, &oerr) && oerr.Op == "dial":
		// "dial tcp HOST: connect: connection refused", without the URLs tried
		return fmt.Errorf("push to %s: registry %s cannot be reached: %v (is it running, and are the host and port in the reference right? a plain-HTTP registry on another host needs --insecure)", ref, host, oerr)
	}
	return fmt.Errorf("push to %s: %s: %w; the tag was not moved", ref, what, err)
}

// fileLayer is a blob of a layout directory as a v1.Layer for upload,
// logging its progress. remote checks with a HEAD whether the registry
// has it and opens it only to send it.
type fileLayer struct {
	path  string
	desc  artifact.Descriptor
	log   *slog.Logger
	every time.Duration
	// opened tells whether the upload read the blob (it was missing).
	opened bool
}

func (l *fileLayer) title() string {
	if t := l.desc.Annotations[artifact.AnnotationTitle]; t != "" {
		return t
	}
	return "config"
}

func (l *fileLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest) }
func (l *fileLayer) DiffID() (v1.Hash, error) { return v1.NewHash(l.desc.Digest) }
func (l *fileLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }

// Compressed opens the blob for sending (again on a retry).
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	l.opened = true
	l.log.Info("uploading", "blob", l.title(), "size", l.desc.Size)
	now := time.Now()
	return &progressReader{f: f, l: l, start: now, last: now}, nil
}

// progressReader logs how much of a blob went out, every l.every and at
// the end.
type progressReader struct {
	f           *os.File
	l           *fileLayer
	n           int64
	start, last time.Time
	done        bool
}

func (r *progressReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.n += int64(n)
	now := time.Now()
	switch {
	case err == io.EOF && !r.done:
		r.done = true
		took := now.Sub(r.start)
		r.l.log.Info("uploaded", "blob", r.l.title(), "bytes", r.n, "took", took.Round(time.Millisecond), "rate", rate(r.n, took))
	case err == nil && now.Sub(r.last) >= r.l.every:
		r.last = now
		pct := 100 * float64(r.n) / float64(max(r.l.desc.Size, 1))
		r.l.log.Info("uploading", "blob", r.l.title(), "bytes", r.n, "of", r.l.desc.Size, "percent", fmt.Sprintf("%.0f", pct), "rate", rate(r.n, now.Sub(r.start)))
	}
	return n, err
}

func (r *progressReader) Close() error { return r.f.Close() }

// rate formats bytes over d as MiB/s.
func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB/s", float64(n)/(1<<20)/d.Seconds())
}

var _ v1.Layer = (*fileLayer)(nil)
