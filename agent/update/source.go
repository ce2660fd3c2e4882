package update

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/registry"
	"github.com/cairn-edge/cairn/agent/update/sign"
)

// Registries is the Registry of a node: a registry.Client per registry
// host, made on first use with the image's update settings.
type Registries struct {
	// PlainHTTP and MaxRate are the image's update.plainHTTP and maxRate.
	PlainHTTP bool
	MaxRate   int64
	Log       *slog.Logger

	mu      sync.Mutex
	clients map[string]*registry.Client
}

// NewRegistries returns the Registries for an image's update section.
func NewRegistries(u *config.Update, log *slog.Logger) *Registries {
	r := &Registries{Log: log}
	if u != nil {
		r.PlainHTTP, r.MaxRate = u.PlainHTTP, u.MaxRate
	}
	return r
}

func (r *Registries) client(host string) (*registry.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[host]; ok {
		return c, nil
	}
	c, err := registry.New(registry.Options{Host: host, PlainHTTP: r.PlainHTTP, MaxRate: r.MaxRate, Logger: r.Log})
	if err != nil {
		return nil, err
	}
	if r.clients == nil {
		r.clients = map[string]*registry.Client{}
	}
	r.clients[host] = c
	return c, nil
}

// split cuts "host/path" into the client for host and the path.
func (r *Registries) split(repo string) (*registry.Client, string, error) {
	host, path, ok := strings.Cut(repo, "/")
	if !ok {
		return nil, "", fmt.Errorf("repository %q has no registry host", repo)
	}
	c, err := r.client(host)
	return c, path, err
}

// Resolve implements Registry.
func (r *Registries) Resolve(ctx context.Context, ref, board, arch string) (*Target, error) {
	pr, err := registry.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	c, err := r.client(pr.Host)
	if err != nil {
		return nil, err
	}
	res, err := c.Resolve(ctx, pr, board, arch)
	if err != nil {
		return nil, err
	}
	return &Target{Ref: ref, Repo: pr.Host + "/" + pr.Repo, Digest: res.Digest, Update: res.Update, Config: res.Config}, nil
}

// Fetch implements Registry.
func (r *Registries) Fetch(ctx context.Context, repo string, d artifact.Descriptor, from int64, h hash.Hash, w io.Writer, progress func(int64)) error {
	c, path, err := r.split(repo)
	if err != nil {
		return err
	}
	return c.Fetch(ctx, path, d, w, registry.FetchOptions{From: from, Hash: h, Progress: progress})
}

// FetchRange writes bytes off..off+n-1 of blob d to w (a delta's ranges).
func (r *Registries) FetchRange(ctx context.Context, repo string, d artifact.Descriptor, off, n int64, w io.Writer) error {
	c, path, err := r.split(repo)
	if err != nil {
		return err
	}
	return c.FetchRange(ctx, path, d, off, n, w)
}

// Blob reads a small blob whole (a chunk index).
func (r *Registries) Blob(ctx context.Context, repo string, d artifact.Descriptor, max int64) ([]byte, error) {
	c, path, err := r.split(repo)
	if err != nil {
		return nil, err
	}
	return c.Blob(ctx, path, d.Digest, max)
}

// Received implements Registry.
func (r *Registries) Received() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, c := range r.clients {
		n += c.Received()
	}
	return n
}

// Verifier is the signature check of an image's update section: with
// keys, sign.Verify through the node's registries (both cosign forms,
// offline).
func (r *Registries) Verifier(keys []*ecdsa.PublicKey) Verifier {
	return func(ctx context.Context, repo, digest string) (bool, string, error) {
		if len(keys) == 0 {
			return false, "", nil
		}
		c, path, err := r.split(repo)
		if err != nil {
			return false, "", err
		}
		res, err := sign.Verify(ctx, signRegistry{c}, path, digest, keys)
		switch {
		case errors.Is(err, sign.ErrUnsigned):
			return false, "", nil
		case err != nil:
			return false, "", err
		}
		return true, fmt.Sprintf("%s, key %s", res.Form, res.Key), nil
	}
}

// signRegistry gives sign.Verify the not-found sentinel it knows.
type signRegistry struct{ c *registry.Client }

func (s signRegistry) Manifest(ctx context.Context, repo, ref string) (string, []byte, error) {
	mt, b, err := s.c.Manifest(ctx, repo, ref)
	if errors.Is(err, registry.ErrNotFound) {
		err = fmt.Errorf("%w: %w", sign.ErrNotFound, err)
	}
	return mt, b, err
}

func (s signRegistry) Blob(ctx context.Context, repo, digest string, max int64) ([]byte, error) {
	b, err := s.c.Blob(ctx, repo, digest, max)
	if errors.Is(err, registry.ErrNotFound) {
		err = fmt.Errorf("%w: %w", sign.ErrNotFound, err)
	}
	return b, err
}
