// End-to-end tests: build real images from images/minimal.yaml with Debian's
// kernels, boot them under QEMU with UEFI firmware and assert on the serial
// console contract (docs/node.md#console-lines).
package qemutests

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/qemu-tests/qemu"
	"github.com/cairn-edge/cairn/qemu-tests/testimage"
)

// boards are the boards booted under QEMU and the arch of each; the
// generic ones (which carry virtio drivers too) only with CAIRN_TEST_FULL.
var boards = func() []testBoard {
	b := []testBoard{{"qemu-x86_64", qemu.AMD64}, {"qemu-aarch64", qemu.ARM64}}
	if os.Getenv("CAIRN_TEST_FULL") != "" {
		b = append(b, testBoard{"generic-x86_64", qemu.AMD64}, testBoard{"generic-arm64", qemu.ARM64})
	}
	return b
}()

type testBoard struct {
	name string
	arch qemu.Arch
}

// images maps a board to the image TestMain built for it.
var images = map[string]string{}

// env holds what the run builds; binDir and pkiDir are shorthands.
// updateKey and updatePub are the pair (cairn keygen) upgrade tests sign
// with and their images trust.
var (
	env                  *testimage.Env
	binDir, pkiDir       string
	updateKey, updatePub string
)

func TestMain(m *testing.M) {
	flag.Parse()
	unboundedParallel() // machine schedules the tests (share)
	if !testing.Verbose() {
		// The builds' progress lines would bury a failing test's
		// messages in CI's output: warnings and errors only, unless -v.
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	os.Exit(func() int {
		root, err := testimage.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := os.Stat(filepath.Join(root, ".cache", "oci", "index.json")); err != nil {
			if os.Getenv("CI") != "" {
				fmt.Fprintln(os.Stderr, "qemu-tests: no Debian inputs in .cache/oci: `make test` makes them (make inputs)")
				return 1
			}
			fmt.Fprintln(os.Stderr, "qemu-tests: skipped: no Debian inputs in .cache/oci (run `make inputs`, or `make test`)")
			return 0
		}
		tmp, err := os.MkdirTemp("", "cairn-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		env = &testimage.Env{Root: root, BinDir: filepath.Join(tmp, "bin"), PKIDir: filepath.Join(tmp, "pki"), Cache: filepath.Join(tmp, "cache"), Sysctl: testSysctl}
		binDir, pkiDir = env.BinDir, env.PKIDir
		for _, arch := range []string{"amd64", "arm64"} {
			if err := env.Binaries(arch); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		cli, err := env.CLI()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if out, err := exec.Command(cli, "keygen", "-o", filepath.Join(tmp, "update-key")).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "cairn keygen: %v\n%s", err, out)
			return 1
		}
		updateKey, updatePub = filepath.Join(tmp, "update-key", "cairn.key"), filepath.Join(tmp, "update-key", "cairn.pub")
		env.Update = fmt.Sprintf("update:\n  keys: [%s]\n  plainHTTP: true\n", updatePub)
		for _, b := range boards {
			img, err := env.Minimal(b.name, filepath.Join(tmp, "out"))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			images[b.name] = img.Image
		}
		// The minimal images stay as built (no node identity, so their
		// node API is off); every other image is provisioned as testNode.
		env.Node = testNode
		if env.LinkRuntime(os.Getenv("CAIRN_TEST_BIN"), "amd64") {
			// The services image's only NTP server is a liar, 10 years
			// ahead (checkTimeAttack).
			l, err := startLiar(10 * 365 * 24 * time.Hour)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer l.Close()
			env.NTP = []string{fmt.Sprintf("10.0.2.2:%d", l.Port())}
			// Its host firewall is on, without Kubernetes (checkFirewallOn).
			env.Firewall = servicesFirewall
			servicesImage, err = env.ServicesImage("qemu-x86_64", "amd64", tmp)
			env.NTP, env.Firewall = nil, ""
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if env.HasKube("amd64") {
				if kubeImage, err = env.KubeImage("qemu-x86_64", "amd64", tmp); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			} else if os.Getenv("CI") != "" {
				fmt.Fprintln(os.Stderr, "qemu-tests: no cairn-kube in $CAIRN_TEST_BIN: `make test` builds it (make kube-amd64)")
				return 1
			}
		} else if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "qemu-tests: no container runtime in $CAIRN_TEST_BIN: `make test` builds it (make runtime)")
			return 1
		}
		return m.Run()
	}())
}

// testNode is the name the test images (but the minimal ones) are
// provisioned as: the node identity their node API serves.
const testNode = "edge-1"

// bootTimeout bounds one boot under TCG, firmware included.
const bootTimeout = 3 * time.Minute

