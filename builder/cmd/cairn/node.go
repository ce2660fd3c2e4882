package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/health"
	"github.com/cairn-edge/cairn/builder/pki"
)

const nodeUsage = `usage: cairn node [--config FILE] [--server HOST[:PORT]] [--json] <command> [args]

commands:
  status            identity, slot, uptime, memory, load, addresses, services
  services          the services, their state and restarts
  restart SERVICE   restart a service
  logs SERVICE      a service's output (-f follows it, --tail N the last N lines)
  reboot            reboot the node
  shutdown          power the node off
  metrics           the node's Prometheus metrics
  clock             the node's time, this workstation's, the difference and whether NTP
                    confirmed it (and the last NTP step the node refused)
  clock set         set the node's clock, and the time it never goes back before, to this
                    workstation's: for a node whose NTP servers disagree or are out of reach
  upgrade REF       upgrade the node to the update artifact REF (REGISTRY/REPO:TAG, or a
                    tag of the image's update.repository) and wait for the outcome:
                    committed, or rolled back with the reason (--force allows a downgrade
                    or reinstall; --wait DURATION bounds the wait, default 30m)
  kubeconfig        an admin kubeconfig of the node's Kubernetes (--kube-server
                    https://HOST:PORT sets its server; default the node's host, port 6443)
  join-kubeconfig   on a Kubernetes server node: a kubeconfig with new credentials for
                    the node --node NAME, for an agent-mode node to join with (copy it to
                    that node's ESP as cairn-kube-join.kubeconfig); --kube-server as above,
                    the address the joining node reaches the server at

credentials (on this machine, with the CA key of the PKI directory; see cairn node issue -h):
  issue --pki DIR --name NAME --role ROLE -o FILE
                    a client config for a new credential: role monitor (status, services,
                    metrics), operator (also logs, restart, reboot, upgrade) or admin (all)
  revoke --pki DIR [--config FILE] NAME
                    revoke a credential in DIR/crl.pem; with --config, push it to that node

--config is the node.yaml cairn build writes next to the image ($CAIRN_NODE_CONFIG).
--server overrides the address in it: one config serves every node built from the image.
Its credential is an admin; nodes refuse what a credential's role does not allow (403).
`

