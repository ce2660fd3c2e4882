package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Update configures over-the-air upgrades (the spec's update section).
type Update struct {
	// Repository is where this image's update artifacts live
	// (registry/path, e.g. registry.example.com/edge/shop); `cairn node
	// upgrade :TAG` or a bare tag is looked up there.
	Repository string `yaml:"repository,omitempty"`
	// Keys are the public keys (PEM, ECDSA P-256, as `cairn keygen` and
	// `cosign generate-key-pair` write them) an artifact must be signed
	// with, one of them. In the spec an entry may name a .pub file,
	// relative to the spec; the builder embeds its content.
	Keys []string `yaml:"keys,omitempty"`
	// AllowUnsigned accepts artifacts without a valid signature. Without
	// keys and without this, every upgrade is refused.
	AllowUnsigned bool `yaml:"allowUnsigned,omitempty"`
	// PlainHTTP talks to the registry over http:// (a registry on a
	// trusted local network, or a test); default https.
	PlainHTTP bool `yaml:"plainHTTP,omitempty"`
	// MaxRate caps the download rate in bytes per second, for metered
	// or shared links; 0 means no cap.
	MaxRate int64 `yaml:"maxRate,omitempty"`
	// GateTimeout bounds the trial boot's health gate (default 10m).
	GateTimeout time.Duration `yaml:"gateTimeout,omitempty"`
	// Checks are the user's checks the gate also waits for.
	Checks []Check `yaml:"checks,omitempty"`
}

// Check is one user check of the health gate: exactly one of TCP and HTTP.
type Check struct {
	// TCP is host:port that must accept a connection.
	TCP string `yaml:"tcp,omitempty"`
	// HTTP is a URL that must answer 2xx or 3xx.
	HTTP string `yaml:"http,omitempty"`
}

// DefaultGateTimeout bounds the health gate when GateTimeout is 0.
const DefaultGateTimeout = 10 * time.Minute

// Gate is how long the trial boot's health gate may take.
func (u *Update) Gate() time.Duration {
	if u == nil || u.GateTimeout <= 0 {
		return DefaultGateTimeout
	}
	return u.GateTimeout
}

// Validate checks the section: a repository without a scheme, keys that
// are P-256 public keys, and checks with exactly one target.
func (u *Update) Validate() error {
	if u == nil {
		return nil
	}
	if strings.Contains(u.Repository, "://") || strings.ContainsAny(u.Repository, " @") {
		return fmt.Errorf("repository %q: give registry/path without a scheme, tag or digest (e.g. registry.example.com/edge/shop)", u.Repository)
	}
	if len(u.Keys) == 0 && !u.AllowUnsigned {
		return fmt.Errorf("no keys: every upgrade would be refused (add keys: [cairn.pub] from cairn keygen, or allowUnsigned: true)")
	}
	if _, err := u.PublicKeys(); err != nil {
		return err
	}
	if u.MaxRate < 0 {
		return fmt.Errorf("maxRate %d is negative (bytes per second; 0 or leave it out for no cap)", u.MaxRate)
	}
	if u.GateTimeout < 0 {
		return fmt.Errorf("gateTimeout %v is negative", u.GateTimeout)
	}
	for i, c := range u.Checks {
		switch {
		case (c.TCP == "") == (c.HTTP == ""):
			return fmt.Errorf("checks[%d]: give exactly one of tcp and http", i)
		case c.HTTP != "":
			if p, err := url.Parse(c.HTTP); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return fmt.Errorf("checks[%d]: http %q is not an http:// or https:// URL", i, c.HTTP)
			}
		case !strings.Contains(c.TCP, ":"):
			return fmt.Errorf("checks[%d]: tcp %q is not host:port", i, c.TCP)
		}
	}
	return nil
}

// PublicKeys decodes Keys.
func (u *Update) PublicKeys() ([]*ecdsa.PublicKey, error) {
	var keys []*ecdsa.PublicKey
	for i, k := range u.Keys {
		key, err := ParsePublicKey([]byte(k))
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" block holding an ECDSA P-256
// key, the form cosign and `cairn keygen` write.
func ParsePublicKey(b []byte) (*ecdsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("not a PEM public key (want the content of cairn.pub or cosign.pub, starting -----BEGIN PUBLIC KEY-----)")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %v", err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("public key is not ECDSA P-256 (make one with cairn keygen or cosign generate-key-pair)")
	}
	return ec, nil
}