// TestBootAndPersist boots each board's image twice. The first boot grows
// CAIRN-DATA to the disk, makes its file system and counts boot 1; a clean
// power-off through the power button; the disk is grown; the second boot
// finds the count (data persisted) and grows the file system online.
func TestBootAndPersist(t *testing.T) {
	t.Parallel()
	for _, b := range boards {
		t.Run(b.name, func(t *testing.T) {
			share(t, 1)
			disk := qemu.CopyImage(t, images[b.name])
			if err := os.Truncate(disk, 2<<30); err != nil {
				t.Fatal(err)
			}
			vars := filepath.Join(t.TempDir(), "vars.fd")

			vm := qemu.StartT(t, qemu.WithArch(b.arch), qemu.WithDisk(disk), qemu.WithVarsFile(vars))
			m, err := vm.Expect(bootTimeout, `cairn: init ok slot=a version=0\.1\.0`)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: init ok %v after QEMU start (%s)", b.name, m.At, vm.Accel())
			first := expectData(t, vm, 1)
			// Built images carry no node identity: the node API is off,
			// and the console says how to give the node one.
			if _, err := vm.Expect(time.Minute, `cairn: warning: node API off: this node has no identity of its own: /boot/cairn-node\.crt is missing \(issue one on the workstation: cairn provision --name NAME DISK\)`); err != nil {
				t.Error(err)
			}
			if _, err := vm.Expect(time.Minute, `cairn: agent ready api=off`); err != nil {
				t.Fatal(err)
			}
			// 2 GiB less the GPT, ESP and two slots leaves 1406 MiB for CAIRN-DATA.
			if first < 1250 {
				t.Errorf("first boot: /var is %d MiB, want it grown to fill the 2 GiB disk (~1400 MiB)", first)
			}
			if err := vm.PowerDown(time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, err := vm.Expect(time.Second, `cairn: poweroff`); err != nil {
				t.Error(err)
			}

			if err := os.Truncate(disk, 3<<30); err != nil {
				t.Fatal(err)
			}
			vm = qemu.StartT(t, qemu.WithArch(b.arch), qemu.WithDisk(disk), qemu.WithVarsFile(vars))
			if _, err := vm.Expect(bootTimeout, `cairn: init ok slot=a version=0\.1\.0`); err != nil {
				t.Fatal(err)
			}
			if second := expectData(t, vm, 2); second < first+900 {
				t.Errorf("second boot: /var is %d MiB after the disk grew by 1 GiB from %d MiB", second, first)
			}
			// The clean power-off unmounted the ESP: no dirty FAT.
			if _, err := vm.Expect(time.Minute, `cairn: agent ready`); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(vm.Console(), "not properly unmounted") {
				t.Error("second boot: the ESP was left dirty by the clean power-off (FAT-fs: Volume was not properly unmounted)")
			}
			if err := vm.PowerDown(time.Minute); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// expectData waits for the data line of boot n and returns /var's size in MiB.
func expectData(t *testing.T, vm *qemu.VM, n int) int {
	t.Helper()
	m, err := vm.Expect(time.Minute, `cairn: data ok boots=(\d+) size=(\d+)MiB`)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Groups[1]; got != strconv.Itoa(n) {
		t.Fatalf("boot %d: console says boots=%s: the data partition did not keep the count", n, got)
	}
	size, _ := strconv.Atoi(m.Groups[2])
	return size
}

// TestCorruptSlot boots an image whose slot A was overwritten: cairn-init
// must say why it cannot boot on the console and reboot, not hang silently.
func TestCorruptSlot(t *testing.T) {
	share(t, 1)
	disk := qemu.CopyImage(t, images["qemu-x86_64"])
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Slot A starts after 1 MiB of GPT and the 128 MiB ESP.
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xAA}, 1<<20), 129<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	vm := qemu.StartT(t, qemu.WithDisk(disk), qemu.WithArch(qemu.AMD64))
	if _, err := vm.Expect(bootTimeout, `cairn: fatal: slot a: .*damaged`); err != nil {
		t.Fatal(err)
	}
	// It reboots by itself (QEMU runs with -no-reboot, so it exits).
	if err := vm.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestImageReproducible builds the real minimal image again, from a cold
// cache, and compares it byte for byte with TestMain's build.
func TestImageReproducible(t *testing.T) {
	share(t, 1)
	again := *env
	again.Cache, again.Node = t.TempDir(), ""
	res, err := again.Minimal("qemu-x86_64", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".img", ".bmap", ".inputs.json"} {
		a, err := os.ReadFile(images["qemu-x86_64"][:len(images["qemu-x86_64"])-len(".img")] + ext)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(res.Image[:len(res.Image)-len(".img")] + ext)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds from the same inputs", ext)
		}
	}
}
