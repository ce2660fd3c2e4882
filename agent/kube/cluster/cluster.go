// Package cluster starts what a node's role needs, in order, in this
// process: a server runs the datastore, the API server, then the controller
// manager, the scheduler, the kubelet and kube-proxy; an agent runs the
// kubelet and kube-proxy against a remote API server. When any component
// stops, Run stops the rest and returns: the supervisor restarts the
// process, which is simpler and safer than restarting one component inside
// a process whose global state it has already touched.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-edge/cairn/agent/kube/args"
	"github.com/cairn-edge/cairn/agent/kube/component"
	"github.com/cairn-edge/cairn/agent/kube/config"
	"github.com/cairn-edge/cairn/agent/kube/datastore"
	"github.com/cairn-edge/cairn/agent/kube/kubeconfig"
)

// Mode is what a node runs.
type Mode string

const (
	// Server runs the control plane and, unless ControlPlaneOnly, the node components.
	Server Mode = "server"
	// Agent runs the node components against the API server at Config.Server.
	Agent Mode = "agent"
)

// ServerPKI are the files a server needs in CertDir (see README.md).
var ServerPKI = []string{
	"ca.crt", "ca.key",
	"apiserver.crt", "apiserver.key",
	"apiserver-kubelet-client.crt", "apiserver-kubelet-client.key",
	"controller-manager.crt", "controller-manager.key",
	"scheduler.crt", "scheduler.key",
	"sa.key", "sa.pub",
}

// NodePKI are the files the kubelet and kube-proxy need in CertDir, unless
// Config.Kubeconfig replaces them (agent mode).
var NodePKI = []string{
	"ca.crt",
	"kubelet.crt", "kubelet.key",
	"kube-proxy.crt", "kube-proxy.key",
}

// apiReadyTimeout bounds the wait for the API server's /readyz.
const apiReadyTimeout = 3 * time.Minute

// Run runs the components of mode for cfg until ctx ends or one of them
// stops; it returns the first component's error. running, if not nil, is
// called once every component has been started.
func Run(ctx context.Context, mode Mode, cfg *config.Config, running func()) error {
	if mode == Agent {
		if err := cfg.CheckAgent(); err != nil {
			return err
		}
	}
	var need []string
	if mode == Server {
		need = append(need, ServerPKI...)
	}
	node := mode == Agent || !cfg.ControlPlaneOnly
	if node && (mode == Server || cfg.Kubeconfig == "") {
		need = append(need, NodePKI...)
	}
	if err := checkFiles(cfg, need); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, len(config.Components))
	start := func(name string, run func(context.Context, []string) error, a []string) {
		go func() {
			err := run(ctx, a)
			if err == nil && ctx.Err() == nil {
				err = errors.New("stopped")
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", name, err)
			}
			done <- err
		}()
	}

	server := cfg.Server
	if mode == Server {
		server = cfg.LocalAPIServer()
		for _, id := range []string{"controller-manager", "scheduler"} {
			if err := writeKubeconfig(cfg, id, server); err != nil {
				return err
			}
		}
		endpoint, err := datastore.Start(ctx, cfg.DBPath(), cfg.KineSocket())
		if err != nil {
			return err
		}
		log.Printf("cairn-kube: datastore serving %s at %s", cfg.DBPath(), endpoint)
		began := time.Now()
		start(config.APIServer, component.APIServer, args.APIServer(cfg))
		if err := waitReady(ctx, cfg, done); err != nil {
			return err
		}
		log.Printf("cairn-kube: api ready at %s after %s", server, time.Since(began).Round(time.Millisecond))
		// The kubelet must initialise its volume plugins after the
		// controller manager's controllers have: upstream's CSI plugin keeps
		// its node info in a package variable, and a controller (which has
		// no node name) setting it last leaves the kubelet unable to
		// publish its CSINode, until it exits. The controllers are built
		// before any runs, and one that runs republishes kube-system's
		// kube-root-ca.crt: removed here, its return marks the moment.
		marker := "/api/v1/namespaces/kube-system/configmaps/kube-root-ca.crt"
		if node {
			if err := apiDo(ctx, cfg, http.MethodDelete, marker); err != nil && !errors.Is(err, errNotFound) {
				log.Printf("cairn-kube: %v (the kubelet starts without waiting for the controllers)", err)
				marker = ""
			}
		}
		start(config.ControllerManager, component.ControllerManager, args.ControllerManager(cfg))
		start(config.Scheduler, component.Scheduler, args.Scheduler(cfg))
		if node && marker != "" {
			waitControllers(ctx, cfg, marker, done)
		}
	}
	if node {
		kubeletKC, proxyKC := cfg.Kubeconfig, cfg.Kubeconfig
		if kubeletKC == "" {
			if err := writeKubeconfig(cfg, "kubelet", server); err != nil {
				return err
			}
			if err := writeKubeconfig(cfg, "kube-proxy", server); err != nil {
				return err
			}
			kubeletKC, proxyKC = cfg.KubeconfigFor("kubelet"), cfg.KubeconfigFor("kube-proxy")
		}
		if err := writeKubeletConfig(cfg); err != nil {
			return err
		}
		start(config.Kubelet, component.Kubelet, args.Kubelet(cfg, kubeletKC))
		start(config.KubeProxy, component.KubeProxy, args.KubeProxy(cfg, proxyKC))
	}
	log.Printf("cairn-kube: %s running", mode)
	if running != nil {
		running()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return nil
	}
}

