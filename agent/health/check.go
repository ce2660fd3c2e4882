package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Poll sets p from verdict now and every every until ctx ends: the way to
// report a part whose owner keeps state but sends no news (the services
// manager's list, the clock's status).
func Poll(ctx context.Context, p *Part, every time.Duration, verdict func() (State, string)) {
	for {
		p.Set(verdict())
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// A Checker is one user check: something outside the agent that must
// answer for the node to be healthy (an application's port or URL).
type Checker interface {
	// Check returns nil if the thing answers, or why not.
	Check(ctx context.Context) error
	// String names the check in reasons ("tcp 127.0.0.1:8080").
	String() string
}

// checkTimeout bounds one check when its own Timeout is zero.
const checkTimeout = 5 * time.Second

// TCPCheck passes when a TCP connection to Address opens.
type TCPCheck struct {
	// Address is host:port.
	Address string
	// Timeout bounds the connection attempt (default 5 s).
	Timeout time.Duration
}

// Check dials Address.
func (c TCPCheck) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.Timeout))
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Address)
	if err != nil {
		return err
	}
	return conn.Close()
}

// String is "tcp ADDRESS".
func (c TCPCheck) String() string { return "tcp " + c.Address }

// HTTPCheck passes when a GET of URL answers with a 2xx or 3xx status (a
// redirect is not followed: the server answered).
type HTTPCheck struct {
	// URL is an http:// or https:// URL.
	URL string
	// Timeout bounds the request (default 5 s).
	Timeout time.Duration
	// Client makes the request (default: one that follows no redirects).
	Client *http.Client
}

// Check requests URL.
func (c HTTPCheck) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return err
	}
	client := c.Client
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return errors.New("answered " + resp.Status)
	}
	return nil
}

// String is "http URL".
func (c HTTPCheck) String() string { return "http " + c.URL }

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return checkTimeout
	}
	return d
}

// RunChecks runs checks now and every every until ctx ends, reporting on
// p: OK when all pass, Failed naming those that do not and why. Until the
// first round ends p is Starting.
func RunChecks(ctx context.Context, p *Part, every time.Duration, checks ...Checker) {
	Poll(ctx, p, every, func() (State, string) { return checkAll(ctx, checks) })
}

// checkAll runs checks in turn and gives the part's verdict.
func checkAll(ctx context.Context, checks []Checker) (State, string) {
	var bad []string
	for _, c := range checks {
		if err := c.Check(ctx); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", c, err))
		}
	}
	if len(bad) > 0 {
		return Failed, strings.Join(bad, "; ")
	}
	return OK, fmt.Sprintf("%d checks pass", len(checks))
}
