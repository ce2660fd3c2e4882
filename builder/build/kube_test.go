package build

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/runtime"
)

// kubeBoard is the fixture board's kubernetes section.
const kubeBoard = `kubernetes:
  images:
    - {name: cairn.local/pause:3.10, image: oci-layout:../oci:pause}
    - {name: cairn.local/coredns:1.15.0, image: oci-layout:../oci:coredns}
  tools: [oci-layout:../oci:nft]
  modules: [bridge]
`

// kubeSpec runs Kubernetes with a pod network other than the default, one
// image of its own and manifests from a directory and a file.
const kubeSpec = `name: test
version: 1.0.0
disk:
  espSize: 64MiB
  slotSize: 16MiB
  dataSize: 16MiB
kubernetes:
  clusterCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/12
  clusterDNS: 10.96.0.10
  images:
    - name: registry.example.com/web:1.2
      image: oci-layout:../oci:web
  manifests: [manifests, extra.json]
`

// newKubeFixture is newFixture plus what an image that runs Kubernetes
// needs: the board's kubernetes section with fake cluster images and a fake
// nft tool image, manifests, and fake binaries.
func newKubeFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	pack(t, f.layout, "pause", "amd64", map[string]string{"pause": "#!fake pause"})
	pack(t, f.layout, "coredns", "amd64", map[string]string{"coredns": "#!fake coredns"})
	pack(t, f.layout, "coredns-other", "amd64", map[string]string{"coredns": "#!another coredns"})
	pack(t, f.layout, "web-arm64", "arm64", map[string]string{"bin/web": "#!fake arm64 web"})
	pack(t, f.layout, "nft", "amd64", map[string]string{
		"usr/sbin/nft":                          "#!fake nft",
		"lib/x86_64-linux-gnu/libnftables.so.1": "fake lib",
		"lib64/ld-linux-x86-64.so.2":            "fake loader",
		"etc/protocols":                         "tcp 6 TCP\n",
	})
	board, err := os.ReadFile(filepath.Join(f.boards, "test-board.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, f.dir, map[string]string{
		"boards/test-board.yaml":                  string(board) + kubeBoard,
		"images/test.yaml":                        kubeSpec,
		"images/manifests/b.yml":                  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
		"images/manifests/a.yaml":                 "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: a}\n",
		"images/manifests/notes.txt":              "not a manifest",
		"images/extra.json":                       `{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}`,
		"images/join.kubeconfig":                  "apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n",
		"bin/linux-amd64/cairn-agent-cri":         "#!fake agent with CRI",
		"bin/linux-amd64/cairn-kube":              "#!fake cairn-kube",
		"bin/linux-amd64/containerd-shim-runc-v2": "#!fake shim",
		"bin/linux-amd64/runc":                    "#!fake runc",
		"bin/linux-amd64/cni/bridge":              "#!fake bridge",
		"bin/linux-amd64/cni/host-local":          "#!fake host-local",
		"bin/linux-amd64/cni/loopback":            "#!fake loopback",
		"bin/linux-amd64/cni/portmap":             "#!fake portmap",
	})
	return f
}

// slot extracts the root slot of a built image; skips without unsquashfs.
type slot struct {
	t    *testing.T
	file string
}

func openSlot(t *testing.T, res *Result) *slot {
	t.Helper()
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Skip("unsquashfs is not installed (make deps installs it)")
	}
	s := &slot{t: t, file: filepath.Join(t.TempDir(), "slot.img")}
	if b, err := exec.Command("dd", "if="+res.Image, "of="+s.file, "bs=1M", "skip=65", "count=16", "status=none").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v\n%s", err, b)
	}
	return s
}

// list is `unsquashfs -lls`: one line per entry with mode, owner and path.
func (s *slot) list() string {
	s.t.Helper()
	b, err := exec.Command("unsquashfs", "-lls", s.file).CombinedOutput()
	if err != nil {
		s.t.Fatalf("unsquashfs -lls: %v\n%s", err, b)
	}
	return string(b)
}

func (s *slot) cat(p string) string {
	s.t.Helper()
	b, err := exec.Command("unsquashfs", "-cat", s.file, p).Output()
	if err != nil {
		s.t.Fatalf("unsquashfs -cat %s: %v", p, err)
	}
	return string(b)
}