func checkFiles(cfg *config.Config, names []string) error {
	var missing []string
	for _, n := range names {
		if _, err := os.Stat(cfg.Cert(n)); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("PKI %s lacks %v: the node agent creates them (agent/kubepki.Ensure); see agent/kube/README.md for the layout", cfg.CertDir, missing)
	}
	return nil
}

func writeKubeconfig(cfg *config.Config, id, server string) error {
	err := kubeconfig.Write(cfg.KubeconfigFor(id), server, cfg.Cert("ca.crt"), cfg.Cert(id+".crt"), cfg.Cert(id+".key"))
	if err != nil {
		return fmt.Errorf("kubeconfig for %s: %w", id, err)
	}
	return nil
}

func writeKubeletConfig(cfg *config.Config) error {
	_, statErr := os.Stat(cfg.Cert("kubelet-serving.crt"))
	data, err := json.MarshalIndent(args.KubeletConfig(cfg, statErr == nil), "", "  ")
	if err != nil {
		return err
	}
	path := args.KubeletConfigPath(cfg)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("kubelet config: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("kubelet config: %w", err)
	}
	return nil
}

// waitReady waits until the local API server answers /readyz, presenting
// the controller manager's certificate.
func waitReady(ctx context.Context, cfg *config.Config, done <-chan error) error {
	client, err := localClient(cfg, "controller-manager")
	if err != nil {
		return err
	}
	deadline := time.After(apiReadyTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.LocalAPIServer()+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz: %s", resp.Status)
		}
		last = err
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("kube-apiserver not ready after %s: %v", apiReadyTimeout, last)
		case <-tick.C:
		}
	}
}

// errNotFound is a 404 from the API server.
var errNotFound = errors.New("not found")

// apiDo sends a request to the local API server as a cluster
// administrator (apiserver-kubelet-client is in system:masters).
func apiDo(ctx context.Context, cfg *config.Config, method, path string) error {
	client, err := localClient(cfg, "apiserver-kubelet-client")
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, cfg.LocalAPIServer()+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil
}

// controllersTimeout bounds the wait for the controller manager.
const controllersTimeout = 2 * time.Minute

// waitControllers waits until marker exists again (see Run), at most
// controllersTimeout.
func waitControllers(ctx context.Context, cfg *config.Config, marker string, done <-chan error) {
	began := time.Now()
	deadline := time.After(controllersTimeout)
	for apiDo(ctx, cfg, http.MethodGet, marker) != nil {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-deadline:
			log.Printf("cairn-kube: controllers not running after %s; starting the kubelet anyway", controllersTimeout)
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	log.Printf("cairn-kube: controllers running after %s", time.Since(began).Round(time.Millisecond))
}

// localClient authenticates to the local API server as the PKI identity id.
func localClient(cfg *config.Config, id string) (*http.Client, error) {
	ca, err := os.ReadFile(cfg.Cert("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no PEM certificate", cfg.Cert("ca.crt"))
	}
	cert, err := tls.LoadX509KeyPair(cfg.Cert(id+".crt"), cfg.Cert(id+".key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      pool,
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		}},
	}, nil
}
