// Package api is the node API: a JSON-over-HTTPS server the agent runs,
// authenticated both ways by mutual TLS (the node's own identity, issued
// for its name when it was provisioned, and client certificates of the
// image's CA: builder/pki), and the Client `cairn node` uses.
//
//	tlsConf, name, err := api.LoadServerTLS(api.CAFile, contract.NodeCertFile, contract.NodeKeyFile)
//	srv := api.NewServer(node, services, api.WithLogger(log))
//	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", api.DefaultPort))
//	err = srv.Serve(ctx, ln, tlsConf) // until ctx ends
//
// Nothing is served to a peer without a client certificate issued by the
// image's CA: the TLS handshake fails first, and every handler checks again.
// A certificate on the revocation list (WithCRL, agent/api/crl) fails the
// handshake too.
//
// Each certificate carries a role (agent/api/role: its Subject
// Organization is admin, operator or monitor), and each endpoint needs one;
// a certificate without a valid role is refused everything with 403, and so
// is a call its role does not reach ({"error": "monitor credential
// 'grafana' may not POST /v1/reboot: needs operator or admin"}). Every
// call that changes state, and every kubeconfig read, is logged as one
// audit line naming the client, its role, the call and the answer:
//
//	msg=audit client=ops-laptop role=admin call="POST /v1/reboot" status=202
//
// Endpoints (JSON unless said otherwise; errors are {"error": "…"} with a
// 4xx or 5xx status), with the least role that may call them:
//
//	GET  /v1/status                     monitor   Status
//	GET  /v1/services                   monitor   []Service
//	POST /v1/services/{name}/restart    operator  202, {"status": "restarting"}
//	GET  /v1/services/{name}/logs       operator  text/plain; ?follow=1 streams, ?tail=N last N lines
//	POST /v1/reboot                     operator  202, {"status": "rebooting"}
//	POST /v1/shutdown                   admin     202, {"status": "shutting down"}
//	GET  /v1/kubeconfig                 admin     application/yaml: an admin kubeconfig (?server=URL); 409 on an agent-mode node
//	GET  /v1/join-kubeconfig            admin     application/yaml: a node's join kubeconfig (?node=NAME, ?server=URL); server nodes only
//	POST /v1/upgrade                    operator  UpgradeRequest → 202, Upgrade; 422 refused, 409 one runs
//	GET  /v1/upgrade                    operator  Upgrade
//	POST /v1/crl                        admin     PEM CRL signed by the CA → CRLReply; 409 when not newer than the one held
//	GET  /v1/clock                      monitor   ClockStatus: the node's time and how it got it
//	POST /v1/clock                      admin     {"time": RFC 3339} sets the clock and its floor → ClockStatus
//	GET  /metrics                       monitor   Prometheus text exposition (also plain HTTP with MetricsHandler)
//
// The handlers reach the system through two small interfaces, Node and
// Services, which the agent implements (LocalNode is the Node of the
// running machine), and, where the node has them, Kubernetes and Health.
package api

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/health"
)

// DefaultPort is the node API's TCP port.
const DefaultPort = 7443

// TLSDir is where the builder puts the CA certificate in the root slot
// (builder/pki.SlotDir), as CAFile.
const TLSDir = contract.APITLSDir

// CAFile is the CA certificate clients and the node's identity are checked against.
const CAFile = TLSDir + "/ca.crt"

// ErrUnknownService is what Services methods return, wrapped, for a name
// that is not a service; the API answers 404.
var ErrUnknownService = errors.New("unknown service")

// ErrNoClusterAdmin is what Kubernetes methods return, wrapped, on a node
// that holds no cluster credentials to give (an agent-mode node, which
// joined a control plane elsewhere); the API answers 409.
var ErrNoClusterAdmin = errors.New("this node runs Kubernetes in agent mode and holds no cluster credentials")

// Node is the machine as the API sees it.
type Node interface {
	// Status reports the node's identity and resources.
	Status(ctx context.Context) (NodeStatus, error)
	// Reboot starts an orderly reboot and returns: the reboot must begin
	// only after the call returns (LocalNode waits half a second) so the
	// reply reaches the client.
	Reboot(ctx context.Context) error
	// Shutdown starts an orderly power-off, with the same contract as Reboot.
	Shutdown(ctx context.Context) error
}

// Services are the system services the agent supervises.
type Services interface {
	// List returns every service, sorted by name.
	List(ctx context.Context) ([]Service, error)
	// Restart stops a service and starts it again; it may return before
	// the service runs again. An unknown name wraps ErrUnknownService.
	Restart(ctx context.Context, name string) error
	// Logs returns a service's recent output (stdout and stderr). With
	// opts.Follow the reader then blocks for new output and returns io.EOF
	// once ctx ends; without, it returns io.EOF after what is buffered. An
	// unknown name wraps ErrUnknownService.
	Logs(ctx context.Context, name string, opts LogOptions) (io.ReadCloser, error)
}