// cmdNode talks to a node's API: cairn node --config FILE <command> [--json].
func cmdNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("node", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, nodeUsage) }
	config := fs.String("config", os.Getenv("CAIRN_NODE_CONFIG"), "client config (the node.yaml written next to the image)")
	server := fs.String("server", "", "node address, HOST[:PORT] or https://HOST[:PORT] (default: server in the config)")
	name := fs.String("name", "", "the node's name, which its certificate must carry (default: serverName in the config, else the host in the address)")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	follow := fs.Bool("f", false, "logs: follow the output")
	tail := fs.Int("tail", 0, "logs: only the last N lines")
	kubeServer := fs.String("kube-server", "", "kubeconfig, join-kubeconfig: the Kubernetes API server's URL as you (or the joining node) reach it")
	nodeName := fs.String("node", "", "join-kubeconfig: the Kubernetes name of the node that joins")
	force := fs.Bool("force", false, "upgrade: allow a downgrade, a reinstall or a release that rolled back")
	wait := fs.Duration("wait", 30*time.Minute, "upgrade: how long to wait for the outcome")
	// issue and revoke work on the PKI directory, with flags of their own.
	if len(args) > 0 && args[0] == "issue" {
		return cmdNodeIssue(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "revoke" {
		return cmdNodeRevoke(ctx, args[1:], stdout, stderr)
	}
	pos, err := parseMixed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fmt.Fprint(stderr, nodeUsage)
		return flag.ErrHelp
	}
	cmd, rest := pos[0], pos[1:]
	if cmd == "clock" && len(rest) > 0 {
		if rest[0] != "set" {
			return fmt.Errorf("unknown clock command %q (cairn node clock shows the node's time, cairn node clock set sets it)", rest[0])
		}
		cmd, rest = "clock set", rest[1:]
	}
	wantArgs := map[string]int{"status": 0, "services": 0, "restart": 1, "logs": 1, "reboot": 0, "shutdown": 0, "metrics": 0, "kubeconfig": 0, "join-kubeconfig": 0, "upgrade": 1, "clock": 0, "clock set": 0}
	n, ok := wantArgs[cmd]
	switch {
	case cmd == "issue" || cmd == "revoke":
		return fmt.Errorf("put the flags of cairn node %s after it: cairn node %s --pki DIR …", cmd, cmd)
	case !ok:
		return fmt.Errorf("unknown node command %q (commands: status, services, restart, logs, reboot, shutdown, metrics, kubeconfig, join-kubeconfig, upgrade, clock, issue, revoke)", cmd)
	case len(rest) < n && cmd == "upgrade":
		return errors.New("cairn node upgrade needs the artifact's reference, e.g. cairn node upgrade registry.example.com/edge/shop:1.3.0")
	case len(rest) < n:
		return fmt.Errorf("cairn node %s needs a service name, e.g. cairn node %s containerd", cmd, cmd)
	case len(rest) > n:
		return fmt.Errorf("unexpected argument %q to cairn node %s", rest[n], cmd)
	case (*follow || *tail != 0) && cmd != "logs":
		return fmt.Errorf("-f and --tail apply to logs only, not %s", cmd)
	case *tail < 0:
		return fmt.Errorf("--tail %d: give a line count of 0 or more", *tail)
	case *kubeServer != "" && cmd != "kubeconfig" && cmd != "join-kubeconfig":
		return fmt.Errorf("--kube-server applies to kubeconfig and join-kubeconfig only, not %s", cmd)
	case *force && cmd != "upgrade":
		return fmt.Errorf("--force applies to upgrade only, not %s", cmd)
	case *nodeName != "" && cmd != "join-kubeconfig":
		return fmt.Errorf("--node applies to join-kubeconfig only, not %s", cmd)
	case cmd == "join-kubeconfig" && *nodeName == "":
		return errors.New("cairn node join-kubeconfig needs --node NAME, the Kubernetes name of the node that joins (e.g. --node edge-2)")
	case *asJSON && (cmd == "logs" || cmd == "metrics" || cmd == "kubeconfig" || cmd == "join-kubeconfig"):
		return fmt.Errorf("--json does not apply to %s: its output is text", cmd)
	}

	c, addr, err := nodeClient(*config, *server, *name)
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	switch cmd {
	case "kubeconfig":
		rest = []string{*kubeServer}
	case "join-kubeconfig":
		rest = []string{*nodeName, *kubeServer}
	}
	if cmd == "upgrade" {
		return explainNodeError(upgradeNode(ctx, c, api.UpgradeRequest{Ref: rest[0], Force: *force}, *wait, *asJSON, stdout), addr)
	}
	err = runNode(ctx, c, cmd, rest, *asJSON, api.LogOptions{Follow: *follow, Tail: *tail}, stdout)
	if err != nil && ctx.Err() != nil && cmd == "logs" {
		return nil // Ctrl-C while following
	}
	return explainNodeError(err, addr)
}

// nodeClient reads the client config and makes a Client for it, or for
// server when given, that accepts only the node name (the config's
// serverName when empty, else the host dialled).
func nodeClient(configPath, server, name string) (*api.Client, string, error) {
	if configPath == "" {
		return nil, "", errors.New("no client config: pass --config FILE, the node.yaml written next to the image by cairn build (or set CAIRN_NODE_CONFIG)")
	}
	cfg, err := pki.LoadClientConfig(configPath)
	if err != nil {
		return nil, "", err
	}
	addr := cfg.Server
	if server != "" {
		if addr, err = serverURL(server); err != nil {
			return nil, "", fmt.Errorf("--server: %w", err)
		}
	}
	pool, cert, err := cfg.TLS()
	if err != nil {
		return nil, "", fmt.Errorf("client config %s: %w", configPath, err)
	}
	if name == "" {
		name = cfg.ServerName
	} else if _, err := pki.NodeNames(name, nil); err != nil {
		return nil, "", fmt.Errorf("--name: %w", err)
	}
	c, err := api.NewClient(addr, api.ClientTLS(pool, cert, name))
	if err != nil {
		return nil, "", err
	}
	return c, c.Server(), nil
}