// TestBuildKubernetes bakes everything the cluster needs into the slot.
func TestBuildKubernetes(t *testing.T) {
	f := newKubeFixture(t)
	out := t.TempDir()
	res, err := f.build(t, out)
	if err != nil {
		t.Fatal(err)
	}
	s := openSlot(t, res)
	list := s.list()
	lines := map[string]string{} // path → its -lls line
	for _, l := range strings.Split(list, "\n") {
		if i := strings.Index(l, "squashfs-root/"); i >= 0 {
			p, _, _ := strings.Cut(l[i+len("squashfs-root/"):], " -> ")
			lines[p] = l
		}
	}
	for _, want := range []string{
		"usr/bin/cairn-agent", "usr/bin/cairn-kube", "usr/bin/runc", "usr/bin/containerd-shim-runc-v2", "usr/bin/containerd",
		"usr/libexec/cni/bridge", "usr/libexec/cni/host-local", "usr/libexec/cni/loopback", "usr/libexec/cni/portmap",
		"etc/cni/net.d", "etc/containerd/10-cairn.conflist.tmpl", "etc/containerd/config.toml", "etc/cairn/agent.yaml",
		"usr/share/cairn/kube/images/cairn.local_pause_3.10/index.json",
		"usr/share/cairn/kube/images/cairn.local_pause_3.10/oci-layout",
		"usr/share/cairn/kube/images/cairn.local_coredns_1.15.0/index.json",
		"usr/share/cairn/kube/images/registry.example.com_web_1.2/index.json",
		"usr/share/cairn/kube/manifests/00-a.yaml", "usr/share/cairn/kube/manifests/01-b.yml", "usr/share/cairn/kube/manifests/02-extra.json",
		"usr/sbin/nft", "lib/x86_64-linux-gnu/libnftables.so.1", "lib64/ld-linux-x86-64.so.2", "etc/protocols",
		"usr/libexec/kubernetes/kubelet-plugins/volume/exec",
		"lib/modules/6.1.0-test/kernel/net/bridge/bridge.ko", "lib/modules/6.1.0-test/kernel/net/802/stp.ko",
	} {
		if _, ok := lines[want]; !ok {
			t.Errorf("slot lacks %s", want)
		}
	}
	for _, unwanted := range []string{".complete", "usr/share/cairn/kube/manifests/03-notes.txt", "etc/cairn/kube/join.kubeconfig", "usr/bin/cairn-agent-cri"} {
		if _, ok := lines[unwanted]; ok {
			t.Errorf("slot has %s", unwanted)
		}
	}
	for p, want := range map[string]string{
		"usr/bin/cairn-agent":    "#!fake agent with CRI",
		"usr/sbin/nft":           "#!fake nft",
		"usr/libexec/cni/bridge": "#!fake bridge",
	} {
		if got := s.cat(p); got != want {
			t.Errorf("%s holds %q, want %q", p, got, want)
		}
	}
	for _, link := range []string{"usr/bin/containerd", "usr/bin/mount", "usr/bin/umount"} {
		if l := lines[link]; !strings.HasSuffix(l, "-> cairn-agent") {
			t.Errorf("%s: %s", link, l)
		}
	}

	// The pod network is containerd's to render for the node's podCIDR:
	// the slot holds the template, and /etc/cni/net.d links to tmpfs.
	if got := s.cat("etc/containerd/10-cairn.conflist.tmpl"); got != string(runtime.CNITemplate) {
		t.Errorf("etc/containerd/10-cairn.conflist.tmpl = %q, want runtime.CNITemplate", got)
	}
	if l := lines["etc/cni/net.d"]; !strings.HasSuffix(l, "-> ../../run/cairn/cni/net.d") {
		t.Errorf("etc/cni/net.d: %s, want a link to %s", l, runtime.CNIConfDir)
	}

	// Each image is a layout whose one manifest carries the name pods use.
	for dir, name := range map[string]string{
		"cairn.local_pause_3.10":       "cairn.local/pause:3.10",
		"cairn.local_coredns_1.15.0":   "cairn.local/coredns:1.15.0",
		"registry.example.com_web_1.2": "registry.example.com/web:1.2",
	} {
		var idx struct {
			Manifests []struct {
				Digest      string
				Annotations map[string]string
			}
		}
		if err := json.Unmarshal([]byte(s.cat("usr/share/cairn/kube/images/"+dir+"/index.json")), &idx); err != nil {
			t.Fatal(err)
		}
		if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != name {
			t.Errorf("%s/index.json: %+v, want one manifest named %s", dir, idx, name)
			continue
		}
		blob := "usr/share/cairn/kube/images/" + dir + "/blobs/sha256/" + strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:")
		if _, ok := lines[blob]; !ok {
			t.Errorf("%s lacks its manifest blob %s", dir, blob)
		}
	}

	if got := s.cat("usr/share/cairn/kube/manifests/02-extra.json"); !strings.Contains(got, `"kind": "Secret"`) {
		t.Errorf("02-extra.json: %s", got)
	}
	agent := s.cat("etc/cairn/agent.yaml")
	for _, want := range []string{"kubernetes:", "clusterCIDR: 10.244.0.0/16", "name: registry.example.com/web:1.2"} {
		if !strings.Contains(agent, want) {
			t.Errorf("agent.yaml lacks %q:\n%s", want, agent)
		}
	}
	if mods := s.cat("etc/cairn/modules"); !strings.Contains(mods, "\nbridge\n") {
		t.Errorf("etc/cairn/modules:\n%s", mods)
	}
	rec, _ := os.ReadFile(res.Inputs)
	for _, want := range []string{`"role": "kubernetes image cairn.local/pause:3.10"`, `"role": "kubernetes image registry.example.com/web:1.2"`, `"role": "tool"`, `"ref": "oci-layout:../oci:nft"`} {
		if !strings.Contains(string(rec), want) {
			t.Errorf("inputs.json lacks %s:\n%s", want, rec)
		}
	}
}