// LogOptions select a service's log output.
type LogOptions struct {
	// Tail is how many of the last lines to return; 0 means all buffered.
	Tail int
	// Follow keeps the stream open for new output.
	Follow bool
}

// State is where a service is in its life.
type State string

// The states of a service.
const (
	StateStarting State = "starting" // started, not yet known to be up
	StateRunning  State = "running"
	StateBackoff  State = "backoff" // exited; waiting before the next start
	StateStopped  State = "stopped" // stopped on purpose
	StateFailed   State = "failed"  // gave up restarting
)

// States lists every State, in the order metrics report them.
var States = []State{StateStarting, StateRunning, StateBackoff, StateStopped, StateFailed}

// Service is one supervised service.
type Service struct {
	Name     string    `json:"name"`
	State    State     `json:"state"`
	Restarts int       `json:"restarts"`       // restarts since boot, by the supervisor or the API
	PID      int       `json:"pid,omitempty"`  // 0 when not running
	Since    time.Time `json:"since,omitzero"` // when State was entered
	// LastExit describes how the previous run ended ("exit status 1",
	// "signal: killed"); empty if it never ended.
	LastExit string `json:"lastExit,omitempty"`
}

// NodeStatus is what Node.Status reports.
type NodeStatus struct {
	Hostname string `json:"hostname"`
	Image    string `json:"image"`   // image name
	Version  string `json:"version"` // image version
	Board    string `json:"board"`
	Arch     string `json:"arch"`
	Kernel   string `json:"kernel"`
	Slot     string `json:"slot"` // root slot booted: "a" or "b"
	// UptimeSeconds is the time since the kernel started.
	UptimeSeconds float64   `json:"uptimeSeconds"`
	Memory        Memory    `json:"memory"`
	Load          Load      `json:"load"`
	Addresses     []Address `json:"addresses"`
	// Processes are the userspace processes with their memory.
	Processes []Process `json:"processes,omitempty"`
	// Sysctl is the image's kernel settings (the spec's sysctl section)
	// with the values the kernel has now, read back from /proc/sys; a
	// setting the kernel lacks is left out.
	Sysctl map[string]string `json:"sysctl,omitempty"`
}

// Memory is the node's memory, from /proc/meminfo: what workloads can
// have (available), what the kernel uses itself (slab, kernel stacks, page
// tables, per-CPU areas, modules) and what it keeps free (the reserve).
// RAM the kernel holds back from the start is the guest's or board's RAM
// less TotalBytes.
type Memory struct {
	TotalBytes     uint64 `json:"totalBytes"`
	AvailableBytes uint64 `json:"availableBytes"` // MemAvailable: what can be used without swapping
	// FreeBytes is MemFree: unused, including the reserve below.
	FreeBytes uint64 `json:"freeBytes,omitempty"`
	// SlabBytes is the kernel's object caches (Slab), of which
	// SlabUnreclaimableBytes (SUnreclaim) cannot be given back.
	SlabBytes              uint64 `json:"slabBytes,omitempty"`
	SlabUnreclaimableBytes uint64 `json:"slabUnreclaimableBytes,omitempty"`
	KernelStackBytes       uint64 `json:"kernelStackBytes,omitempty"`
	PageTablesBytes        uint64 `json:"pageTablesBytes,omitempty"`
	PercpuBytes            uint64 `json:"percpuBytes,omitempty"`
	// ModulesBytes is the loaded kernel modules' size (/proc/modules).
	ModulesBytes uint64 `json:"modulesBytes,omitempty"`
	// MinFreeBytes is vm.min_free_kbytes: what the kernel keeps free (and
	// out of AvailableBytes, with the watermarks above it).
	MinFreeBytes uint64 `json:"minFreeBytes,omitempty"`
	// TransparentHugepages is the THP mode in force: always, madvise or
	// never (empty when the kernel has no THP).
	TransparentHugepages string `json:"transparentHugepages,omitempty"`
}

// Load is the load average over 1, 5 and 15 minutes.
type Load struct {
	One     float64 `json:"one"`
	Five    float64 `json:"five"`
	Fifteen float64 `json:"fifteen"`
}

// Address is an address of a network interface, in CIDR notation.
type Address struct {
	Interface string `json:"interface"`
	Address   string `json:"address"` // e.g. "10.0.2.15/24"
}

// Status is GET /v1/status: the node, its services, on a node that runs
// it the bundled Kubernetes, and the node's health as its one health model
// (package agent/health) sees it.
type Status struct {
	NodeStatus
	Services   []Service         `json:"services"`
	Kubernetes *KubernetesStatus `json:"kubernetes,omitempty"`
	Health     *health.Snapshot  `json:"health,omitempty"`
	// Upgrade is the current or last upgrade attempt, on a node whose
	// image has an update section.
	Upgrade *Upgrade `json:"upgrade,omitempty"`
}