// serverURL reads --server: HOST[:PORT] or https://HOST[:PORT].
func serverURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	_, err := pki.ParseServer(s)
	return s, err
}

func runNode(ctx context.Context, c *api.Client, cmd string, args []string, asJSON bool, logOpts api.LogOptions, stdout io.Writer) error {
	switch cmd {
	case "status":
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, st)
		}
		printStatus(stdout, st, time.Now())
	case "services":
		svcs, err := c.Services(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, svcs)
		}
		printServices(stdout, svcs, time.Now())
	case "restart":
		if err := c.Restart(ctx, args[0]); err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, api.ActionReply{Status: "restarting", Service: args[0]})
		}
		fmt.Fprintf(stdout, "%s: restarting\n", args[0])
	case "logs":
		rc, err := c.Logs(ctx, args[0], logOpts)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(stdout, rc)
		return err
	case "reboot", "shutdown":
		do, status := c.Reboot, "rebooting"
		if cmd == "shutdown" {
			do, status = c.Shutdown, "shutting down"
		}
		if err := do(ctx); err != nil {
			return err
		}
		if asJSON {
			return printJSON(stdout, api.ActionReply{Status: status})
		}
		fmt.Fprintf(stdout, "%s: %s\n", strings.TrimPrefix(c.Server(), "https://"), status)
	case "clock", "clock set":
		return nodeClock(ctx, c, cmd == "clock set", asJSON, stdout)
	case "metrics", "kubeconfig", "join-kubeconfig":
		get := c.Metrics
		switch cmd {
		case "kubeconfig":
			get = func(ctx context.Context) ([]byte, error) { return c.Kubeconfig(ctx, args[0]) }
		case "join-kubeconfig":
			get = func(ctx context.Context) ([]byte, error) { return c.JoinKubeconfig(ctx, args[0], args[1]) }
		}
		m, err := get(ctx)
		if err != nil {
			return err
		}
		_, err = stdout.Write(m)
		return err
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, st *api.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	used := st.Memory.TotalBytes - min(st.Memory.AvailableBytes, st.Memory.TotalBytes)
	var addrs []string
	for _, a := range st.Addresses {
		addrs = append(addrs, a.Interface+" "+a.Address)
	}
	if len(addrs) == 0 {
		addrs = []string{"-"}
	}
	fmt.Fprintf(tw, "hostname\t%s\n", st.Hostname)
	fmt.Fprintf(tw, "image\t%s %s (%s, %s)\n", st.Image, st.Version, st.Board, st.Arch)
	fmt.Fprintf(tw, "slot\t%s\n", st.Slot)
	fmt.Fprintf(tw, "kernel\t%s\n", st.Kernel)
	fmt.Fprintf(tw, "uptime\t%s\n", st.Uptime().Round(time.Second))
	fmt.Fprintf(tw, "memory\t%s used of %s (%s available)\n", bytesIEC(used), bytesIEC(st.Memory.TotalBytes), bytesIEC(st.Memory.AvailableBytes))
	fmt.Fprintf(tw, "load\t%.2f %.2f %.2f\n", st.Load.One, st.Load.Five, st.Load.Fifteen)
	var rss, pss uint64
	for _, p := range st.Processes {
		rss, pss = rss+p.RSSBytes, pss+p.PSSBytes
	}
	fmt.Fprintf(tw, "processes\t%d using %s PSS (%s RSS)\n", len(st.Processes), bytesIEC(pss), bytesIEC(rss))
	fmt.Fprintf(tw, "addresses\t%s\n", strings.Join(addrs, ", "))
	if h := st.Health; h != nil {
		fmt.Fprintf(tw, "health\t%s\n", healthLine(h, now))
	}
	if u := st.Upgrade; u != nil && u.Phase != "" {
		fmt.Fprintf(tw, "upgrade\t%s\n", upgradeLine(u))
	}
	tw.Flush()
	fmt.Fprintln(w)
	printServices(w, st.Services, now)
	if k := st.Kubernetes; k != nil {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		ready := "not ready"
		if k.NodeReady {
			ready = "Ready"
		}
		fmt.Fprintf(tw, "kubernetes\t%s %s, %s (%s)\n", k.Mode, k.Version, k.Phase, k.NodeName+" "+ready)
		if k.Server != "" {
			fmt.Fprintf(tw, "joined\t%s\n", k.Server)
		}
		fmt.Fprintf(tw, "pods\t%d running, %d pending, %d failed of %d\n", k.Pods.Running, k.Pods.Pending, k.Pods.Failed, k.Pods.Total)
		for _, p := range k.Problems {
			fmt.Fprintf(tw, "problem\t%s\n", p)
		}
		tw.Flush()
	}
}

