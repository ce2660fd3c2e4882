// Package registry is the agent's small OCI distribution client: it reads
// manifests and small blobs, resolves an update reference to the artifact
// for this node, and downloads large blobs (the slot) as closed HTTP Range
// requests that survive dropped and stalled connections. It uses net/http
// only, so the agent stays small; go-containerregistry serves it in tests.
//
//	c, err := registry.New(registry.Options{Host: ref.Host, MaxRate: 1 << 20, Logger: log})
//	res, err := c.Resolve(ctx, ref, "qemu-x86_64", "amd64")
//	// check res.Digest's signature, res.Config's version, res.Update.Slot.Size …
//	err = c.Fetch(ctx, ref.Repo, res.Update.Slot, slotWriter, registry.FetchOptions{
//		Progress: func(done int64) { … },
//	})
//
// Fetch verifies the SHA-256 of the whole blob at the end; FetchRange
// fetches a part of one for a delta (agent/update/chunk), whose chunks the
// caller verifies. To resume after a reboot, re-hash what is on disk and
// pass it as FetchOptions.From and FetchOptions.Hash.
//
// Authentication: anonymous, or the Docker token flow (a 401 with
// WWW-Authenticate: Bearer realm=…,service=…,scope=… is answered by
// getting an anonymous token from the realm). Credentials are not
// supported: an edge node pulls public or token-served repositories.
package registry

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// ErrNotFound is wrapped by errors for a manifest, tag or blob the registry
// does not have (HTTP 404).
var ErrNotFound = errors.New("not found in the registry")

// ErrRangeUnsupported is wrapped by errors when the registry ignores HTTP
// Range requests (answers 200 with the whole blob) where a part is needed:
// a delta or a resume. Fall back to a full download from byte 0.
var ErrRangeUnsupported = errors.New("registry does not serve byte ranges")

