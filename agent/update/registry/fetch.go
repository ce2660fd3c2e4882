package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// FetchOptions tune Fetch.
type FetchOptions struct {
	// From is where the download starts: the caller already holds the
	// blob's first From bytes (written before a reboot and re-hashed) and
	// w continues after them.
	From int64
	// Hash is a SHA-256 already fed with those first From bytes, e.g.
	// from HashPrefix. It is required when From > 0; nil starts a new one.
	// Fetch feeds it after each write to w with exactly the bytes w took:
	// while w.Write runs it covers the bytes written before that call,
	// and when Progress(done) runs it covers done bytes, so a checkpoint
	// taken in either place is consistent.
	Hash hash.Hash
	// Progress, if set, is called as bytes are written with the blob's
	// bytes done so far (From included).
	Progress func(done int64)
}

// HashPrefix returns a SHA-256 fed with the first n bytes of r, to resume a
// Fetch after a reboot from what is already on disk.
func HashPrefix(r io.Reader, n int64) (hash.Hash, error) {
	h := sha256.New()
	if got, err := io.CopyN(h, r, n); err != nil {
		return nil, fmt.Errorf("re-hashing the %d bytes already downloaded (got %d): %w", n, got, err)
	}
	return h, nil
}

// Fetch downloads the blob desc names from repo into w, from opt.From to
// its end, as closed Range requests of at most Options.RangeSize bytes.
// Every response must be a 206 whose Content-Range matches the request (a
// registry that ignores Range is accepted only from byte 0, read as one
// stream). A dropped, truncated or stalled response, a 5xx or a 429 is
// retried with jittered exponential backoff from the byte where it
// stopped, so a cut costs a reconnect, not a restart. Bytes are hashed in
// the order written and the SHA-256 of the whole blob is checked against
// desc.Digest at the end: on a mismatch w holds bytes that must not be
// used. An error from w ends the download at once.
func (c *Client) Fetch(ctx context.Context, repo string, desc artifact.Descriptor, w io.Writer, opt FetchOptions) error {
	what := fmt.Sprintf("blob %s/%s@%s", c.host, repo, desc.Digest)
	if !artifact.ValidDigest(desc.Digest) {
		return fmt.Errorf("%s: not a sha256 digest", what)
	}
	if err := checkRepo(repo); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if opt.From < 0 || opt.From > desc.Size || desc.Size < 0 {
		return fmt.Errorf("%s: cannot start at byte %d of %d", what, opt.From, desc.Size)
	}
	h := opt.Hash
	if h == nil {
		if opt.From > 0 {
			return fmt.Errorf("%s: resuming at byte %d needs the hash of the bytes before it (FetchOptions.Hash, see HashPrefix)", what, opt.From)
		}
		h = sha256.New()
	}
	hw := &hashWriter{w: w, h: h, done: opt.From, progress: opt.Progress}
	if err := c.ranged(ctx, repo, desc, opt.From, desc.Size, hw); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != desc.Digest {
		return fmt.Errorf("%s: the %d bytes downloaded hash to %s (corrupt or tampered blob, or a resume from bytes that changed on disk: the written data is not usable, retry from byte 0)", what, desc.Size, got)
	}
	return nil
}

// FetchRange writes bytes off..off+n-1 of the blob desc names to w, with
// the same ranged requests and retries as Fetch but no digest check (a
// delta checks each chunk's hash itself). A registry that ignores Range
// gives an error wrapping ErrRangeUnsupported unless off is 0.
func (c *Client) FetchRange(ctx context.Context, repo string, desc artifact.Descriptor, off, n int64, w io.Writer) error {
	what := fmt.Sprintf("blob %s/%s@%s", c.host, repo, desc.Digest)
	if !artifact.ValidDigest(desc.Digest) {
		return fmt.Errorf("%s: not a sha256 digest", what)
	}
	if err := checkRepo(repo); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if off < 0 || n < 0 || off > desc.Size || n > desc.Size-off {
		return fmt.Errorf("%s: bytes %d..%d are outside its %d bytes", what, off, off+n-1, desc.Size)
	}
	return c.ranged(ctx, repo, desc, off, off+n, &hashWriter{w: w})
}

