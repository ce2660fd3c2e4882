package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// challenge is one parsed WWW-Authenticate challenge.
type challenge struct {
	scheme string            // lowercase: "bearer", "basic"
	params map[string]string // keys lowercase
}

// parseChallenge reads the first challenge of a WWW-Authenticate header
// (RFC 9110 §11.6.1): a scheme, then comma-separated key=value or
// key="quoted value" parameters. Registries send one challenge, e.g.
//
//	Bearer realm="https://auth.example.com/token",service="registry",scope="repository:cairn/edge:pull"
func parseChallenge(h string) (challenge, error) {
	s := strings.TrimLeft(h, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		i = len(s)
	}
	c := challenge{scheme: strings.ToLower(s[:i]), params: map[string]string{}}
	if c.scheme == "" || !isToken(c.scheme) {
		return c, fmt.Errorf("WWW-Authenticate %q has no auth scheme", trunc(h, 120))
	}
	s = s[i:]
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return c, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return c, fmt.Errorf("WWW-Authenticate %q: parameter %q has no value", trunc(h, 120), trunc(s, 40))
		}
		key := strings.ToLower(strings.TrimRight(s[:eq], " \t"))
		if !isToken(key) {
			if len(c.params) == 0 {
				// A second challenge or token68 form: keep what we have.
				return c, nil
			}
			return c, fmt.Errorf("WWW-Authenticate %q: %q is not a parameter name", trunc(h, 120), trunc(key, 40))
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			j := 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return c, fmt.Errorf("WWW-Authenticate %q: unterminated quoted value", trunc(h, 120))
			}
			val, s = b.String(), s[j+1:]
		} else {
			j := strings.IndexAny(s, ", \t")
			if j < 0 {
				j = len(s)
			}
			val, s = s[:j], s[j:]
		}
		c.params[key] = val
	}
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, b) >= 0 {
			return false
		}
	}
	return s != ""
}

// maxTokenResponse bounds a token server's answer.
const maxTokenResponse = 64 << 10

// token gets an anonymous bearer token for the challenge (the Docker
// token flow: GET realm?service=…&scope=…). scope is what to ask for when
// the challenge names none.
func (c *Client) token(ctx context.Context, ch challenge, scope string) (string, error) {
	realm := ch.params["realm"]
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", &authError{fmt.Errorf("registry %s: token realm %q is not an http(s) URL", c.host, trunc(realm, 120))}
	}
	if u.Scheme == "http" && !c.plainHTTP {
		return "", &authError{fmt.Errorf("registry %s: token realm %s is plain HTTP while the registry is HTTPS (fix the registry's auth config)", c.host, trunc(realm, 120))}
	}
	q := u.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	if s := ch.params["scope"]; s != "" {
		scope = s
	}
	if scope != "" {
		q.Set("scope", scope)
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("registry %s: getting a token from %s: %w", c.host, u.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(c.count(resp.Body), maxTokenResponse+1))
	if err != nil {
		return "", fmt.Errorf("registry %s: reading a token from %s: %w", c.host, u.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("registry %s: token server %s answered %s for scope %q%s (the repository may need credentials, which the agent does not have: make it public)",
			c.host, u.Host, resp.Status, scope, registryMessage(body))
		if resp.StatusCode >= 500 {
			return "", err // may pass
		}
		return "", &authError{err}
	}
	var t struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if len(body) > maxTokenResponse || json.Unmarshal(body, &t) != nil {
		return "", &authError{fmt.Errorf("registry %s: token server %s sent no JSON token", c.host, u.Host)}
	}
	tok := t.Token
	if tok == "" {
		tok = t.AccessToken
	}
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", &authError{fmt.Errorf("registry %s: token server %s sent an empty or malformed token", c.host, u.Host)}
	}
	return tok, nil
}