// Media types of manifests the client asks for.
const (
	DockerManifestMediaType     = "application/vnd.docker.distribution.manifest.v2+json"
	DockerManifestListMediaType = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// Defaults for Options.
const (
	DefaultRangeSize    = 4 << 20
	DefaultStallTimeout = 30 * time.Second
	DefaultMaxAttempts  = 8
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultUserAgent    = "cairn-agent"
)

// Options configure a Client.
type Options struct {
	// Host is the registry's host[:port], as in a Reference.
	Host string
	// PlainHTTP talks HTTP instead of HTTPS (a registry on the local network).
	PlainHTTP bool
	// RootCAs verify the registry's certificate; nil uses the system roots.
	RootCAs *x509.CertPool
	// UserAgent is sent with every request (default DefaultUserAgent).
	UserAgent string
	// MaxRate caps the bytes per second read from the network, over all
	// requests of this client, for metered links; 0 means no cap.
	MaxRate int64
	// Logger gets a line per retry at Warn and per request at Debug
	// (default: slog.Default()).
	Logger *slog.Logger
	// Transport replaces the HTTP transport (tests); RootCAs is then unused.
	Transport http.RoundTripper

	// RangeSize is the most bytes one ranged request asks for (default
	// DefaultRangeSize): a cut costs at most a reconnect, never a restart.
	RangeSize int64
	// StallTimeout: a request that receives no byte for this long is
	// cancelled and retried (default DefaultStallTimeout).
	StallTimeout time.Duration
	// MaxAttempts is how many attempts in a row may fail without a byte of
	// progress before a download gives up (default DefaultMaxAttempts).
	// Attempts that make progress reset the count; the context ends all.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential wait between
	// attempts, which is jittered (defaults DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
}

// Client talks to one registry. It is safe for concurrent use.
type Client struct {
	host      string
	base      string // scheme://host
	plainHTTP bool
	userAgent string
	http      *http.Client
	log       *slog.Logger
	limit     *limiter
	opt       Options

	mu     sync.Mutex
	tokens map[string]string // scope → bearer token

	received atomic.Int64
}

// New returns a client for the registry at o.Host.
func New(o Options) (*Client, error) {
	if err := checkHost(o.Host); err != nil {
		return nil, fmt.Errorf("registry client: %w", err)
	}
	if o.MaxRate < 0 {
		return nil, fmt.Errorf("registry client: MaxRate %d is negative (0 means no cap)", o.MaxRate)
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RangeSize <= 0 {
		o.RangeSize = DefaultRangeSize
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = DefaultStallTimeout
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	rt := o.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
		t.ResponseHeaderTimeout = 0 // the stall timer covers it
		rt = t
	}
	scheme := "https"
	if o.PlainHTTP {
		scheme = "http"
	}
	c := &Client{
		host: o.Host, base: scheme + "://" + o.Host, plainHTTP: o.PlainHTTP,
		userAgent: o.UserAgent, log: o.Logger.With("registry", o.Host), opt: o,
		tokens: map[string]string{},
	}
	if o.MaxRate > 0 {
		c.limit = &limiter{rate: o.MaxRate}
	}
	c.http = &http.Client{Transport: rt, CheckRedirect: c.checkRedirect}
	return c, nil
}

// checkRedirect follows a registry's redirect to blob storage, but never
// from HTTPS to HTTP, and without our token on another host (presigned
// storage URLs refuse one, and it is not theirs).
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("registry %s: more than 10 redirects", c.host)
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("registry %s redirected to plain HTTP %s (refused)", c.host, req.URL.Host)
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// Received returns the response body bytes this client has read from the
// network so far: manifests, blobs and ranges, including bytes of attempts
// that were cut. It is the "bytes fetched" figure.
func (c *Client) Received() int64 { return c.received.Load() }

// Host returns the registry's host[:port].
func (c *Client) Host() string { return c.host }

// Digest returns the sha256 digest of b in OCI form.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// do sends a GET for path (under /v2/) with the headers, getting a bearer
// token for repo when the registry asks for one. The caller closes the body.
func (c *Client) do(ctx context.Context, repo, path string, hdr http.Header) (*http.Response, error) {
	scope := "repository:" + repo + ":pull"
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v2/"+path, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", c.userAgent)
		c.mu.Lock()
		tok := c.tokens[scope]
		c.mu.Unlock()
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		c.log.Debug("request", "path", path, "range", hdr.Get("Range"))
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body = &countingBody{ReadCloser: resp.Body, c: c, ctx: ctx}
		if resp.StatusCode != http.StatusUnauthorized || try > 0 {
			return resp, nil
		}
		wa := resp.Header.Get("WWW-Authenticate")
		resp.Body.Close()
		ch, err := parseChallenge(wa)
		if err != nil {
			return nil, &authError{fmt.Errorf("registry %s answered 401 with %w", c.host, err)}
		}
		if ch.scheme != "bearer" {
			return nil, &authError{fmt.Errorf("registry %s wants %q authentication for %s; the agent pulls anonymously or with a bearer token (make the repository public)", c.host, ch.scheme, repo)}
		}
		tok, err = c.token(ctx, ch, scope)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.tokens[scope] = tok
		c.mu.Unlock()
	}
}

// authError is a refusal to authenticate: retrying will not help.
type authError struct{ err error }

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// countingBody counts the bytes read and applies the rate cap.
type countingBody struct {
	io.ReadCloser
	c   *Client
	ctx context.Context
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.c.limit != nil && len(p) > 32<<10 {
		p = p[:32<<10] // small reads keep the cap smooth
	}
	n, err := b.ReadCloser.Read(p)
	b.c.received.Add(int64(n))
	if werr := b.c.limit.wait(b.ctx, n); werr != nil && err == nil {
		err = werr
	}
	return n, err
}

// count wraps a body not fetched with do (the token server's).
func (c *Client) count(r io.Reader) io.Reader {
	return &countingBody{ReadCloser: io.NopCloser(r), c: c, ctx: context.Background()}
}

// limiter spreads reads over time so that they average rate bytes/s.
type limiter struct {
	rate int64
	mu   sync.Mutex
	next time.Time // when the bytes read so far are paid for
}

func (l *limiter) wait(ctx context.Context, n int) error {
	if l == nil || n <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(int64(n) * int64(time.Second) / l.rate))
	d := l.next.Sub(now)
	l.mu.Unlock()
	if d < 20*time.Millisecond {
		return nil
	}
	return sleep(ctx, d)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// statusError is an HTTP answer the client did not want.
