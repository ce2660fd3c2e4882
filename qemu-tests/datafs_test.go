package qemutests

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/agent/boot/datafs/datafstest"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/qemu-tests/qemu"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// formatCutDisk is the disk size TestDataFormatCut boots: it leaves 2174
// MiB to CAIRN-DATA, 17 block groups, a size for which go-diskfs's own
// inode count (16,376 a group) is not a whole number of inode table blocks.
const formatCutDisk = 2816 << 20

// TestDataFormatCut cuts the power while cairn-init makes CAIRN-DATA's
// file system on the first boot, at delays after the console says it
// began (its 2174 MiB take about 5 s under TCG), then boots again. That boot must end with /var on the ext4 (made again when
// the cut left it unfinished) and count itself; after a clean power-off
// CAIRN-DATA must pass e2fsck with the count on it, and neither boot may
// have printed an EXT4-fs error. The first delay's second boot also waits
// for ext4lazyinit to check every group, which is where go-diskfs's inode
// tables used to draw an error.
func TestDataFormatCut(t *testing.T) {
	share(t, 1)
	datafstest.Require(t)
	// make test cuts mid-format; make test-full at every delay.
	delays := []time.Duration{2 * time.Second}
	if os.Getenv("CAIRN_TEST_FULL") != "" {
		delays = []time.Duration{300 * time.Millisecond, 0, 100 * time.Millisecond, 600 * time.Millisecond, time.Second, 1500 * time.Millisecond,
			2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second, 6 * time.Second, 7 * time.Second, 9 * time.Second}
	}
	for i, delay := range delays {
		lazyInit := i == 0
		t.Run(delay.String(), func(t *testing.T) {
			disk := qemu.CopyImage(t, images["qemu-x86_64"])
			if err := os.Truncate(disk, formatCutDisk); err != nil {
				t.Fatal(err)
			}
			vars := filepath.Join(t.TempDir(), "vars.fd")
			boot := func() *qemu.VM {
				return qemu.StartT(t, qemu.WithArch(qemu.AMD64), qemu.WithDisk(disk), qemu.WithVarsFile(vars))
			}

			vm := boot()
			m, err := vm.Expect(bootTimeout, `cairn: creating ext4 on CAIRN-DATA`)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("the format began %v after QEMU started", m.At.Round(time.Millisecond))
			time.Sleep(delay)
			if err := vm.Kill(); err != nil {
				t.Fatal(err)
			}
			cut := vm.Console()
			// A cut late enough lets the first boot count itself.
			boots := 1 + strings.Count(cut, "cairn: data ok")

			vm = boot()
			m, err = vm.Expect(bootTimeout, `cairn: (data ok boots=(\d+)|warning: data.*)`)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Groups[2]; got != strconv.Itoa(boots) {
				t.Fatalf("the boot after the cut: %q, want data ok boots=%d", m.Line, boots)
			}
			t.Logf("cut %v after the format began; the next boot %s, data ok after %v", delay, nextBoot(vm.Console()), vm.Since().Round(time.Millisecond))
			if lazyInit { // it starts up to 5 s after the mount
				time.Sleep(8 * time.Second)
			}
			if err := vm.PowerDown(time.Minute); err != nil {
				t.Fatal(err)
			}

			for _, bad := range []string{"EXT4-fs error", "data partition unusable"} {
				if i := strings.Index(cut+vm.Console(), bad); i >= 0 {
					t.Errorf("console: %s", lineAt(cut+vm.Console(), i))
				}
			}
			start := partitionStart(t, disk, contract.LabelData)
			data := fmt.Sprintf("%s?offset=%d", disk, start)
			if err := datafstest.Clean(data); err != nil {
				t.Error(err)
			}
			b, err := datafstest.Cat(data, strings.TrimPrefix(contract.BootCounter, contract.DataMount))
			if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || n != boots {
				t.Errorf("boot counter on CAIRN-DATA: %q, %v; want %d", b, err, boots)
			}
			if !lazyInit {
				return
			}
			f, err := os.Open(disk)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if left, groups, err := datafstest.UnzeroedGroups(io.NewSectionReader(f, start, 1<<40)); err != nil || left != 0 {
				t.Errorf("ext4lazyinit left %d of %d groups unchecked (%v): it stopped at an error, or had not got there", left, groups, err)
			}
		})
	}
}

// nextBoot says what the boot after a cut did with CAIRN-DATA, from its
// console.
func nextBoot(console string) string {
	switch {
	case strings.Contains(console, "whose making was cut off"):
		return "formatted it again (unfinished)"
	case strings.Contains(console, "creating ext4"):
		return "formatted it (blank)"
	}
	return "mounted it as it was"
}

// partitionStart returns the byte offset of the partition labeled label.
func partitionStart(t *testing.T, disk, label string) int64 {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	table, err := gpt.Read(f, 512, 512)
	if err != nil {
		t.Fatalf("%s: %v", disk, err)
	}
	for _, p := range table.Partitions {
		if p.Name == label {
			return p.GetStart()
		}
	}
	t.Fatalf("%s has no partition %s", disk, label)
	return 0
}

// lineAt returns the line of s holding byte i.
func lineAt(s string, i int) string {
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		return s[start:]
	}
	return s[start : i+end]
}
