package services

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"

	"github.com/cairn-edge/cairn/agent/config"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// labelSpec marks a container with the hash of the service and image it was
// made from, so an agent restart adopts it only while that still holds.
const labelSpec = "io.cairn.service.spec"

func specHash(s config.Service, imageDigest string) string {
	b, _ := json.Marshal(struct {
		S config.Service
		D string
	}{s, imageDigest})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// specOpts composes the OCI spec of a service's container from the image's
// config and the service's fields.
func specOpts(img containerd.Image, s config.Service, notify *notifyListener) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithDefaultSpec(), oci.WithDefaultUnixDevices}
	if len(s.Args) > 0 {
		opts = append(opts, oci.WithImageConfigArgs(img, s.Args))
	} else {
		opts = append(opts, oci.WithImageConfig(img))
	}
	opts = append(opts, oci.WithHostname(s.Name))
	var env []string
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	var mounts []specs.Mount
	if notify != nil {
		env = append(env, "NOTIFY_SOCKET="+notifyTarget+"/"+notifySock)
		mounts = append(mounts, specs.Mount{Type: "bind", Source: notify.dir, Destination: notifyTarget, Options: []string{"rbind", "rw"}})
	}
	sort.Strings(env)
	if len(env) > 0 {
		opts = append(opts, oci.WithEnv(env))
	}
	for _, mt := range s.Mounts {
		mounts = append(mounts, specMount(mt))
	}
	if len(mounts) > 0 {
		opts = append(opts, oci.WithMounts(mounts))
	}
	if len(s.Capabilities) > 0 {
		var caps []string
		for _, c := range s.Capabilities {
			caps = append(caps, config.CapabilityName(c))
		}
		opts = append(opts, oci.WithAddedCapabilities(caps))
	}
	if s.HostNetwork {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	}
	if s.HostPID {
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	}
	if s.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	}
	return opts
}

// specMount turns a Mount into an OCI mount: bind by default, recursive
// unless the options say "bind".
func specMount(m config.Mount) specs.Mount {
	typ := m.Type
	if typ == "" {
		typ = "bind"
	}
	opts := slices.Clone(m.Options)
	if typ == "bind" && !slices.Contains(opts, "bind") && !slices.Contains(opts, "rbind") {
		opts = append([]string{"rbind"}, opts...)
	}
	return specs.Mount{Type: typ, Source: m.Source, Destination: m.Target, Options: opts}
}
