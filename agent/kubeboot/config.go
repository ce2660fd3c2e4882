// Package kubeboot brings up the bundled Kubernetes on a node: it keeps the
// cluster's PKI on CAIRN-DATA, writes cairn-kube's configuration, imports
// the baked images into containerd, runs cairn-kube, waits until the API
// server is ready and the node Ready, and applies the auto-deploy manifests.
// A node in agent mode (agent.go) instead joins a control plane elsewhere
// with a join kubeconfig and runs only the kubelet and kube-proxy; a
// server mints join kubeconfigs for such nodes (join.go). Around an
// upgrade's trial boot it snapshots a server's datastore and restores it on
// a rollback (snapshot.go).
package kubeboot

import (
	"github.com/cairn-edge/cairn/agent/contract"
)

// Where the builder bakes what the cluster needs into a slot, and where a
// node keeps the cluster's state.
const (
	// ImagesDir holds one OCI layout per image, imported into containerd's
	// k8s.io namespace under the name its index gives
	// (org.opencontainers.image.ref.name).
	ImagesDir = contract.KubeImagesDir
	// ManifestsDir holds the spec's auto-deploy manifests, applied in
	// file name order.
	ManifestsDir = contract.KubeManifestsBaked
	// JoinKubeconfig is the agent-mode kubeconfig baked from the spec.
	JoinKubeconfig = contract.KubeJoinBaked
	// NodeJoinKubeconfig on the ESP overrides JoinKubeconfig per node.
	NodeJoinKubeconfig = contract.KubeJoinFile
	// DataDir is cairn-kube's state on CAIRN-DATA.
	DataDir = contract.KubeDir
	// UserManifestsDir on CAIRN-DATA takes manifests users drop in (e.g. a
	// Rancher registration); applied after ManifestsDir, in name order.
	UserManifestsDir = contract.KubeManifestsDir
)
