// Package testimage builds the images end-to-end tests and benchmarks
// boot: our binaries compiled as the Makefile compiles them, the test
// service packed as an OCI image, and specs built into disk images.
package testimage

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/builder/build"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/builder/plan"
	"github.com/cairn-edge/cairn/builder/provision"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// Env is where a run of tests or benchmarks keeps what it builds.
type Env struct {
	// Root is the repository (it holds go.mod, boards/ and images/).
	Root string
	// BinDir receives linux-<arch>/<binary> and the host's cairn CLI.
	BinDir string
	// PKIDir is the node API credentials every image of the run shares.
	PKIDir string
	// Cache is the input cache every build of the run shares.
	Cache string
	// Cmdline is appended to every image's kernel command line (the last
	// parameter wins), to measure another setting without a spec of its own.
	Cmdline []string
	// Sysctl is added to every image's kernel settings (the spec's sysctl
	// section), for tests that check they reach the node.
	Sysctl map[string]string
	// Overlay is a `go build -overlay` file (JSON: {"Replace": {file:
	// replacement}}) for every Go program the Env compiles, so a benchmark
	// can build a variant with one source file changed without touching
	// the tree.
	Overlay string
	// Format is the output format of every build (builder/output: raw,
	// oci); empty means raw.
	Format string
	// Update is the update section (YAML, top level) of every Kubernetes
	// image the Env makes, so tests can upgrade them; empty for none.
	Update string
	// NTP, when set, is the ntp section of the services images the Env
	// makes (ServicesImage), e.g. a test's own SNTP server.
	NTP []string
	// Firewall, when set, is the firewall section of the services images
	// the Env makes, as YAML lines.
	Firewall string
	// Node, when set, is the name every disk image the Env builds is
	// provisioned as (Provision); unset, images have no node identity
	// and their node API is off.
	Node string
}

// RepoRoot finds the repository above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no go.mod above %s", dir)
}

// goBuild compiles pkg (relative to the repository) for arch into out.
func (e *Env) goBuild(pkg, arch, out string, flags ...string) error {
	args := append([]string{"build", "-trimpath", "-buildvcs=false"}, flags...)
	if e.Overlay != "" {
		args = append(args, "-overlay", e.Overlay)
	}
	args = append(args, "-o", out, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = e.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for %s: %v\n%s", pkg, arch, err, b)
	}
	return nil
}

// Binaries compiles cairn-init, cairn-agent and cairn-agent-cri (the agent
// with containerd's CRI, for images that run Kubernetes) for arch, as
// `make binaries` does.
func (e *Env) Binaries(arch string) error {
	for _, name := range []string{"cairn-init", "cairn-agent"} {
		if err := e.goBuild("./agent/cmd/"+name, arch, filepath.Join(e.BinDir, "linux-"+arch, name), "-ldflags", "-s -w"); err != nil {
			return err
		}
	}
	return e.goBuild("./agent/cmd/cairn-agent", arch, filepath.Join(e.BinDir, "linux-"+arch, "cairn-agent-cri"), "-tags", "cri", "-ldflags", "-s -w")
}

// CLI compiles the cairn CLI for this machine and returns its path.
func (e *Env) CLI() (string, error) {
	out := filepath.Join(e.BinDir, "cairn")
	cmd := exec.Command("go", "build", "-o", out, "./builder/cmd/cairn")
	cmd.Dir = e.Root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building cairn: %v\n%s", err, b)
	}
	return out, nil
}

// LinkRuntime puts the container runtime binaries that `make runtime`
// made (from/linux-<arch>/) next to ours, and cairn-kube where `make kube`
// made one; it reports whether the runtime is complete for each of archs
// (make test builds it for amd64 only).
func (e *Env) LinkRuntime(from string, archs ...string) bool {
	if from == "" {
		return false
	}
	from, err := filepath.Abs(from)
	if err != nil {
		return false
	}
	for _, arch := range archs {
		for _, name := range append(append([]string{"cni"}, plan.RuntimeBinaries...), plan.KubeBinaries...) {
			src := filepath.Join(from, "linux-"+arch, name)
			dst := filepath.Join(e.BinDir, "linux-"+arch, name)
			if _, err := os.Stat(src); err != nil {
				if slices.Contains(plan.KubeBinaries, name) {
					continue // optional: images without Kubernetes
				}
				return false
			}
			if _, err := os.Lstat(dst); err == nil {
				continue
			}
			if err := os.Symlink(src, dst); err != nil {
				return false
			}
		}
	}
	return true
}

// Build builds specFile for board into out.
func (e *Env) Build(specFile, board, out string) (*build.Result, error) {
	s, err := spec.LoadSpec(specFile)
	if err != nil {
		return nil, err
	}
	b, err := spec.LoadBoard(filepath.Join(e.Root, "boards"), board)
	if err != nil {
		return nil, err
	}
	c, err := source.OpenCache(e.Cache)
	if err != nil {
		return nil, err
	}
	img := spec.Merge(s, b)
	img.Cmdline = append(img.Cmdline, e.Cmdline...)
	if len(e.Sysctl) > 0 && s.Sysctl == nil {
		s.Sysctl = map[string]string{}
	}
	maps.Copy(s.Sysctl, e.Sysctl)
	res, err := build.Build(context.Background(), img, build.Options{OutDir: out, Cache: c, BinDir: e.BinDir, PKIDir: e.PKIDir, Format: e.Format})
	if err != nil || e.Node == "" || !strings.HasSuffix(res.Image, ".img") {
		return res, err
	}
	return res, e.Provision(res, e.Node)
}

