package plan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/runtime"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/manifest"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/yaml.v3"
)

// kubePlan is what a build bakes for the bundled Kubernetes, checked: the
// part that needs no input images (kubeStatic) and the resolved images.
type kubePlan struct {
	kubeStatic
	// images are the cluster's images, resolved, in board-then-spec order.
	images []kubeImage
}

// kubeStatic is what can be checked from the spec, the board and the files
// the spec names, without resolving any input.
type kubeStatic struct {
	// manifests go to contract.KubeManifestsBaked.
	manifests []manifest.File
	// join is the agent-mode kubeconfig, nil when the spec gives none.
	join []byte
}

type kubeImage struct {
	// name is the name pods use: the image's org.opencontainers.image.ref.name.
	name string
	// dir is its folder under contract.KubeImagesDir.
	dir string
	in  *source.Input
}

// kubeDirs are empty directories the cluster's components want in the
// read-only root. The kubelet creates its FlexVolume plugin directory at
// start and complains every probe when it cannot.
// mountLinks are the links to cairn-agent that stand for util-linux's
// mount and umount in a Kubernetes slot.
var mountLinks = []string{"usr/bin/mount", "usr/bin/umount"}

var kubeDirs = []string{"usr/libexec/kubernetes/kubelet-plugins/volume/exec"}

// check is Check, returning what it read for Kubernetes (nil without).
func check(img *spec.Image) (*kubeStatic, error) {
	refs := slices.Concat([]spec.Ref{img.Kernel}, img.Services, img.Tools)
	if img.Bootloader.Ref != "" {
		refs = append(refs, img.Bootloader)
	}
	if r := img.RPi; r != nil && r.Firmware.Ref != "" {
		refs = append(refs, r.Firmware)
	}
	if k := img.Kubernetes; k != nil {
		for _, im := range k.Images {
			refs = append(refs, im.Ref)
		}
	}
	for _, r := range refs {
		if _, err := source.Parse(r.Ref, r.Dir); err != nil {
			return nil, fmt.Errorf("%s: %w", r.From, err)
		}
	}
	st, err := checkKubernetes(img)
	if err != nil {
		return nil, err
	}
	// A Kubernetes image has nft and the nf_tables modules from the
	// board's kubernetes section already.
	if img.Spec.Agent.FirewallOn() && img.Kubernetes == nil && img.Board.Firewall == nil {
		return nil, fmt.Errorf("%s turns the host firewall on, but board %s has no firewall section (tools with nft, modules; see boards/qemu-x86_64.yaml): add one to %s, or remove firewall.enabled", img.Spec.File(), img.Board.Name, img.Board.File())
	}
	return st, nil
}