// Health is the node's health model (*health.Model).
type Health interface {
	// Snapshot is the node's health now.
	Snapshot() health.Snapshot
}

// Kubernetes is the bundled Kubernetes of a node that runs it.
type Kubernetes interface {
	// Status reports the cluster's state.
	Status(ctx context.Context) KubernetesStatus
	// Kubeconfig is an administrator's kubeconfig for the API server at
	// server (https://HOST:PORT, as the user reaches the node).
	Kubeconfig(server string) ([]byte, error)
	// JoinKubeconfig is a kubeconfig for the API server at server with
	// new credentials for the node called node (a client certificate for
	// system:node:NODE), which an agent-mode node joins the cluster with.
	JoinKubeconfig(node, server string) ([]byte, error)
}

// KubernetesStatus is the bundled Kubernetes' state.
type KubernetesStatus struct {
	Mode string `json:"mode"` // server or agent
	// Server is the API server an agent-mode node joined.
	Server    string `json:"server,omitempty"`
	Phase     string `json:"phase"` // starting, ready, not ready, failed (cannot start: see Problems)
	Version   string `json:"version,omitempty"`
	NodeName  string `json:"nodeName"`
	NodeReady bool   `json:"nodeReady"`
	// Pods counts the pods on the node by phase.
	Pods PodCount `json:"pods"`
	// Problems are what the user should fix (a malformed manifest, an
	// image that did not import), newest last.
	Problems []string `json:"problems,omitempty"`
}

// PodCount counts pods by phase.
type PodCount struct {
	Running int `json:"running"`
	Pending int `json:"pending"`
	Failed  int `json:"failed"`
	Total   int `json:"total"`
}

// Uptime returns the uptime as a Duration.
func (s NodeStatus) Uptime() time.Duration {
	return time.Duration(s.UptimeSeconds * float64(time.Second))
}

// ErrUpgradeRefused is wrapped by Upgrades.Start's errors for an upgrade
// it will not do (a bad signature, another board, an older version); the
// API answers 422 and nothing was written.
var ErrUpgradeRefused = errors.New("upgrade refused")

// ErrUpgradeBusy is wrapped by Upgrades.Start's errors while an upgrade
// runs; the API answers 409.
var ErrUpgradeBusy = errors.New("an upgrade is already running")

// Upgrades is the node's upgrade control (*update.Updater).
type Upgrades interface {
	// Start checks the artifact req names and starts installing it, or
	// refuses it (errors wrap ErrUpgradeRefused or ErrUpgradeBusy).
	Start(ctx context.Context, req UpgradeRequest) (Upgrade, error)
	// Progress is the current or last attempt.
	Progress() Upgrade
}

// UpgradeRequest is POST /v1/upgrade's body.
type UpgradeRequest struct {
	// Ref is the artifact: REGISTRY/REPO:TAG, REGISTRY/REPO@DIGEST, or
	// a tag (":TAG" or "TAG") of the image's update.repository.
	Ref string `json:"ref"`
	// Force allows a downgrade, a reinstall of the running version,
	// another image's artifact and a digest that rolled back before.
	Force bool `json:"force,omitempty"`
}

// Upgrade is an upgrade attempt: GET /v1/upgrade, and status's upgrade
// section.
type Upgrade struct {
	// Phase is where the attempt is (agent/update's phases: "boot files",
	// "downloading", "verifying", "armed", "trial", "gate failed") or how
	// it ended ("committed", "rolled back", "failed"); empty: none yet.
	Phase string `json:"phase"`
	// Running is true while this agent installs it (before the reboot
	// into the trial); during the trial's gate the phase is "trial".
	Running     bool   `json:"running"`
	Ref         string `json:"ref,omitempty"`
	Digest      string `json:"digest,omitempty"`
	Version     string `json:"version,omitempty"`
	Slot        string `json:"slot,omitempty"`
	FromVersion string `json:"fromVersion,omitempty"`
	FromSlot    string `json:"fromSlot,omitempty"`
	// Reason says why it failed or rolled back.
	Reason string `json:"reason,omitempty"`
	// DoneBytes of TotalBytes of the phase's work (downloading or
	// verifying the slot), at RateBytes per second, ETASeconds left.
	DoneBytes  int64   `json:"doneBytes,omitempty"`
	TotalBytes int64   `json:"totalBytes,omitempty"`
	RateBytes  float64 `json:"rateBytes,omitempty"`
	ETASeconds float64 `json:"etaSeconds,omitempty"`
	// FetchedBytes is what the agent received from registries since it
	// started: with DoneBytes, how much a resume or a delta saved.
	FetchedBytes int64     `json:"fetchedBytes,omitempty"`
	Started      time.Time `json:"started,omitzero"`
	Finished     time.Time `json:"finished,omitzero"`
}
