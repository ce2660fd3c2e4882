package qemutests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/api"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/update/artifact"
	"github.com/cairn-edge/cairn/agent/update/registry/faultproxy"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
	"github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// upgradeRig is a node that upgrades from a real registry: Debian's
// docker-registry on the host's loopback, which the guest reaches through
// QEMU's user network as 10.0.2.2; artifacts pushed with `cairn push`;
// the node driven with `cairn node upgrade`.
type upgradeRig struct {
	// t is the test or step failures go to; life the test the VMs live as
	// long as.
	t, life  *testing.T
	dir      string
	registry string // host:port on the host's loopback
	guest    string // the same registry as the guest reaches it
	key, pub string // cairn keygen's pair (TestMain's)
	disk     string
	vars     string
	config   string // node.yaml
	vm       *qemu.VM
	// watchdog is the images' boot watchdog (cairn.watchdog=), in seconds.
	watchdog int
}

// upgradeSpec is the image the rig's node runs and upgrades to: small
// (no services unless extra adds them), a short gate, a watchdog well above
// a TCG boot, signatures required.
const upgradeSpec = `name: upgrade
version: %s
overlay: [%s]
kernel:
  cmdline: [cairn.watchdog=%d%s]
disk:
  slotSize: 128MiB
update:
  repository: %s/cairn/upgrade
  plainHTTP: true
  keys: [%s]
  gateTimeout: 30s
%s`

func newUpgradeRig(t *testing.T) *upgradeRig {
	t.Helper()
	r := &upgradeRig{t: t, life: t, dir: t.TempDir(), watchdog: 45}
	r.registry = startRegistry(t, r.dir)
	_, port, _ := net.SplitHostPort(r.registry)
	r.guest = "10.0.2.2:" + port
	r.key, r.pub = updateKey, updatePub
	return r
}