// healthLine is the node's health in a line: its state, for how long,
// and why when not ok.
func healthLine(h *health.Snapshot, now time.Time) string {
	line := string(h.State)
	if !h.Since.IsZero() {
		line += " for " + now.Sub(h.Since).Round(time.Second).String()
	}
	if h.Reason != "" {
		line += ": " + h.Reason
	}
	return line
}

func printServices(w io.Writer, svcs []api.Service, now time.Time) {
	if len(svcs) == 0 {
		fmt.Fprintln(w, "no services")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tRESTARTS\tPID\tSINCE\tLAST EXIT")
	for _, s := range svcs {
		pid, since, last := "-", "-", "-"
		if s.PID > 0 {
			pid = fmt.Sprint(s.PID)
		}
		if !s.Since.IsZero() {
			since = now.Sub(s.Since).Round(time.Second).String() + " ago"
		}
		if s.LastExit != "" {
			last = s.LastExit
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, s.State, s.Restarts, pid, since, last)
	}
	tw.Flush()
}

func bytesIEC(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// certName is the node name a node's certificate was issued for.
func certName(c *x509.Certificate) string {
	if c == nil || c.Subject.CommonName == "" {
		return "a node of another name"
	}
	return strconv.Quote(c.Subject.CommonName)
}

// explainNodeError turns connection and TLS failures into what went wrong
// and what to do about it.
func explainNodeError(err error, addr string) error {
	if err == nil {
		return nil
	}
	var apiErr *api.Error
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var opErr *net.OpError
	msg := err.Error()
	switch {
	case errors.As(err, &apiErr):
		return err
	case errors.As(err, &unknownCA):
		return fmt.Errorf("the node at %s presents a certificate from another CA: it runs an image built with a different PKI directory; use the node.yaml written next to the image this node runs", addr)
	case errors.As(err, &hostErr):
		return fmt.Errorf("the node at %s is not the node asked for: it is %s, not %s. Another node answers at that address; check it, or use that node's config (cairn provision writes NAME.node.yaml) or --name NAME", addr, certName(hostErr.Certificate), hostErr.Host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("the node at %s presents an expired or not yet valid certificate (%v): check this machine's clock; otherwise update the node with an image built from a renewed PKI", addr, invalid)
	case errors.As(err, &recordErr):
		return fmt.Errorf("%s does not speak TLS: is that the node API's port (%d)?", addr, api.DefaultPort)
	case strings.Contains(msg, "remote error: tls: expired certificate"):
		return fmt.Errorf("the node at %s refused this client's certificate as expired: run cairn build again to renew it in node.yaml (nodes need no update)", addr)
	case strings.Contains(msg, "remote error: tls: bad certificate"):
		return fmt.Errorf("the node at %s refused this client's certificate (tls: bad certificate): it may be revoked (cairn node revoke): get a new one with cairn node issue, or use the node.yaml written next to the image this node runs", addr)
	case strings.Contains(msg, "remote error: tls:"):
		return fmt.Errorf("the node at %s refused this client's certificate (%s): use the node.yaml written next to the image this node runs", addr, msg[strings.Index(msg, "remote error: tls:")+len("remote error: "):])
	case strings.Contains(msg, "protocol version"):
		return fmt.Errorf("%s does not offer TLS 1.3: is it a cairn node?", addr)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return fmt.Errorf("cannot reach the node at %s (%v): is it up, and is the address right? (--server HOST overrides the config's)", addr, opErr.Err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the node at %s did not answer in time: is it up, and is the address right? (--server HOST overrides the config's)", addr)
	}
	return err
}