// Provision gives the image res built its node identity for name, as
// `cairn provision` does, and points res.NodeConfig at that node's client
// config (NAME.node.yaml beside the image).
func (e *Env) Provision(res *build.Result, name string) error {
	p, err := pki.Ensure(e.PKIDir, pki.Options{})
	if err != nil {
		return err
	}
	if _, err := provision.Disk(res.Image, p, provision.Options{Name: name, Replace: true}); err != nil {
		return err
	}
	res.NodeConfig = filepath.Join(filepath.Dir(res.Image), name+".node.yaml")
	return pki.WriteClientConfig(res.NodeConfig, fmt.Sprintf("https://%s:%d", name, api.DefaultPort), name, p)
}

// HasKube reports whether cairn-kube for arch is among the binaries.
func (e *Env) HasKube(arch string) bool {
	_, err := os.Stat(filepath.Join(e.BinDir, "linux-"+arch, "cairn-kube"))
	return err == nil
}

// KubeImage builds an image for board that runs the bundled Kubernetes,
// with the test program (testdata/hello) baked as cairn.test/hello:1.
func (e *Env) KubeImage(board, arch, dir string) (*build.Result, error) {
	return e.kubeImage(board, arch, dir, "kube", "")
}

// KubeAgentImage is KubeImage for a node in agent mode, joining the API
// server at server with the kubeconfig file joinKubeconfig baked in.
func (e *Env) KubeAgentImage(board, arch, dir, server, joinKubeconfig string) (*build.Result, error) {
	return e.kubeImage(board, arch, dir, "kube-agent", fmt.Sprintf("  mode: agent\n  server: %s\n  joinKubeconfig: %s\n", server, joinKubeconfig))
}

// kubeImage builds the spec name for board: Kubernetes with kube (lines
// of the kubernetes section) and the test program's image.
func (e *Env) kubeImage(board, arch, dir, name, kube string) (*build.Result, error) {
	specFile, err := e.kubeSpec(arch, dir, name, KubeVersion, kube, "")
	if err != nil {
		return nil, err
	}
	return e.Build(specFile, board, filepath.Join(dir, "out-"+name+"-"+board))
}

// KubeVersion is the version of the images KubeImage builds.
const KubeVersion = "0.3.0"

// KubeSpec writes KubeImage's spec at another version, with extra YAML
// lines in its update section (after Env.Update's), into dir and returns
// its path: a release to upgrade a KubeImage node to.
func (e *Env) KubeSpec(arch, dir, version, update string) (string, error) {
	return e.kubeSpec(arch, dir, "kube", version, "", update)
}

func (e *Env) kubeSpec(arch, dir, name, version, kube, update string) (string, error) {
	layout, err := e.HelloLayout(arch, dir)
	if err != nil {
		return "", err
	}
	specFile := filepath.Join(dir, name+"-"+version+".yaml")
	err = os.WriteFile(specFile, []byte(fmt.Sprintf(`name: %s
version: %s
overlay: [%s]
disk:
  slotSize: 512MiB
kubernetes:
%s  images:
    - {name: cairn.test/hello:1, image: "oci-layout:%s:hello"}
%s%s`, name, version, filepath.Join(e.Root, "overlay"), kube, layout, e.Update, update)), 0o644)
	return specFile, err
}

// ntpSection is the spec's ntp section for e.NTP, or nothing.
func (e *Env) ntpSection() string {
	if len(e.NTP) == 0 {
		return ""
	}
	return "ntp: [" + strings.Join(e.NTP, ", ") + "]\n"
}

// BuildHello compiles the test program for arch into out.
func (e *Env) BuildHello(arch, out string) error {
	return e.goBuild("./qemu-tests/testdata/hello", arch, out)
}

// HelloLayout packs the test program for arch as an OCI layout (tag hello)
// in dir and returns the layout's directory.
func (e *Env) HelloLayout(arch, dir string) (string, error) {
	rootfs := filepath.Join(dir, "hello-root-"+arch)
	if err := e.BuildHello(arch, filepath.Join(rootfs, "hello")); err != nil {
		return "", err
	}
	layout := filepath.Join(dir, "hello-oci-"+arch)
	_, err := source.PackDir(rootfs, arch, layout, "hello", source.WithEntrypoint("/hello"))
	return layout, err
}

// Minimal builds images/minimal.yaml for board into out.
func (e *Env) Minimal(board, out string) (*build.Result, error) {
	return e.Build(filepath.Join(e.Root, "images", "minimal.yaml"), board, out)
}

// ServicesImage builds an image for board whose one system service is the
// test program qemu-tests/testdata/hello, run with args, in dir.
func (e *Env) ServicesImage(board, arch, dir string, args ...string) (*build.Result, error) {
	layout, err := e.HelloLayout(arch, dir)
	if err != nil {
		return nil, err
	}
	// The image's entrypoint is /hello; args replace only its command.
	argList := "[" + strings.Join(args, ", ") + "]"
	specFile := filepath.Join(dir, "services-"+board+".yaml")
	err = os.WriteFile(specFile, []byte(fmt.Sprintf(`name: services
version: 0.2.0
disk:
  slotSize: 256MiB
services:
  - name: hello
    image: oci-layout:%s:hello
    args: %s
%s%s`, layout, argList, e.ntpSection(), e.Firewall)), 0o644)
	if err != nil {
		return nil, err
	}
	return e.Build(specFile, board, filepath.Join(dir, "out-services-"+board))
}