// hashWriter writes to w, then feeds what w took to h, in order.
type hashWriter struct {
	w        io.Writer
	h        hash.Hash // nil: no hashing
	done     int64
	progress func(int64)
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	if hw.h != nil {
		hw.h.Write(p[:n])
	}
	hw.done += int64(n)
	if hw.progress != nil && n > 0 {
		hw.progress(hw.done)
	}
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// Errors of one attempt that a later attempt may not repeat.
var (
	errStalled   = errors.New("no data received within the stall timeout")
	errTruncated = errors.New("the response ended early")
)

// transient marks an attempt's error as worth retrying.
type transient struct{ err error }

func (t transient) Error() string { return t.err.Error() }
func (t transient) Unwrap() error { return t.err }

// writeError is an error from the caller's writer: never retried.
type writeError struct{ err error }

func (e writeError) Error() string { return "writing: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// ranged writes the blob's bytes start..end-1 to w, retrying attempts.
func (c *Client) ranged(ctx context.Context, repo string, desc artifact.Descriptor, start, end int64, w io.Writer) error {
	what := fmt.Sprintf("blob %s/%s@%s", c.host, repo, desc.Digest)
	pos, failures := start, 0
	for pos < end {
		last := min(pos+c.opt.RangeSize, end) - 1
		n, err := c.attempt(ctx, repo, desc, pos, last, end, w)
		pos += n
		if n > 0 {
			failures = 0
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: stopped at byte %d of %d: %w", what, pos, desc.Size, ctx.Err())
		}
		var t transient
		if !errors.As(err, &t) {
			return fmt.Errorf("%s: at byte %d of %d: %w", what, pos, desc.Size, err)
		}
		failures++
		if failures >= c.opt.MaxAttempts {
			return fmt.Errorf("%s: gave up at byte %d of %d after %d attempts without progress: %w (check the link to the registry; the upgrade can resume from here)", what, pos, desc.Size, failures, err)
		}
		wait := c.backoff(failures)
		c.log.Warn("download interrupted, resuming", "blob", desc.Digest, "at", pos, "size", desc.Size, "attempt", failures, "wait", wait.Round(time.Millisecond), "err", err)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: stopped at byte %d of %d: %w", what, pos, desc.Size, err)
		}
	}
	return nil
}

// backoff returns the wait before attempt failures+1: exponential from
// MinBackoff, capped at MaxBackoff, with "equal jitter" (half fixed, half
// random) so a fleet that lost the same link does not return in step.
func (c *Client) backoff(failures int) time.Duration {
	d := c.opt.MinBackoff << min(failures-1, 30)
	if d > c.opt.MaxBackoff || d <= 0 {
		d = c.opt.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// attempt asks for bytes pos..last and copies what arrives to w, returning
// how many bytes it wrote. A registry that ignores Range and sends the
// whole blob is read on up to end when pos is 0.
func (c *Client) attempt(ctx context.Context, repo string, desc artifact.Descriptor, pos, last, end int64, w io.Writer) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	timer := time.AfterFunc(c.opt.StallTimeout, func() { stalled.Store(true); cancel() })
	defer timer.Stop()
	stallErr := func(err error) error {
		if stalled.Load() {
			return transient{errStalled}
		}
		return transient{err}
	}

	rng := fmt.Sprintf("bytes=%d-%d", pos, last)
	resp, err := c.do(ctx, repo, repo+"/blobs/"+desc.Digest, http.Header{"Range": {rng}})
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			return 0, err
		}
		return 0, stallErr(err)
	}
	defer resp.Body.Close()
	want := last - pos + 1
	switch resp.StatusCode {
	case http.StatusPartialContent:
		first, l, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || first != pos || l != last || (total >= 0 && total != desc.Size) {
			return 0, fmt.Errorf("asked for %s of %d, the registry sent Content-Range %q (a broken registry or proxy: refused)", rng, desc.Size, trunc(resp.Header.Get("Content-Range"), 80))
		}
		if resp.ContentLength >= 0 && resp.ContentLength != want {
			return 0, fmt.Errorf("asked for %s, the registry sent Content-Length %d (refused)", rng, resp.ContentLength)
		}
	case http.StatusOK:
		if pos != 0 {
			return 0, fmt.Errorf("asked for %s, the registry sent the whole blob (200): %w; cannot resume or fetch a part (download it again from byte 0)", rng, ErrRangeUnsupported)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != desc.Size {
			return 0, fmt.Errorf("the registry sent %d bytes for a %d-byte blob (refused)", resp.ContentLength, desc.Size)
		}
		c.log.Info("the registry ignores Range requests; reading the blob as one stream (a cut will restart it)", "blob", desc.Digest)
		want = end
	default:
		se := httpError(rng, resp)
		if se.retryable() {
			return 0, transient{se}
		}
		return 0, se
	}

	buf := make([]byte, 32<<10)
	var done int64
	for done < want {
		timer.Reset(c.opt.StallTimeout)
		n, err := resp.Body.Read(buf[:min(int64(len(buf)), want-done)])
		timer.Stop()
		if n > 0 {
			m, werr := w.Write(buf[:n])
			done += int64(m)
			if werr != nil {
				return done, writeError{werr}
			}
		}
		if errors.Is(err, io.EOF) && done < want {
			return done, transient{fmt.Errorf("%w after %d of %d bytes", errTruncated, done, want)}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return done, stallErr(err)
		}
	}
	return done, nil
}

// parseContentRange reads "bytes first-last/total" (RFC 9110 §14.4);
// total is -1 for "*".
func parseContentRange(s string) (first, last, total int64, err error) {
	bad := func() (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("Content-Range %q is not bytes first-last/total", trunc(s, 80))
	}
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return bad()
	}
	span, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad()
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return bad()
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 19 || strings.TrimLeft(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if first, ok = num(a); !ok {
		return bad()
	}
	if last, ok = num(b); !ok || last < first {
		return bad()
	}
	total = -1
	if tot != "*" {
		if total, ok = num(tot); !ok || last >= total {
			return bad()
		}
	}
	return first, last, total, nil
}