type statusError struct {
	what   string
	code   int
	status string
	msg    string // the registry's error text, if it sent one
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s: registry answered %s%s", e.what, e.status, e.msg)
	switch {
	case e.code == http.StatusNotFound:
		s += " (check the reference, or push it first)"
	case e.code == http.StatusUnauthorized || e.code == http.StatusForbidden:
		s += " (the repository is not readable anonymously: make it public)"
	}
	return s
}

func (e *statusError) Unwrap() error {
	if e.code == http.StatusNotFound {
		return ErrNotFound
	}
	return nil
}

// retryable reports whether a later attempt may get another answer.
func (e *statusError) retryable() bool {
	return e.code >= 500 || e.code == http.StatusTooManyRequests || e.code == http.StatusRequestTimeout
}

// httpError reads the registry's error body (bounded) into a statusError.
func httpError(what string, resp *http.Response) *statusError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return &statusError{what: what, code: resp.StatusCode, status: resp.Status, msg: registryMessage(body)}
}

// registryMessage extracts the distribution spec's error list, for the
// person reading the error.
func registryMessage(body []byte) string {
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	var parts []string
	for _, x := range e.Errors[:min(len(e.Errors), 3)] {
		parts = append(parts, trunc(x.Code+": "+x.Message, 200))
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

// checkName refuses a repository or reference that could leave its place
// in a URL path.
func checkName(repo, reference string) error {
	if err := checkRepo(repo); err != nil {
		return err
	}
	if !artifact.ValidDigest(reference) && !tagRE.MatchString(reference) {
		return fmt.Errorf("%q is neither a tag nor a sha256 digest", trunc(reference, 80))
	}
	return nil
}

var manifestAccept = strings.Join([]string{
	artifact.ManifestMediaType, artifact.IndexMediaType,
	DockerManifestMediaType, DockerManifestListMediaType,
}, ", ")

// Manifest gets the manifest or index that reference (a tag or digest)
// names in repo: its media type and its bytes, at most
// artifact.MaxManifestSize. When reference is a digest the bytes are
// checked against it. The body's digest is Digest(body). A missing
// manifest gives an error wrapping ErrNotFound.
func (c *Client) Manifest(ctx context.Context, repo, reference string) (mediaType string, body []byte, err error) {
	what := fmt.Sprintf("manifest %s/%s:%s", c.host, repo, reference)
	if artifact.ValidDigest(reference) {
		what = fmt.Sprintf("manifest %s/%s@%s", c.host, repo, reference)
	}
	if err := checkName(repo, reference); err != nil {
		return "", nil, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.do(ctx, repo, repo+"/manifests/"+reference, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w (is the registry reachable?)", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil, httpError(what, resp)
	}
	if resp.ContentLength > artifact.MaxManifestSize {
		return "", nil, fmt.Errorf("%s is %d bytes, more than the %d allowed (not a Cairn artifact?)", what, resp.ContentLength, artifact.MaxManifestSize)
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, artifact.MaxManifestSize+1))
	if err != nil {
		return "", nil, fmt.Errorf("%s: reading: %w", what, err)
	}
	if len(body) > artifact.MaxManifestSize {
		return "", nil, fmt.Errorf("%s is more than the %d bytes allowed (not a Cairn artifact?)", what, artifact.MaxManifestSize)
	}
	if artifact.ValidDigest(reference) {
		if got := Digest(body); got != reference {
			return "", nil, fmt.Errorf("%s: the registry sent bytes with digest %s (the registry or a proxy changed the manifest: refused)", what, got)
		}
	}
	if d := resp.Header.Get("Docker-Content-Digest"); d != "" && d != Digest(body) {
		c.log.Warn("the registry's Docker-Content-Digest differs from the manifest's bytes; using the bytes' digest",
			"manifest", what, "header", d, "digest", Digest(body))
	}
	mediaType, _, _ = strings.Cut(resp.Header.Get("Content-Type"), ";")
	mediaType = strings.TrimSpace(mediaType)
	switch mediaType {
	case artifact.ManifestMediaType, artifact.IndexMediaType, DockerManifestMediaType, DockerManifestListMediaType:
	default:
		// No or a generic content type: take the one the body declares.
		var m struct {
			MediaType string          `json:"mediaType"`
			Manifests json.RawMessage `json:"manifests"`
		}
		if json.Unmarshal(body, &m) == nil {
			mediaType = m.MediaType
			if mediaType == "" && m.Manifests != nil {
				mediaType = artifact.IndexMediaType
			} else if mediaType == "" {
				mediaType = artifact.ManifestMediaType
			}
		}
	}
	return mediaType, body, nil
}

// Blob gets a small blob (a config, a chunk index, a signature) into
// memory: at most max bytes, checked against digest. A missing blob gives
// an error wrapping ErrNotFound.
func (c *Client) Blob(ctx context.Context, repo, digest string, max int64) ([]byte, error) {
	what := fmt.Sprintf("blob %s/%s@%s", c.host, repo, digest)
	if !artifact.ValidDigest(digest) {
		return nil, fmt.Errorf("%s: not a sha256 digest", what)
	}
	if err := checkRepo(repo); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.do(ctx, repo, repo+"/blobs/"+digest, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is the registry reachable?)", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, httpError(what, resp)
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", what, resp.ContentLength, max)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading: %w", what, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is more than the %d bytes allowed", what, max)
	}
	if got := Digest(b); got != digest {
		return nil, fmt.Errorf("%s: the registry sent bytes with digest %s (corrupt or tampered blob: refused)", what, got)
	}
	return b, nil
}

// Resolved is the artifact a reference names for one node.
type Resolved struct {
	// Ref is the reference resolved.
	Ref Reference
	// Digest is the artifact manifest's digest: what a signature signs and
	// what the node records as installed.
	Digest string
	// IndexDigest is the index's digest when Ref named an index of boards.
	IndexDigest string
	// Manifest is the artifact manifest's bytes.
	Manifest []byte
	// Update is the parsed manifest; Config its parsed config blob.
	Update *artifact.Update
	Config *artifact.Config
}

// Resolve finds the artifact for this node's board and arch: it reads the
// manifest ref names, follows an index to the board's entry, checks the
// manifest (artifact.ParseUpdate), reads and checks its config, that the
// two agree (artifact.Match) and that it is for board and arch. Nothing is downloaded beyond manifests and the
// config.
func (c *Client) Resolve(ctx context.Context, ref Reference, board, arch string) (*Resolved, error) {
	if ref.Host != c.host {
		return nil, fmt.Errorf("resolving %s with a client for registry %s", ref, c.host)
	}
	res := &Resolved{Ref: ref}
	mt, body, err := c.Manifest(ctx, ref.Repo, ref.Reference())
	if err != nil {
		return nil, err
	}
	if mt == artifact.IndexMediaType || mt == DockerManifestListMediaType {
		ix, err := artifact.ParseIndex(body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		d, err := ix.Select(board, arch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		res.IndexDigest = Digest(body)
		if mt, body, err = c.Manifest(ctx, ref.Repo, d.Digest); err != nil {
			return nil, err
		}
		if mt == artifact.IndexMediaType || mt == DockerManifestListMediaType {
			return nil, fmt.Errorf("%s: the index entry for board %s is another index (push the artifact with cairn push)", ref, board)
		}
	}
	res.Digest = Digest(body)
	res.Manifest = body
	if res.Update, err = artifact.ParseUpdate(body); err != nil {
		return nil, fmt.Errorf("%s@%s: %w", ref, res.Digest, err)
	}
	cfg, err := c.Blob(ctx, ref.Repo, res.Update.Manifest.Config.Digest, artifact.MaxConfigSize)
	if err != nil {
		return nil, err
	}
	if res.Config, err = artifact.ParseConfig(cfg); err != nil {
		return nil, fmt.Errorf("%s@%s: %w", ref, res.Digest, err)
	}
	if err := artifact.Match(res.Update, res.Config); err != nil {
		return nil, fmt.Errorf("%s@%s: %w", ref, res.Digest, err)
	}
	if err := res.Config.Check(board, arch); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return res, nil
}
