package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls a node's API. It keeps connections alive between calls.
type Client struct {
	base *url.URL
	http *http.Client
	// Timeout bounds each call except following logs (30 s by default).
	Timeout time.Duration
}

// Error is an error reply from the node.
type Error struct {
	StatusCode int
	Message    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("node answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// NewClient returns a Client for server, https://HOST[:PORT] (DefaultPort
// when PORT is left out), with a TLS configuration from ClientTLS.
func NewClient(server string, tlsConf *tls.Config) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server %q is not https://HOST[:PORT]", server)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(DefaultPort))
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{base: u, http: &http.Client{Transport: tr}, Timeout: 30 * time.Second}, nil
}

// Server returns the URL the client calls.
func (c *Client) Server() string { return c.base.String() }

// CloseIdleConnections closes kept-alive connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// do sends a request and returns the response if its status is want; any
// other status becomes an *Error. The caller closes the body.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in any, want int) (*http.Response, error) {
	u := *c.base
	u.Path = path
	u.RawQuery = q.Encode()
	var body io.Reader
	ctype := "application/json"
	switch v := in.(type) {
	case nil:
	case rawBody:
		body, ctype = bytes.NewReader(v.data), v.contentType
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e ErrorReply
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return nil, &Error{StatusCode: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// call does a request bounded by c.Timeout and decodes the JSON reply into out.
func (c *Client) call(ctx context.Context, method, path string, want int, out any) error {
	return c.callWith(ctx, method, path, nil, want, out)
}

// callWith is call with a JSON request body in.
func (c *Client) callWith(ctx context.Context, method, path string, in any, want int, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	resp, err := c.do(ctx, method, path, nil, in, want)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad reply: %w", method, path, err)
	}
	io.Copy(io.Discard, resp.Body) // read to EOF so the connection is kept
	return nil
}

// rawBody is a request body sent as is, not as JSON.
type rawBody struct {
	data        []byte
	contentType string
}

// InstallCRL sends the PEM revocation list crlPEM (the PKI directory's
// crl.pem); the node refuses one older than it holds (409).
func (c *Client) InstallCRL(ctx context.Context, crlPEM []byte) (*CRLReply, error) {
	var r CRLReply
	return &r, c.callWith(ctx, "POST", "/v1/crl", rawBody{crlPEM, "application/x-pem-file"}, http.StatusOK, &r)
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	return &st, c.call(ctx, "GET", "/v1/status", http.StatusOK, &st)
}

// Services lists the node's services.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	var svcs []Service
	return svcs, c.call(ctx, "GET", "/v1/services", http.StatusOK, &svcs)
}

// Restart restarts a service.
func (c *Client) Restart(ctx context.Context, name string) error {
	var r ActionReply
	return c.call(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/restart", http.StatusAccepted, &r)
}

// Upgrade asks the node to upgrade to req.Ref: the attempt once the node
// accepted it, or an *Error with its reason (422 refused, 409 one runs).
// The upgrade's checks contact the registry, so it may take a minute.
func (c *Client) Upgrade(ctx context.Context, req UpgradeRequest) (*Upgrade, error) {
	var up Upgrade
	long := *c
	long.Timeout = max(c.Timeout, UpgradeCheckTimeout)
	return &up, long.callWith(ctx, "POST", "/v1/upgrade", req, http.StatusAccepted, &up)
}

// UpgradeCheckTimeout bounds POST /v1/upgrade: the node resolves and
// checks the artifact (a slow registry, retries) before it answers.
const UpgradeCheckTimeout = 3 * time.Minute

// UpgradeProgress is the node's current or last upgrade attempt.
func (c *Client) UpgradeProgress(ctx context.Context) (*Upgrade, error) {
	var up Upgrade
	return &up, c.call(ctx, "GET", "/v1/upgrade", http.StatusOK, &up)
}

// Reboot asks the node to reboot.
func (c *Client) Reboot(ctx context.Context) error {
	var r ActionReply
	return c.call(ctx, "POST", "/v1/reboot", http.StatusAccepted, &r)
}

// Shutdown asks the node to power off.
func (c *Client) Shutdown(ctx context.Context) error {
	var r ActionReply
	return c.call(ctx, "POST", "/v1/shutdown", http.StatusAccepted, &r)
}

// Kubeconfig returns an administrator's kubeconfig of the node's
// Kubernetes for the API server at server (empty: the node's host, port
// 6443).
func (c *Client) Kubeconfig(ctx context.Context, server string) ([]byte, error) {
	q := url.Values{}
	if server != "" {
		q.Set("server", server)
	}
	return c.get(ctx, "/v1/kubeconfig", q)
}

// JoinKubeconfig returns a kubeconfig with new credentials for the
// Kubernetes node called node, for the API server at server (empty: the
// node's host, port 6443): what an agent-mode node joins the cluster with.
func (c *Client) JoinKubeconfig(ctx context.Context, node, server string) ([]byte, error) {
	q := url.Values{"node": {node}}
	if server != "" {
		q.Set("server", server)
	}
	return c.get(ctx, "/v1/join-kubeconfig", q)
}

// Metrics returns the node's metrics in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/metrics", nil)
}

// get returns the body of a GET that answers 200.
func (c *Client) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	resp, err := c.do(ctx, "GET", path, q, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// Logs returns a service's log stream; with opts.Follow it stays open
// until ctx ends or the node closes it. The caller closes it.
func (c *Client) Logs(ctx context.Context, name string, opts LogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "1")
	}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	cancel := func() {}
	if !opts.Follow {
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	resp, err := c.do(ctx, "GET", "/v1/services/"+url.PathEscape(name)+"/logs", q, nil, http.StatusOK)
	if err != nil {
		cancel()
		return nil, err
	}
	return readCloser{resp.Body, cancel}, nil
}

type readCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r readCloser) Close() error {
	defer r.cancel()
	return r.ReadCloser.Close()
}

// Clock returns the node's time and clock state.
func (c *Client) Clock(ctx context.Context) (*ClockStatus, error) {
	var st ClockStatus
	return &st, c.call(ctx, "GET", "/v1/clock", http.StatusOK, &st)
}

// SetClock sets the node's clock and its saved floor to t (an *Error with
// 422 when the node refuses the time).
func (c *Client) SetClock(ctx context.Context, t time.Time) (*ClockStatus, error) {
	var st ClockStatus
	return &st, c.callWith(ctx, "POST", "/v1/clock", ClockSetRequest{Time: t}, http.StatusOK, &st)
}
