//go:build cri

package containerd

// The CRI plugins: the image service, the runtime service and the gRPC
// server the kubelet of the bundled Kubernetes connects to.
import (
	_ "github.com/containerd/containerd/v2/plugins/cri"
	_ "github.com/containerd/containerd/v2/plugins/cri/images"
	_ "github.com/containerd/containerd/v2/plugins/cri/runtime"
)