// TestBuildKubernetesAgent bakes the join kubeconfig, readable by root only,
// and lets the spec replace a board image of the same name.
func TestBuildKubernetesAgent(t *testing.T) {
	f := newKubeFixture(t)
	writeFiles(t, f.dir, map[string]string{"images/test.yaml": `name: test
version: 1.0.0
disk: {espSize: 64MiB, slotSize: 16MiB, dataSize: 16MiB}
kubernetes:
  mode: agent
  server: https://10.0.0.1:6443
  joinKubeconfig: join.kubeconfig
  images:
    - {name: cairn.local/coredns:1.15.0, image: oci-layout:../oci:coredns-other}
`})
	res, err := f.build(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := openSlot(t, res)
	var line string
	for _, l := range strings.Split(s.list(), "\n") {
		if strings.HasSuffix(l, "squashfs-root/etc/cairn/kube/join.kubeconfig") {
			line = l
		}
	}
	if !strings.HasPrefix(line, "-rw------- root/root") {
		t.Errorf("join.kubeconfig: %q, want mode -rw------- owned by root", line)
	}
	if got := s.cat("etc/cairn/kube/join.kubeconfig"); !strings.Contains(got, "kind: Config") {
		t.Errorf("join.kubeconfig: %s", got)
	}
	rec, _ := os.ReadFile(res.Inputs)
	if !strings.Contains(string(rec), "oci-layout:../oci:coredns-other") || strings.Count(string(rec), "kubernetes image cairn.local/coredns") != 1 {
		t.Errorf("the spec's coredns did not replace the board's:\n%s", rec)
	}
}

func TestBuildKubernetesBadInputs(t *testing.T) {
	spec := func(kube string) func(t *testing.T, f *fixture) {
		return func(t *testing.T, f *fixture) {
			writeFiles(t, f.dir, map[string]string{"images/test.yaml": "name: test\nversion: 1.0.0\ndisk: {espSize: 64MiB, slotSize: 16MiB, dataSize: 16MiB}\nkubernetes:\n" + kube})
		}
	}
	remove := func(p string) func(t *testing.T, f *fixture) {
		return func(t *testing.T, f *fixture) { os.Remove(filepath.Join(f.dir, p)) }
	}
	board := func(kube string) func(t *testing.T, f *fixture) {
		return func(t *testing.T, f *fixture) {
			b, _ := os.ReadFile(filepath.Join(f.boards, "test-board.yaml"))
			s, _, _ := strings.Cut(string(b), "kubernetes:")
			writeFiles(t, f.boards, map[string]string{"test-board.yaml": s + kube})
		}
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, f *fixture)
		wantErr string
	}{
		{"no cairn-kube", remove("bin/linux-amd64/cairn-kube"), "no cairn-kube at"},
		{"no cairn-kube names make kube", remove("bin/linux-amd64/cairn-kube"), "`make kube`"},
		{"no cairn-agent-cri", remove("bin/linux-amd64/cairn-agent-cri"), "no cairn-agent-cri at"},
		{"no cairn-agent-cri names make binaries", remove("bin/linux-amd64/cairn-agent-cri"), "`make binaries`"},
		{"no CNI plugin", remove("bin/linux-amd64/cni/portmap"), "no CNI plugin cni/portmap at"},
		{"no CNI plugin names make runtime", remove("bin/linux-amd64/cni/portmap"), "`make runtime`"},
		{"no runc", remove("bin/linux-amd64/runc"), "build the container runtime first with `make runtime`"},
		{"malformed manifest", func(t *testing.T, f *fixture) {
			writeFiles(t, f.dir, map[string]string{"images/manifests/b.yml": "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: [1\n"})
		}, "manifests/b.yml:4: did not find expected ',' or ']' (fix the YAML syntax)"},
		{"manifest without kind", func(t *testing.T, f *fixture) {
			writeFiles(t, f.dir, map[string]string{"images/manifests/b.yml": "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nmetadata: {name: b}\n"})
		}, "manifests/b.yml:4: document 2 has no kind"},
		{"missing manifest", spec("  manifests: [nowhere.yaml]\n"), "test.yaml:5: kubernetes.manifests entry"},
		{"empty manifests directory", func(t *testing.T, f *fixture) {
			os.MkdirAll(filepath.Join(f.dir, "images", "empty"), 0o755)
			spec("  manifests: [empty]\n")(t, f)
		}, "holds no .yaml, .yml, .json files"},
		{"missing image", spec("  images:\n    - name: registry.example.com/web:1.2\n      image: oci-layout:../oci:no-such-image\n"),
			`test.yaml:7: kubernetes image registry.example.com/web:1.2: input oci-layout:../oci:no-such-image: no image tagged "no-such-image"`},
		{"image of the wrong architecture", spec("  images:\n    - {name: registry.example.com/web:1.2, image: oci-layout:../oci:web-arm64}\n"), "is built for arm64, but the board is amd64"},
		{"image name not fully qualified", spec("  images:\n    - {name: nginx:1.25, image: oci-layout:../oci:web}\n"), `test.yaml:6: kubernetes image name "nginx:1.25" is not an image reference`},
		{"image given twice", spec("  images:\n    - {name: registry.example.com/web:1.2, image: oci-layout:../oci:web}\n    - {name: registry.example.com/web:1.2}\n"), "is given twice"},
		{"image without a name", spec("  images:\n    - {image: oci-layout:../oci:web}\n"), "test.yaml:6: kubernetes: images[0] has no name"},
		{"missing tool", board("kubernetes:\n  images: [{name: cairn.local/pause:3.10, image: oci-layout:../oci:pause}]\n  tools: [oci-layout:../oci:no-such-tool]\n"), `test-board.yaml:14: tool: input oci-layout:../oci:no-such-tool: no image tagged "no-such-tool"`},
		{"board without kubernetes", board(""), "board test-board has no kubernetes section"},
		{"no sandbox image", board("kubernetes:\n  images: [{name: cairn.local/coredns:1.15.0, image: oci-layout:../oci:coredns}]\n"), "no kubernetes image is named cairn.local/pause:3.10"},
		{"cluster CIDR too small", spec("  clusterCIDR: 10.42.0.0/25\n"), "clusterCIDR 10.42.0.0/25 is smaller than one node's /24 pod range"},
		{"missing join kubeconfig", spec("  mode: agent\n  server: https://10.0.0.1:6443\n  joinKubeconfig: nowhere.kubeconfig\n"), "test.yaml:7: kubernetes.joinKubeconfig cannot be read"},
		{"join kubeconfig in server mode", spec("  joinKubeconfig: join.kubeconfig\n"), "test.yaml:4: kubernetes: server and joinKubeconfig are for mode agent"},
		{"kernel module not in the kernel", board("kubernetes:\n  images: [{name: cairn.local/pause:3.10, image: oci-layout:../oci:pause}]\n  modules: [nf_tables]\n"), `kernel module "nf_tables" is not in kernel 6.1.0-test`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newKubeFixture(t)
			tt.setup(t, f)
			out := t.TempDir()
			_, err := f.build(t, out)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Build error = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error spans lines: %q", err)
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Errorf("a failed build left %v in the output directory", left)
			}
		})
	}
}

// TestBuildKubernetesReproducible builds the same Kubernetes image twice:
// the image layouts, manifests and tools come out byte for byte the same.
func TestBuildKubernetesReproducible(t *testing.T) {
	f := newKubeFixture(t)
	var imgs [2][]byte
	for i := range imgs {
		res, err := f.build(t, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if imgs[i], err = os.ReadFile(res.Image); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(imgs[0], imgs[1]) {
		t.Error("two builds of the same Kubernetes image differ")
	}
}
