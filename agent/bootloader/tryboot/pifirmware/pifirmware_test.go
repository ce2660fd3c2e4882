package pifirmware

import (
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/bootloader"
	"github.com/cairn-edge/cairn/agent/contract"
)

// docExample is autoboot.txt as the Raspberry Pi documentation shows it.
const docExample = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"

// TestBoot checks the firmware on hand-written cards, so that the boot
// loader's judge is judged too.
func TestBoot(t *testing.T) {
	bootable := func(slot string, extra map[string]string) *bootloader.MemFS {
		files := map[string]string{
			"start4.elf":  "start4",
			"config.txt":  "kernel=vmlinuz\ninitramfs initrd followkernel\n",
			"vmlinuz":     "kernel " + slot,
			"initrd":      "initrd " + slot,
			"cmdline.txt": "console=serial0 cairn.slot=" + slot + "\nsecond line ignored\n",
		}
		for k, v := range extra {
			if v == "" {
				delete(files, k)
			} else {
				files[k] = v
			}
		}
		m := &bootloader.MemFS{}
		for k, v := range files {
			if err := m.WriteFile(k, strings.NewReader(v)); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	for _, tt := range []struct {
		name     string
		autoboot string // "-": none
		a, b     map[string]string
		model    string
		flag     bool
		want     contract.Slot // "": a brick
		fellBack bool
	}{
		{name: "no flag: [all]", autoboot: docExample, model: "pi4", want: "a"},
		{name: "flag: [tryboot]", autoboot: docExample, model: "pi4", flag: true, want: "b"},
		{name: "flag on a Pi 5", autoboot: docExample, model: "pi5", flag: true, want: "b"},
		{name: "a model filter is not autoboot.txt's", autoboot: "[all]\ntryboot_a_b=1\nboot_partition=2\n[pi4]\nboot_partition=3\n", model: "pi4", want: "a"},
		{name: "[none]", autoboot: "[all]\nboot_partition=2\n[none]\nboot_partition=3\n", model: "pi4", want: "a"},
		{name: "[all] after [tryboot]", autoboot: "[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\ntryboot_a_b=1\n", model: "pi4", flag: true, want: "a"},
		{name: "the last setting wins", autoboot: "boot_partition=3\nboot_partition=2\n", model: "pi4", want: "a"},
		{name: "past 512 bytes is not read", autoboot: "boot_partition=2\n" + strings.Repeat("#", 600) + "\nboot_partition=3\n", model: "pi4", want: "a"},
		{name: "no autoboot.txt: partition 1, a brick", autoboot: "-", model: "pi4"},
		{name: "boot_partition=1: a brick", autoboot: "boot_partition=1\n", model: "pi4"},
		{name: "garbled: a brick", autoboot: "\x00\x00\x00", model: "pi4"},
		{name: "without tryboot_a_b the flag reads tryboot.txt", autoboot: "[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n", model: "pi4", flag: true, want: "a", fellBack: true},
		{name: "a trial without config.txt falls back", autoboot: docExample, b: map[string]string{"config.txt": ""}, model: "pi4", flag: true, want: "a", fellBack: true},
		{name: "the default without config.txt on a Pi 4: no kernel8.img", autoboot: docExample, a: map[string]string{"config.txt": ""}, model: "pi4"},
		{name: "the default without config.txt, kernel8.img there", autoboot: docExample, a: map[string]string{"config.txt": "", "kernel8.img": "k"}, model: "pi4", want: "a"},
		{name: "a Pi 5 needs config.txt", autoboot: docExample, a: map[string]string{"config.txt": "", "kernel_2712.img": "k"}, model: "pi5"},
		{name: "no start4.elf on a Pi 4", autoboot: docExample, a: map[string]string{"start4.elf": ""}, model: "pi4"},
		{name: "a missing initramfs", autoboot: docExample, a: map[string]string{"initrd": ""}, model: "pi4"},
		{name: "a config.txt filter for another model", autoboot: docExample, a: map[string]string{"config.txt": "[pi5]\nkernel=nothing\n[all]\nkernel=vmlinuz\n[pi5]\ninitramfs nothing followkernel\n"}, model: "pi4", want: "a"},
		{name: "... which the Pi 5 takes", autoboot: docExample, a: map[string]string{"config.txt": "kernel=vmlinuz\n[pi5]\ninitramfs nothing followkernel\n"}, model: "pi5"},
		{name: "no slot on the command line", autoboot: docExample, a: map[string]string{"cmdline.txt": "quiet\ncairn.slot=a\n"}, model: "pi4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			card := Card{1: &bootloader.MemFS{}, 2: bootable("a", tt.a), 3: bootable("b", tt.b)}
			if tt.autoboot != "-" {
				if err := card[1].WriteFile("autoboot.txt", strings.NewReader(tt.autoboot)); err != nil {
					t.Fatal(err)
				}
			}
			b, err := Boot(card, tt.model, tt.flag)
			if tt.want == "" {
				if err == nil {
					t.Errorf("booted %+v; want a brick", b)
				}
				return
			}
			if err != nil || b.Slot != tt.want || b.FellBack != tt.fellBack || string(b.Kernel) != "kernel "+string(tt.want) && string(b.Kernel) != "k" {
				t.Errorf("Boot = %+v, %v; want slot %s, fell back %v", b, err, tt.want, tt.fellBack)
			}
		})
	}
}

// TestBootDeviceTree checks the device tree the firmware loads: the
// model's own name unless config.txt's device_tree names another, none
// if the partition lacks it.
func TestBootDeviceTree(t *testing.T) {
	for _, tt := range []struct {
		name, config, file string
		want               string // the DTB's content; "" none loaded
		wantName           string
	}{
		{"the Pi 4's own", "kernel=k\n", "bcm2711-rpi-4-b.dtb", "pi4 tree", "bcm2711-rpi-4-b.dtb"},
		{"device_tree names another", "kernel=k\ndevice_tree=bcm2837-rpi-3-b.dtb\n", "bcm2837-rpi-3-b.dtb", "pi3 tree", "bcm2837-rpi-3-b.dtb"},
		{"under another model's filter", "kernel=k\n[pi5]\ndevice_tree=other.dtb\n", "bcm2711-rpi-4-b.dtb", "pi4 tree", "bcm2711-rpi-4-b.dtb"},
		{"missing: none", "kernel=k\ndevice_tree=gone.dtb\n", "bcm2711-rpi-4-b.dtb", "", "gone.dtb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			boot := &bootloader.MemFS{}
			for name, v := range map[string]string{"start4.elf": "s", "config.txt": tt.config, "k": "kernel", "cmdline.txt": "cairn.slot=a\n", tt.file: tt.want} {
				if err := boot.WriteFile(name, strings.NewReader(v)); err != nil {
					t.Fatal(err)
				}
			}
			auto := &bootloader.MemFS{}
			if err := auto.WriteFile("autoboot.txt", strings.NewReader(docExample)); err != nil {
				t.Fatal(err)
			}
			b, err := Boot(Card{1: auto, 2: boot}, "pi4", false)
			if err != nil || b.DTBName != tt.wantName || string(b.DTB) != tt.want || (tt.want == "") != (b.DTB == nil) {
				t.Errorf("Boot = DTB %q %q, %v; want %q %q", b.DTBName, b.DTB, err, tt.wantName, tt.want)
			}
		})
	}
}