// spec writes the spec of version with extra cmdline parameters and
// extra top-level YAML, and returns its path.
func (r *upgradeRig) spec(version, cmdline, extra string) string {
	r.t.Helper()
	if cmdline != "" {
		cmdline = ", " + cmdline
	}
	path := filepath.Join(r.dir, "upgrade-"+version+".yaml")
	text := fmt.Sprintf(upgradeSpec, version, filepath.Join(env.Root, "overlay"), r.watchdog, cmdline, r.guest, r.pub, extra)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// noAgentSpec writes the spec of version for arch whose agent never
// comes up: its binary is replaced by one that exits at once, cairn-init
// restarts it for ever, and nobody pets the watchdog.
func (r *upgradeRig) noAgentSpec(version, arch string) string {
	r.t.Helper()
	overlay := filepath.Join(r.dir, "broken-agent-"+arch)
	if err := os.MkdirAll(filepath.Join(overlay, "usr", "bin"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := env.BuildHello(arch, filepath.Join(overlay, "usr", "bin", "cairn-agent")); err != nil {
		r.t.Fatal(err)
	}
	spec := r.spec(version, "", "")
	text, err := os.ReadFile(spec)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(spec, []byte(strings.Replace(string(text), "overlay: [", "overlay: ["+overlay+", ", 1)), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return spec
}

// bigSpec writes the spec of version with size bytes of random data
// more, on slots of twice the rig's (its slot image outgrows the rig's
// node's partitions), and returns its path.
func (r *upgradeRig) bigSpec(version string, size int) string {
	r.t.Helper()
	return r.withFile(r.spec(version, "", ""), "big-"+version, size, func(text string) string {
		return strings.Replace(text, "slotSize: 128MiB", "slotSize: 256MiB", 1)
	})
}

// withFile adds to spec an overlay named name holding size random bytes
// (which no earlier release has, so a delta must fetch them), edits the
// spec's text with edit (if not nil), and returns spec.
func (r *upgradeRig) withFile(spec, name string, size int, edit func(string) string) string {
	r.t.Helper()
	dir := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Join(dir, "usr", "share", "cairn-test"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	random := make([]byte, size)
	rand.NewChaCha8([32]byte{byte(len(name)), name[0]}).Read(random)
	if err := os.WriteFile(filepath.Join(dir, "usr", "share", "cairn-test", "blob"), random, 0o644); err != nil {
		r.t.Fatal(err)
	}
	text, err := os.ReadFile(spec)
	if err != nil {
		r.t.Fatal(err)
	}
	out := strings.Replace(string(text), "overlay: [", "overlay: ["+dir+", ", 1)
	if edit != nil {
		out = edit(out)
	}
	if err := os.WriteFile(spec, []byte(out), 0o644); err != nil {
		r.t.Fatal(err)
	}
	return spec
}

// push builds spec's artifact for board and pushes it as tag with flags
// (--key or --unsigned), returning what cairn push printed.
func (r *upgradeRig) push(spec, board, tag string, flags ...string) string {
	r.t.Helper()
	if len(flags) == 0 {
		flags = []string{"--key", r.key}
	}
	args := append([]string{"push", "-f", spec, "--board", board, "--boards", filepath.Join(env.Root, "boards"),
		"--cache", env.Cache, "--bin-dir", binDir, "--pki", pkiDir, "-o", filepath.Join(r.dir, "out")}, flags...)
	args = append(args, r.registry+"/cairn/upgrade:"+tag)
	start := time.Now()
	out, err := exec.Command(filepath.Join(binDir, "cairn"), args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("cairn push %s: %v\n%s", tag, err, out)
	}
	r.t.Logf("pushed %s in %s", tag, time.Since(start).Round(time.Millisecond))
	return string(out)
}

// boot powers the node on (start) and waits for the console lines
// matching before, in order, and then for its agent.
func (r *upgradeRig) boot(before ...string) {
	r.t.Helper()
	r.start()
	for _, pattern := range append(before, `cairn: agent ready`) {
		if _, err := r.vm.Expect(bootTimeout, pattern); err != nil {
			if dir := os.Getenv("CAIRN_TEST_KEEP_DISK"); dir != "" {
				r.vm.Kill()
				qemu.CopySparse(filepath.Join(dir, "upgrade-disk.img"), r.disk)
				r.t.Logf("disk kept in %s", dir)
			}
			r.t.Fatal(err)
		}
	}
}

// start powers the node on, from the rig's disk: a power-on after a cut
// keeps disk and NVRAM.
func (r *upgradeRig) start() {
	r.vm = qemu.StartT(r.life, qemu.WithArch(qemu.AMD64), qemu.WithDisk(r.disk), qemu.WithVarsFile(r.vars), qemu.WithMemory(512),
		qemu.WithGuestReboot(), qemu.WithWatchdog(), qemu.WithPortForward(0, api.DefaultPort))
}

// cutAfter waits for a console line matching pattern, lets delay pass
// and cuts the power.
func (r *upgradeRig) cutAfter(pattern string, delay time.Duration) {
	r.t.Helper()
	if _, err := r.vm.Expect(5*time.Minute, pattern); err != nil {
		r.t.Fatal(err)
	}
	time.Sleep(delay)
	r.cut()
}

// step runs one step of a story as a subtest, whose failures are its own.
func (r *upgradeRig) step(name string, fn func(t *testing.T)) {
	r.life.Run(name, func(t *testing.T) {
		r.t = t
		defer func() { r.t = r.life }()
		fn(t)
	})
}

// cut kills QEMU: the power is gone at once.
func (r *upgradeRig) cut() {
	r.t.Helper()
	if err := r.vm.Kill(); err != nil {
		r.t.Fatal(err)
	}
}

// node runs `cairn node ARGS` against the rig's node.
func (r *upgradeRig) node(args ...string) (string, error) {
	return node(r.t, r.vm, r.config, args...)
}

// upgrade runs `cairn node upgrade REF` (bounded by --wait), logging what
// it prints as it prints it, and returns its output.
func (r *upgradeRig) upgrade(ref string, args ...string) (string, error) {
	cmd, out := r.upgradeCmd(ref, args...)
	err := cmd.Run()
	return out.String(), err
}

// upgradeCut starts `cairn node upgrade REF` for an upgrade the power will
// cut; call the function it returns after the cut, to stop the client.
func (r *upgradeRig) upgradeCut(ref string, args ...string) func() {
	r.t.Helper()
	cmd, _ := r.upgradeCmd(ref, args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	return func() { cmd.Process.Kill(); cmd.Wait() }
}

func (r *upgradeRig) upgradeCmd(ref string, args ...string) (*exec.Cmd, *lineLog) {
	full := append([]string{"node", "--config", r.config, "--server", fmt.Sprintf("127.0.0.1:%d", r.vm.HostPort(api.DefaultPort)),
		"upgrade", ref, "--wait", "10m"}, args...)
	cmd := exec.Command(filepath.Join(binDir, "cairn"), full...)
	out := &lineLog{t: r.t, prefix: "cairn node upgrade " + ref + ": "}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// lineLog keeps what a command prints and logs it a line at a time.
type lineLog struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	all    strings.Builder
	part   string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.part += string(p)
	for {
		i := strings.IndexAny(l.part, "\n\r")
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(l.part[:i]); line != "" {
			l.t.Log(l.prefix + line)
		}
		l.part = l.part[i+1:]
	}
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func (r *upgradeRig) status() api.Status {
	r.t.Helper()
	var st api.Status
	nodeJSON(r.t, r.vm, r.config, &st, "status")
	return st
}

// expectRunning checks the node runs version from slot.
func (r *upgradeRig) expectRunning(version, slot string) api.Status {
	r.t.Helper()
	st := r.status()
	if st.Version != version || st.Slot != slot {
		r.t.Fatalf("node runs %s from slot %s, want %s from slot %s", st.Version, st.Slot, version, slot)
	}
	return st
}

// slotSum hashes a slot partition of the rig's disk, read from the host.
func (r *upgradeRig) slotSum(slot contract.Slot) string {
	r.t.Helper()
	return partitionSum(r.t, r.disk, slot.Label())
}

// TestUpgrade is the life of a node that is upgraded over the air: it
// refuses what it must before touching its inactive slot, takes v2 through
// a link that drops and stalls, commits it in slot b, takes v3 back in
// slot a through power cuts in its boot files and mid-download (resumed),
// rolls back by itself from a v4 whose gate fails (through a cut while it
// reboots), a v5 whose kernel panics and a v6 that never reaches its
// agent; in make test-full it still upgrades after all that, through cuts
// once armed, in the trial's kernel and gate, and right after the commit.
// One guest for the whole story.
func TestUpgrade(t *testing.T) {
	share(t, 1)
	needServices(t) // the gate-failure release runs a service
	r := newUpgradeRig(t)
	base := r.spec("1.0.0", "", "")
	img, err := env.Build(base, "qemu-x86_64", filepath.Join(r.dir, "out-1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	r.disk, r.vars, r.config = qemu.CopyImage(t, img.Image), filepath.Join(r.dir, "vars.fd"), img.NodeConfig
	os.Truncate(r.disk, 2<<30)
	r.boot()
	r.expectRunning("1.0.0", "a")
	emptyB := r.slotSum(contract.SlotB)

	r.step("refused before the slot is touched", func(t *testing.T) {
		other := filepath.Join(r.dir, "other")
		if out, err := exec.Command(filepath.Join(binDir, "cairn"), "keygen", "-o", other).CombinedOutput(); err != nil {
			t.Fatalf("keygen: %v\n%s", err, out)
		}
		// Each its own release: a digest signed under one tag is signed
		// under every tag.
		r.push(r.spec("2.0.2", "", ""), "qemu-x86_64", "unsigned", "--unsigned")
		r.push(r.spec("2.0.0", "", ""), "qemu-x86_64", "otherkey", "--key", filepath.Join(other, "cairn.key"))
		r.push(r.spec("0.9.0", "", ""), "qemu-x86_64", "0.9.0")
		r.push(r.spec("2.0.0", "", ""), "generic-x86_64", "generic")
		r.push(r.spec("2.0.1", "", ""), "qemu-x86_64", "tampered")
		tamperConfig(t, r.dir, r.registry, "tampered")
		r.push(r.bigSpec("2.0.3", 136<<20), "qemu-x86_64", "toolarge")
		for _, tc := range []struct{ ref, want string }{
			{"unsigned", "is not signed, and this image requires signatures"},
			{"otherkey", "bad signature"},
			{"0.9.0", "older than the running 1.0.0 (pass --force"},
			{"generic", "is for board generic-x86_64, this node is qemu-x86_64"},
			{"tampered", "digest"},
			{"toolarge", "larger than slot b's partition (128 MiB)"},
			{"nosuchtag", "manifest unknown"},
			{"10.0.2.2:1/cairn/upgrade:2.0.0", "connection refused"},
		} {
			out, err := r.upgrade(tc.ref)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("upgrade %s: %v, want a refusal with %q:\n%s", tc.ref, err, tc.want, out)
			}
			if lines := strings.Count(strings.TrimSpace(out), "\n"); lines > 0 {
				t.Errorf("upgrade %s: the refusal is %d lines, want one:\n%s", tc.ref, lines+1, out)
			}
			if st := r.status(); st.Upgrade == nil || st.Upgrade.Phase != "failed" || !strings.Contains(st.Upgrade.Reason, tc.want) {
				t.Errorf("upgrade %s: status has %+v, want the refusal's reason", tc.ref, st.Upgrade)
			}
		}
		if got := r.slotSum(contract.SlotB); got != emptyB {
			t.Fatal("a refused upgrade wrote to slot b")
		}
	})

	r.step("v2 over a spotty link commits in slot b", func(t *testing.T) {
		// 2.0.0 brings 3 MiB that 1.0.0 does not have (random bytes, so
		// the delta must fetch them), and caps its own downloads
		// (update.maxRate), so the next upgrade can be cut mid-download.
		r.push(r.withFile(r.spec("2.0.0", "", "  maxRate: 4096\n"), "blob-overlay", 3<<20, nil), "qemu-x86_64", "2.0.0")
		// Between the guest and the registry: 3 cuts and a stall longer
		// than the agent's stall timeout, in the slot download.
		// The delta fetches 2.0.0's 3 MiB of new bytes: the faults land
		// there (the boot files are 1.0.0's, copied from the ESP).
		proxy, err := faultproxy.Start(faultproxy.Options{Listen: "127.0.0.1:0", Upstream: r.registry, Total: []faultproxy.Fault{
			{After: 1 << 20, Cut: true}, {After: 3 << 19, Stall: 35 * time.Second}, {After: 2 << 20, Cut: true}, {After: 5 << 19, Cut: true},
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		_, pport, _ := net.SplitHostPort(proxy.Addr())
		done := make(chan error, 1)
		var out string
		go func() {
			var err error
			out, err = r.upgrade("10.0.2.2:" + pport + "/cairn/upgrade:2.0.0")
			done <- err
		}()
		// One upgrade at a time.
		if _, err := r.vm.Expect(2*time.Minute, `cairn: upgrade started version=2\.0\.0 slot=b`); err != nil {
			t.Fatal(err)
		}
		if busy, err := r.upgrade("2.0.0"); err == nil || !strings.Contains(busy, "already running") {
			t.Errorf("a second upgrade while one runs: %v\n%s", err, busy)
		}
		plan, err := r.vm.Expect(5*time.Minute, `cairn: upgrade delta local=\d+ fetch=(\d+)`)
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.vm.Expect(5*time.Minute, `cairn: upgrade armed slot=b version=2\.0\.0 fetched=(\d+)`)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.vm.Expect(bootTimeout, `cairn: upgrade committed slot=b version=2\.0\.0`); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil || !strings.Contains(out, "committed: slot b runs version 2.0.0") {
			t.Fatalf("cairn node upgrade: %v\n%s", err, out)
		}
		st := proxy.Stats()
		man := artifactManifest(t, r.registry, "2.0.0")
		fetched, _ := strconv.ParseInt(m.Groups[1], 10, 64)
		delta, _ := strconv.ParseInt(plan.Groups[1], 10, 64)
		// What the agent had to fetch: the delta's ranges, the chunk
		// index, the config (the boot files are 1.0.0's).
		need := delta + man.Config.Size
		for _, l := range man.Layers {
			if l.MediaType == artifact.ChunksMediaType {
				need += l.Size
			}
		}
		t.Logf("spotty link: %d cuts, %d stalls, %d connections; %d bytes through the proxy; the agent received %d for the %d it needed (%.3f×) of a %d-byte artifact",
			st.Cuts, st.Stalls, st.Conns, st.Down, fetched, need, float64(fetched)/float64(need), artifactSize(t, r.registry, "2.0.0"))
		if st.Cuts != 3 || st.Stalls != 1 {
			t.Errorf("the proxy cut %d times and stalled %d, want 3 and 1 (the download was too short?)", st.Cuts, st.Stalls)
		}
		if float64(fetched) > 1.05*float64(need) {
			t.Errorf("the agent received %d bytes for the %d it needed: more than 1.05× (a cut restarted a download?)", fetched, need)
		}
		r.expectRunning("2.0.0", "b")
	})

	r.step("v3, cut by power losses while it installs boot files and downloads, resumes and lands in slot a", func(t *testing.T) {
		r.push(r.spec("3.0.0", "", ""), "qemu-x86_64", "3.0.0")
		// A cut while the boot files are written: the node stays on 2.0.0.
		stop := r.upgradeCut("3.0.0")
		r.cutAfter(`cairn: upgrade started version=3\.0\.0`, 300*time.Millisecond)
		stop()
		r.boot()
		if st := r.expectRunning("2.0.0", "b"); st.Upgrade == nil || !strings.Contains(st.Upgrade.Reason, "interrupted while") {
			t.Errorf("status after a cut in the boot files: %+v", st.Upgrade)
		}
		base := r.status().Upgrade.FetchedBytes
		stop = r.upgradeCut("3.0.0")
		m, err := r.vm.Expect(2*time.Minute, `cairn: upgrade delta local=\d+ fetch=(\d+) ranges=\d+ resume=0`)
		if err != nil {
			t.Fatal(err)
		}
		// At 4 KiB/s: cut 8 KiB before the end, inside the last range (a
		// chunk is at least 16 KiB): what came before is written and
		// synced (every 2 s), the rest is not.
		fetch, _ := strconv.ParseInt(m.Groups[1], 10, 64)
		need := fetch
		for _, l := range artifactManifest(t, r.registry, "3.0.0").Layers {
			if l.MediaType == artifact.ChunksMediaType {
				need += l.Size
			}
		}
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if up := r.status().Upgrade; up.Phase != "downloading" || up.FetchedBytes-base >= need-8<<10 {
				t.Logf("power cut in phase %s, %d of the %d bytes to fetch in", up.Phase, up.FetchedBytes-base, need)
				break
			}
		}
		r.cut()
		stop()
		r.boot()
		st := r.expectRunning("2.0.0", "b")
		if st.Upgrade == nil || st.Upgrade.Phase != "failed" || !strings.Contains(st.Upgrade.Reason, "interrupted while downloading") {
			t.Errorf("status after the cut: %+v", st.Upgrade)
		}
		out, err := r.upgrade("3.0.0")
		if err != nil || !strings.Contains(out, "committed: slot a runs version 3.0.0") {
			t.Fatalf("upgrade to 3.0.0 after the cut: %v\n%s", err, out)
		}
		// What came in before the cut is kept: as a range resumed, or,
		// when the cut fell just after a chunk was synced whole, as a
		// chunk the retry finds locally and fetches no more.
		m, err = r.vm.Expect(time.Second, `cairn: upgrade delta local=\d+ fetch=(\d+) ranges=\d+ resume=(\d+)`)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := strconv.ParseInt(m.Groups[1], 10, 64); m.Groups[2] == "0" && again >= fetch {
			t.Errorf("the retry after the cut kept nothing: it fetches %d bytes as the first try did %d, resuming none (%s)", again, fetch, m.Line)
		}
		r.expectRunning("3.0.0", "a")
	})

	r.step("v4 whose gate fails rolls back to v3", func(t *testing.T) {
		layout, err := env.HelloLayout("amd64", r.dir)
		if err != nil {
			t.Fatal(err)
		}
		// A service that never gets ready: it idles, and nothing listens
		// on the port its readiness check waits for.
		r.push(r.spec("4.0.0", "", fmt.Sprintf("services:\n  - name: hello\n    image: oci-layout:%s:hello\n    args: [idle]\n    ready: {tcp: 9999, timeout: 10m}\n", layout)), "qemu-x86_64", "4.0.0")
		stop := r.upgradeCut("4.0.0")
		defer stop()
		if _, err := r.vm.Expect(5*time.Minute, `cairn: upgrade trial slot=b version=4\.0\.0`); err != nil {
			t.Fatal(err)
		}
		// While the trial waits for its gate, no other upgrade.
		if out, err := r.upgrade("3.0.0", "--force"); err == nil || !strings.Contains(out, "a trial boot is pending") {
			t.Errorf("an upgrade during the trial: %v, want a refusal:\n%s", err, out)
		}
		// The gate fails; a power cut while the node reboots into slot a.
		r.cutAfter(`cairn: upgrade gate failed slot=b reason=health gate failed`, 200*time.Millisecond)
		stop()
		r.boot(`cairn: rollback to slot=a reason=health gate failed`)
		st := r.expectRunning("3.0.0", "a")
		if st.Upgrade == nil || st.Upgrade.Phase != "rolled back" || !strings.Contains(st.Upgrade.Reason, "services") || !strings.Contains(st.Upgrade.Reason, "hello") {
			t.Errorf("status after the rollback: %+v", st.Upgrade)
		}
		// Remembered: not tried again unless forced.
		if again, err := r.upgrade("4.0.0"); err == nil || !strings.Contains(again, "rolled back on this node before") {
			t.Errorf("retry of a rolled-back release: %v\n%s", err, again)
		}
	})

	r.step("v5 whose kernel panics rolls back", func(t *testing.T) {
		// The initramfs has no such init: the kernel panics, panic=10 reboots.
		r.push(r.spec("5.0.0", "rdinit=/no-such-init", ""), "qemu-x86_64", "5.0.0")
		out, err := r.upgrade("5.0.0")
		if err == nil || !strings.Contains(out, "rolled back to slot a") || !strings.Contains(out, "did not reach a health verdict") {
			t.Fatalf("upgrade to a release that panics: %v\n%s", err, out)
		}
		if _, err := r.vm.Expect(time.Second, `Kernel panic`); err != nil {
			t.Error(err)
		}
		r.expectRunning("3.0.0", "a")
	})

	r.step("v6 that never reaches its agent rolls back by the watchdog", func(t *testing.T) {
		r.push(r.noAgentSpec("6.0.0", "amd64"), "qemu-x86_64", "6.0.0")
		out, err := r.upgrade("6.0.0")
		if err == nil || !strings.Contains(out, "rolled back to slot a") {
			t.Fatalf("upgrade to a release without an agent: %v\n%s", err, out)
		}
		r.expectRunning("3.0.0", "a")
	})

	if os.Getenv("CAIRN_TEST_FULL") == "" {
		return // TestUpgradePowerCuts, in make test-full, cuts in these phases and more
	}
	r.step("an upgrade after rollbacks works, through power losses once armed, in its trial and at its commit", func(t *testing.T) {
		r.push(r.spec("7.0.0", "", ""), "qemu-x86_64", "7.0.0")
		// Cut once armed, and again in the trial's kernel: a trial has
		// one try, so the node is back on 3.0.0.
		stop := r.upgradeCut("7.0.0")
		r.cutAfter(`cairn: upgrade armed slot=b version=7\.0\.0`, 0)
		stop()
		r.start()
		r.cutAfter(`Linux version`, time.Second)
		r.boot(`cairn: rollback to slot=a reason=the trial boot of slot b \(version 7\.0\.0\) did not reach a health verdict`)
		r.expectRunning("3.0.0", "a")
		// Again (forced: it rolled back), cut in the trial's gate.
		stop = r.upgradeCut("7.0.0", "--force")
		r.cutAfter(`cairn: upgrade trial slot=b version=7\.0\.0`, 0)
		stop()
		r.boot(`cairn: rollback to slot=a`)
		r.expectRunning("3.0.0", "a")
		// A third time, cut once armed: the next power-on is the trial,
		// which commits; and a cut right after the commit.
		stop = r.upgradeCut("7.0.0", "--force")
		r.cutAfter(`cairn: upgrade armed slot=b version=7\.0\.0`, 0)
		stop()
		r.start()
		r.cutAfter(`cairn: upgrade committed slot=b version=7\.0\.0`, 0)
		r.boot()
		if st := r.expectRunning("7.0.0", "b"); st.Upgrade == nil || st.Upgrade.Phase != "committed" {
			t.Errorf("status after a cut at the commit: %+v", st.Upgrade)
		}
	})
}

// startRegistry runs Debian's docker-registry (distribution 2.8) on a free
// loopback port with its storage in dir, until the test ends.
func startRegistry(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("no docker-registry (Debian's docker-registry package; make deps installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "registry.yml")
	os.WriteFile(conf, []byte(fmt.Sprintf("version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp: {addr: %s}\n",
		filepath.Join(dir, "registry"), addr)), 0o644)
	cmd := exec.Command(bin, "serve", conf)
	logf, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			t.Fatalf("docker-registry did not listen on %s:\n%s", addr, b)
		}
	}
}

// tamperConfig flips a byte of the config blob of tag's artifact in the
// registry's storage: the registry serves it as it is, and a node must
// refuse it.
func tamperConfig(t *testing.T, dir, reg, tag string) {
	t.Helper()
	m := artifactManifest(t, reg, tag)
	hexd := strings.TrimPrefix(m.Config.Digest, "sha256:")
	data := filepath.Join(dir, "registry", "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// artifactManifest reads tag's manifest with crane.
func artifactManifest(t *testing.T, reg, tag string) artifact.Manifest {
	t.Helper()
	var m artifact.Manifest
	if err := json.Unmarshal([]byte(crane(t, "manifest", reg+"/cairn/upgrade:"+tag)), &m); err != nil {
		t.Fatalf("crane manifest %s: %v", tag, err)
	}
	return m
}

// artifactSize is the bytes of tag's artifact: its config and layers.
func artifactSize(t *testing.T, reg, tag string) int64 {
	t.Helper()
	m := artifactManifest(t, reg, tag)
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// crane runs go-containerregistry's crane, the real client `make tools`
// installs, and returns its output.
func crane(t *testing.T, args ...string) string {
	t.Helper()
	bin := toolPath(t, "crane")
	out, err := exec.Command(bin, append(args, "--insecure")...).Output()
	if err != nil {
		t.Fatalf("crane %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// toolPath finds a client `make tools` installed ($CAIRN_TEST_TOOLS, or
// out/bin/tools in the module).
func toolPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("CAIRN_TEST_TOOLS")
	if dir == "" {
		dir = filepath.Join(env.Root, "out", "bin", "tools")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no %s in %s: make test installs it (make tools)", name, dir)
		}
		t.Skipf("no %s in %s (make tools)", name, dir)
	}
	return p
}

// partitionSum is the SHA-256 of the partition labeled label on disk.
func partitionSum(t *testing.T, disk, label string) string {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pt, err := d.GetPartitionTable()
	if err != nil {
		t.Fatal(err)
	}
	table, ok := pt.(*gpt.Table)
	if !ok {
		t.Fatalf("%s has no GPT", disk)
	}
	for _, p := range table.Partitions {
		if p.Name == label {
			f, err := os.Open(disk)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, io.NewSectionReader(f, int64(p.Start)*512, int64(p.Size))); err != nil {
				t.Fatal(err)
			}
			return hex.EncodeToString(h.Sum(nil))
		}
	}
	t.Fatalf("%s has no partition %s", disk, label)
	return ""
}

// cutPoint is where TestUpgradePowerCuts cuts the power: delay after the
// console line matching after (of the attempt that began last).
type cutPoint struct {
	phase string
	after string
	delay time.Duration
	// failing: the attempt installs a release whose gate fails.
	failing bool
}

// powerCutPoints spread over every phase of an upgrade: boot files,
// download (a delta at 64 KiB/s), verification, arming and the reboot,
// the trial boot from firmware to agent, the gate, the commit, and a
// failed gate's rollback.
func powerCutPoints() []cutPoint {
	var ps []cutPoint
	add := func(phase, after string, failing bool, delays ...float64) {
		for _, d := range delays {
			ps = append(ps, cutPoint{phase, after, time.Duration(d * float64(time.Second)), failing})
		}
	}
	add("boot files", `cairn: upgrade started`, false, 0, 0.2, 0.5, 1, 2, 3)
	add("download", `cairn: upgrade delta`, false, 0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
	add("arming and reboot", `cairn: upgrade armed`, false, 0, 0.3, 0.6, 1, 1.5, 2, 3)
	add("trial: firmware", `BdsDxe: starting`, false, 0, 0.5)
	add("trial: kernel", `Linux version`, false, 0, 1)
	add("trial: initramfs", `cairn: watchdog armed`, false, 0, 0.5)
	add("trial: slot", `cairn: init ok slot=`, false, 0, 0.5)
	add("trial: agent", `cairn: upgrade trial`, false, 0, 0.3)
	add("gate", `cairn: agent ready`, false, 0, 0.5, 1, 2)
	add("commit", `cairn: upgrade committed`, false, 0, 0.1, 0.5)
	add("failed gate", `cairn: upgrade gate failed`, true, 0, 0.2, 0.5, 1)
	add("rollback boot", `cairn: reboot`, true, 0.5, 2, 5)
	add("rollback: slot", `cairn: init ok slot=`, true, 0, 1)
	return ps
}

// TestUpgradePowerCuts (make test-full) cuts the power at every point of
// powerCutPoints, one upgrade each: after every cut the node boots a good
// slot (the one committed before, or the new one if it committed), and a
// retried upgrade commits. CAIRN_TEST_CUTS, a regular expression, picks
// points by phase.
func TestUpgradePowerCuts(t *testing.T) {
	if os.Getenv("CAIRN_TEST_FULL") == "" && os.Getenv("CAIRN_TEST_CUTS") == "" {
		t.Skip("the power-cut matrix runs in make test-full; make test cuts at two points in TestUpgrade")
	}
	share(t, 1)
	needServices(t)
	pick := regexp.MustCompile(os.Getenv("CAIRN_TEST_CUTS"))
	r := newUpgradeRig(t)
	slow := "  maxRate: 65536\n"
	img, err := env.Build(r.spec("1.0.0", "", slow), "qemu-x86_64", filepath.Join(r.dir, "out-1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	r.disk, r.vars, r.config = qemu.CopyImage(t, img.Image), filepath.Join(r.dir, "vars.fd"), img.NodeConfig
	os.Truncate(r.disk, 2<<30)
	// Two good releases to go back and forth between (with --force), and
	// one whose gate fails.
	r.push(r.spec("2.0.0", "", slow), "qemu-x86_64", "2.0.0")
	r.push(r.spec("3.0.0", "", slow), "qemu-x86_64", "3.0.0")
	r.push(r.spec("9.0.0", "", slow+"  checks: [{tcp: \"127.0.0.1:9\"}]\n"), "qemu-x86_64", "failing")
	r.boot()
	good := "1.0.0"
	ran := 0
	for i, p := range powerCutPoints() {
		if !pick.MatchString(p.phase) {
			continue
		}
		ran++
		name := fmt.Sprintf("%02d %s +%s", i, p.phase, p.delay)
		target := map[string]string{"1.0.0": "2.0.0", "2.0.0": "3.0.0", "3.0.0": "2.0.0"}[good]
		ref := target
		if p.failing {
			ref = "failing"
		}
		t.Logf("power-cut point %s: upgrade %s → %s", name, good, ref)
		stop := r.upgradeCut(ref, "--force")
		if p.failing && p.phase != "failed gate" {
			if _, err := r.vm.Expect(5*time.Minute, `cairn: upgrade gate failed`); err != nil {
				stop()
				t.Fatalf("%s: %v", name, err)
			}
		}
		m, err := r.vm.Expect(5*time.Minute, p.after)
		if err != nil {
			stop()
			t.Fatalf("%s: %v", name, err)
		}
		time.Sleep(p.delay)
		r.cut()
		stop()
		t.Logf("%s: power cut %s after %q", name, p.delay, m.Line)
		r.boot()
		st := r.settled()
		committed := `cairn: upgrade committed slot=\S+ version=` + regexp.QuoteMeta(target)
		switch {
		case st.Version == target && !p.failing && st.Upgrade != nil && st.Upgrade.Phase == "committed":
			// The cut came after the commit, or the armed trial went on
			// and committed on this boot: then the next point looks past
			// its line (settled waited for it).
			good = target
			r.vm.Expect(time.Second, committed)
		case st.Version == good:
			// A good slot: the one committed before. A retry commits; the
			// next point looks past its line.
			if out, err := r.upgrade(target, "--force"); err != nil || !strings.Contains(out, "committed") {
				t.Fatalf("%s: retry after the cut: %v\n%s", name, err, out)
			}
			if _, err := r.vm.Expect(time.Minute, committed); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			good = target
		default:
			t.Fatalf("%s: after the cut the node runs %s from slot %s (upgrade %+v), want %s or a committed %s", name, st.Version, st.Slot, st.Upgrade, good, target)
		}
		r.expectRunning(good, r.status().Slot)
	}
	t.Logf("%d power-cut points, all passed", ran)
}

// settled waits until no upgrade is in flight (a trial's gate may still
// run after the boot) and returns the status.
func (r *upgradeRig) settled() api.Status {
	r.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st := r.status()
		if st.Upgrade == nil || (!st.Upgrade.Running && st.Upgrade.Phase != "trial") || time.Now().After(deadline) {
			return st
		}
		time.Sleep(2 * time.Second)
	}
}
