// Package runtime holds what the image needs of the container runtime
// besides its binaries (which agent/runtime/build.sh builds from the pinned
// nested modules in containerd/ and runc/): containerd's configuration.
package runtime

import _ "embed"

// ContainerdConfig is /etc/containerd/config.toml in the slot.
//
//go:embed config.toml
var ContainerdConfig []byte

// ConfigPath is where the slot holds ContainerdConfig; cairn-init starts
// containerd with --config ConfigPath.
const ConfigPath = "/etc/containerd/config.toml"