// checkKubernetes checks the Kubernetes part of img and reads the files it
// names; nil when the image does not run Kubernetes.
func checkKubernetes(img *spec.Image) (*kubeStatic, error) {
	k := img.Kubernetes
	if k == nil {
		return nil, nil
	}
	if !k.BoardHasKubernetes {
		return nil, fmt.Errorf("%s runs Kubernetes, but board %s has no kubernetes section (images, tools, modules; see boards/qemu-x86_64.yaml): add one to %s", img.Spec.File(), img.Board.Name, img.Board.File())
	}
	dirs := map[string]string{}
	sandbox := false
	for _, im := range k.Images {
		if _, err := name.ParseReference(im.Name, name.StrictValidation); err != nil {
			return nil, fmt.Errorf("%s: kubernetes image name %q is not an image reference: %v (write the name pods use, e.g. registry.example.com/web:1.2)", im.Ref.From, im.Name, err)
		}
		d := imageDirName(im.Name)
		if other, ok := dirs[d]; ok {
			return nil, fmt.Errorf("%s: kubernetes image %q is given twice (or its folder %s clashes with %q's): keep one", im.Ref.From, im.Name, d, other)
		}
		dirs[d] = im.Name
		sandbox = sandbox || im.Name == runtime.SandboxImage
	}
	if !sandbox {
		return nil, fmt.Errorf("%s: no kubernetes image is named %s, the pod sandbox containerd runs for every pod and never pulls: add it to kubernetes.images (e.g. {name: %s, image: oci-layout:../.cache/oci:cairn-pause-%s})", img.Board.File(), runtime.SandboxImage, runtime.SandboxImage, img.Board.Arch)
	}
	var st kubeStatic
	var err error
	if err = runtime.CheckClusterCIDR(k.Config.ClusterCIDR); err != nil {
		return nil, fmt.Errorf("%s: kubernetes: %w", img.Spec.File(), err)
	}
	paths := make([]string, len(k.Manifests))
	for i, m := range k.Manifests {
		paths[i] = m.Path
	}
	if st.manifests, err = manifest.Collect(paths, func(i int) string { return k.Manifests[i].From }); err != nil {
		return nil, err
	}
	if j := k.JoinKubeconfig; j.Path != "" {
		if st.join, err = readKubeconfig(j); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// readKubeconfig reads the agent-mode kubeconfig: a YAML mapping.
func readKubeconfig(p spec.Path) ([]byte, error) {
	data, err := os.ReadFile(p.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: kubernetes.joinKubeconfig cannot be read: %v (give a kubeconfig file relative to the spec)", p.From, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: kubernetes.joinKubeconfig %s is not a kubeconfig (a YAML mapping with clusters, users, contexts)", p.From, p.Path)
	}
	return data, nil
}

// resolveKubernetes resolves the cluster's images for arch.
func resolveKubernetes(ctx context.Context, c *source.Cache, img *spec.Image, st *kubeStatic) (*kubePlan, error) {
	kp := &kubePlan{kubeStatic: *st}
	arch := img.Board.Arch
	for _, im := range img.Kubernetes.Images {
		in, err := resolveAs(ctx, c, im.Ref, arch, "kubernetes image "+im.Name)
		if err != nil {
			return nil, err
		}
		kp.images = append(kp.images, kubeImage{name: im.Name, dir: imageDirName(im.Name), in: in})
	}
	return kp, nil
}

// resolveAs is resolve with what the input is for in its errors:
// "FILE:LINE: kubernetes tool: input …".
func resolveAs(ctx context.Context, c *source.Cache, r spec.Ref, arch, what string) (*source.Input, error) {
	ref, err := source.Parse(r.Ref, r.Dir)
	if err == nil {
		var in *source.Input
		if in, err = c.Resolve(ctx, ref, arch); err == nil {
			return in, nil
		}
	}
	return nil, fmt.Errorf("%s: %s: %w", r.From, what, err)
}

// imageDirName is an image name as a folder name: every character but
// letters, digits, '.', '-' and '_' becomes '_'
// (cairn.local/pause:3.10 → cairn.local_pause_3.10).
func imageDirName(n string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, n)
}

// planKubernetes adds the cluster's images, manifests, join kubeconfig,
// pod network template and directories to the slot.
func planKubernetes(t *fstree.Tree, kp *kubePlan, work string) error {
	// The kubelet runs mount and umount for pod volumes: cairn-agent
	// answers to both names (agent/mountcmd).
	for _, link := range mountLinks {
		if err := t.Symlink(link, agentBinary); err != nil {
			return err
		}
	}
	images := contract.SlotPath(contract.KubeImagesDir)
	for _, im := range kp.images {
		dir := filepath.Join(work, "kube-images", im.dir)
		if err := im.in.WriteLayoutAs(dir, im.name); err != nil {
			return fmt.Errorf("kubernetes image %s: %w", im.name, err)
		}
		if err := t.CopyDir(dir, images+"/"+im.dir); err != nil {
			return err
		}
	}
	if err := t.Dir(images, 0o755); err != nil {
		return err
	}
	manifests := contract.SlotPath(contract.KubeManifestsBaked)
	if err := t.Dir(manifests, 0o755); err != nil {
		return err
	}
	for _, m := range kp.manifests {
		if err := t.File(manifests+"/"+m.Name, 0o644, m.Data); err != nil {
			return err
		}
	}
	if kp.join != nil {
		if err := t.File(contract.SlotPath(contract.KubeJoinBaked), 0o600, kp.join); err != nil {
			return err
		}
	}
	// containerd renders the template for the node's podCIDR into a
	// directory on tmpfs, which the slot's /etc/cni/net.d links to. The
	// link is relative and its target is also in the slot (hidden at run
	// time by the tmpfs on /run): go-diskfs resolves link targets inside
	// the tree it packs and cannot store one that points nowhere.
	if err := t.File(strings.TrimPrefix(runtime.CNITemplatePath, "/"), 0o644, runtime.CNITemplate); err != nil {
		return err
	}
	confDir := strings.TrimPrefix(runtime.CNIConfDir, "/")
	link := strings.TrimPrefix(runtime.CNILinkPath, "/")
	target, err := filepath.Rel(filepath.Dir(link), confDir)
	if err != nil {
		return err
	}
	if err := t.Dir(confDir, 0o755); err != nil {
		return err
	}
	if err := t.Symlink(link, target); err != nil {
		return err
	}
	for _, d := range kubeDirs {
		if err := t.Dir(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}
