package registry

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// Reference names an artifact in a registry: Host/Repo:Tag or
// Host/Repo@Digest (with both, the digest wins).
type Reference struct {
	// Host is the registry's host[:port].
	Host string
	// Repo is the repository path, e.g. cairn/edge.
	Repo string
	// Tag and Digest name the manifest; at least one is set.
	Tag    string
	Digest string
}

var (
	repoComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE           = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	hostnameRE      = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
)

// ParseReference reads "host[:port]/path/name:tag" or
// "host[:port]/path/name@sha256:<64 hex>" (or both). The host is required
// (a node has no default registry): it is the first path element and holds
// a dot or a port, or is localhost.
func ParseReference(s string) (Reference, error) {
	const form = "write host[:port]/path/name:tag or host[:port]/path/name@sha256:<hex>, e.g. registry.example.com/cairn/edge:1.2.0"
	bad := func(what string) (Reference, error) {
		return Reference{}, fmt.Errorf("reference %q: %s (%s)", trunc(s, 80), what, form)
	}
	if len(s) > 512 {
		return bad("longer than 512 characters")
	}
	var r Reference
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		r.Digest, rest = rest[i+1:], rest[:i]
		if !artifact.ValidDigest(r.Digest) {
			return bad(fmt.Sprintf("digest %q is not sha256:<64 lowercase hex>", trunc(r.Digest, 80)))
		}
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return bad("no registry host")
	}
	r.Host, rest = rest[:slash], rest[slash+1:]
	if err := checkHost(r.Host); err != nil {
		return bad(err.Error())
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		r.Tag, rest = rest[i+1:], rest[:i]
		if !tagRE.MatchString(r.Tag) {
			return bad(fmt.Sprintf("tag %q is not 1–128 letters, digits, '_', '.' or '-'", trunc(r.Tag, 80)))
		}
	}
	if r.Tag == "" && r.Digest == "" {
		return bad("no tag or digest")
	}
	r.Repo = rest
	if err := checkRepo(r.Repo); err != nil {
		return bad(err.Error())
	}
	return r, nil
}

func checkHost(h string) error {
	host, port := h, ""
	if strings.HasPrefix(h, "[") { // [v6]:port
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return fmt.Errorf("host %q has an unclosed [", trunc(h, 80))
		}
		host, port = h[1:end], strings.TrimPrefix(h[end+1:], ":")
		if net.ParseIP(host) == nil || h[end+1:] != "" && !strings.HasPrefix(h[end+1:], ":") {
			return fmt.Errorf("host %q is not [IPv6]:port", trunc(h, 80))
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
	}
	if port != "" || strings.HasSuffix(h, ":") {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("host %q has port %q, want 1–65535", trunc(h, 80), trunc(port, 20))
		}
	}
	if !strings.HasPrefix(h, "[") && (len(host) > 253 || !hostnameRE.MatchString(host)) {
		return fmt.Errorf("host %q is not a host name or address", trunc(h, 80))
	}
	if port == "" && host != "localhost" && !strings.Contains(host, ".") && !strings.HasPrefix(h, "[") {
		return fmt.Errorf("%q is not a registry host (no dot or port; Docker Hub's library/ short names are not supported)", trunc(h, 80))
	}
	return nil
}

func checkRepo(repo string) error {
	if repo == "" || len(repo) > 255 {
		return fmt.Errorf("repository %q is empty or longer than 255 characters", trunc(repo, 80))
	}
	for _, c := range strings.Split(repo, "/") {
		if !repoComponentRE.MatchString(c) {
			return fmt.Errorf("repository %q: %q is not lowercase letters and digits separated by '.', '_' or '-'", trunc(repo, 80), trunc(c, 80))
		}
	}
	return nil
}

// Reference returns what names the manifest in the registry's API: the
// digest if there is one, else the tag.
func (r Reference) Reference() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// String writes the reference back in the form ParseReference reads.
func (r Reference) String() string {
	s := r.Host + "/" + r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
