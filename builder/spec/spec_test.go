package spec

import (
	"maps"
	"strings"
	"testing"
)

const goodSpec = `name: minimal
version: 0.1.0
overlay: [../overlay]
disk:
  slotSize: 256MiB
`

const goodBoard = `name: qemu-x86_64
arch: amd64
firmware: uefi
kernel:
  image: oci-layout:../.cache/oci:linux-amd64
  cmdline: [console=ttyS0]
  bootModules: [virtio_blk, squashfs]
bootloader:
  image: oci-layout:../.cache/oci:systemd-boot-amd64
  path: usr/lib/systemd/boot/efi/systemd-bootx64.efi
`

const extlinuxBoard = `name: qemu-x86_64
arch: arm64
firmware: extlinux
kernel:
  image: oci-layout:k
  bootModules: [sdhci_tegra, vfat, nls_cp437, nls_ascii, squashfs]
extlinux:
  fdt: nvidia/tegra210-p3450-0000.dtb
`

func TestParseSpec(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"good", goodSpec, ""},
		{"unknown key", "name: a\nversion: 1.0.0\ncolour: red\n", "images/x.yaml:3: unknown key \"colour\""},
		{"unknown nested key", "name: a\nversion: 1.0.0\ndisk:\n  slotsize: 1GiB\n", "images/x.yaml:4: unknown key \"slotsize\" in disk (known keys: dataSize, espSize, slotSize)"},
		{"duplicate key", "name: a\nname: b\nversion: 1.0.0\n", "images/x.yaml:2: key \"name\" is given twice"},
		{"wrong type", "name: a\nversion: 1.0.0\noverlay: 5\n", "images/x.yaml:3: cannot unmarshal"},
		{"bad size", "name: a\nversion: 1.0.0\ndisk:\n  slotSize: 12XB\n", "images/x.yaml:4: invalid size \"12XB\""},
		{"missing name", "version: 1.0.0\n", "images/x.yaml:1: missing required key \"name\""},
		{"bad name", "name: My Image\nversion: 1.0.0\n", "images/x.yaml:1: name \"My Image\" is not valid"},
		{"missing version", "name: a\n", "missing required key \"version\""},
		{"bad version", "name: a\nversion: v1\n", "images/x.yaml:2: version \"v1\" is not valid"},
		{"slot too small", "name: a\nversion: 1.0.0\ndisk:\n  slotSize: 1MiB\n", "images/x.yaml:4: disk.slotSize 1MiB is too small"},
		{"unaligned", "name: a\nversion: 1.0.0\ndisk:\n  dataSize: 20000000\n", "is not a whole number of MiB"},
		{"bad module", "name: a\nversion: 1.0.0\nkernel:\n  modules: [ok, ../evil.ko]\n", "images/x.yaml:4: module \"../evil.ko\" is not a module name"},
		{"syntax", "name: [a\n", "images/x.yaml:"},
		{"service unknown key", "name: a\nversion: 1.0.0\nservices:\n  - name: web\n    image: x\n    colour: red\n", `images/x.yaml:6: unknown key "colour" in services[0]`},
		{"service bad dependency", "name: a\nversion: 1.0.0\nservices:\n  - name: web\n    image: x\n    dependsOn: [db]\n", `images/x.yaml:3: services: service "web": depends on unknown service "db"`},
		{"bad address", "name: a\nversion: 1.0.0\nnetwork:\n  interfaces:\n    - name: eth0\n      addresses: [10.0.0.300/24]\n", "images/x.yaml:3: network:"},
		{"agent keys", "name: a\nversion: 1.0.0\nntp: [time.example]\napi:\n  port: 8443\nnetwork:\n  hostname: edge-1\n", ""},
		{"plain metrics", "name: a\nversion: 1.0.0\napi:\n  metrics: {interface: eth0, port: 9100}\n", ""},
		{"rpi", "name: a\nversion: 1.0.0\nrpi:\n  config: [hdmi_safe=1]\n  overlays: [disable-bt]\n", ""},
		{"rpi owned config", "name: a\nversion: 1.0.0\nrpi:\n  config:\n    - hdmi_safe=1\n    - initramfs other followkernel\n", `images/x.yaml:6: rpi.config[1]: "initramfs other followkernel" chooses boot files`},
		{"rpi config line break", "name: a\nversion: 1.0.0\nrpi:\n  config: [\"a=1\\nkernel=x\"]\n", "images/x.yaml:4: rpi.config[0] has a line break"},
		{"rpi bad overlay", "name: a\nversion: 1.0.0\nrpi:\n  overlays: ['a b']\n", `images/x.yaml:4: rpi.overlays[0] "a b" is not an overlay`},
		{"plain metrics unknown key", "name: a\nversion: 1.0.0\napi:\n  metrics: {iface: eth0}\n", `unknown key "iface" in api.metrics`},
		{"plain metrics without interface", "name: a\nversion: 1.0.0\napi:\n  metrics: {port: 9100}\n", "api.metrics.interface"},
		{"empty", "", "the file is empty"},
		{"not a mapping", "- a\n", "must be a mapping"},
		{"kubernetes", "name: a\nversion: 1.0.0\nkubernetes:\n  clusterCIDR: 10.244.0.0/16\n  images: [{name: r.example/web:1}]\n  manifests: [m]\n", ""},
		{"kubernetes bare", "name: a\nversion: 1.0.0\nkubernetes:\n", ""},
		{"kubernetes unknown key", "name: a\nversion: 1.0.0\nkubernetes:\n  podCIDR: 10.0.0.0/16\n", `images/x.yaml:4: unknown key "podCIDR" in kubernetes`},
		{"kubernetes image unknown key", "name: a\nversion: 1.0.0\nkubernetes:\n  images:\n    - name: a.example/b:1\n      ref: x\n", `images/x.yaml:6: unknown key "ref" in kubernetes.images[0]`},
		{"kubernetes image without name", "name: a\nversion: 1.0.0\nkubernetes:\n  images:\n    - image: x\n", "images/x.yaml:5: kubernetes: images[0] has no name"},
		{"kubernetes bad cidr", "name: a\nversion: 1.0.0\nkubernetes:\n  mode: server\n  clusterCIDR: 10.42.0.0/33\n", "images/x.yaml:5: kubernetes: clusterCIDR"},
		{"kubernetes agent without server", "name: a\nversion: 1.0.0\nkubernetes:\n  mode: agent\n", "images/x.yaml:4: kubernetes: mode agent needs server"},
		{"sysctl", "name: a\nversion: 1.0.0\nsysctl:\n  vm.min_free_kbytes: \"8192\"\n  net.ipv4.tcp_rmem: 4096 131072 6291456\n  vm.swappiness: 10\n", ""},
		{"sysctl bad key", "name: a\nversion: 1.0.0\nsysctl:\n  vm.swappiness: \"1\"\n  vm/overcommit_memory: \"1\"\n", `images/x.yaml:5: sysctl key "vm/overcommit_memory" is not a kernel setting name: write it dotted`},
		{"sysctl outside /proc/sys", "name: a\nversion: 1.0.0\nsysctl:\n  ../../etc/x: \"1\"\n", `images/x.yaml:4: sysctl key "../../etc/x"`},
		{"sysctl no value", "name: a\nversion: 1.0.0\nsysctl:\n  vm.swappiness:\n", `images/x.yaml:4: sysctl vm.swappiness has no value: give one as a string, e.g. vm.swappiness: "1"`},
		{"sysctl list value", "name: a\nversion: 1.0.0\nsysctl:\n  vm.swappiness: [1, 2]\n", "images/x.yaml:4: cannot unmarshal"},
		{"sysctl twice", "name: a\nversion: 1.0.0\nsysctl:\n  vm.swappiness: \"1\"\n  vm.swappiness: \"2\"\n", "images/x.yaml:5: "},
		{"sysctl not a mapping", "name: a\nversion: 1.0.0\nsysctl: [vm.swappiness=1]\n", "images/x.yaml:3: cannot unmarshal"},
		{"firewall", "name: a\nversion: 1.0.0\nkubernetes: {}\nfirewall:\n  allow:\n    - {port: 8080, proto: tcp, from: 10.0.0.0/8}\n    - {port: 5353, proto: udp}\n", ""},
		{"firewall off", "name: a\nversion: 1.0.0\nkubernetes: {}\nfirewall:\n  enabled: false\n", ""},
		{"firewall bad from", "name: a\nversion: 1.0.0\nkubernetes: {}\nfirewall:\n  allow:\n    - {port: 8080}\n    - {port: 8081, from: 10.0.0.0/33}\n", `images/x.yaml:7: firewall: allow[1] (port 8081/tcp): from "10.0.0.0/33" is not a network in CIDR form or an address (write e.g. from: 10.0.0.0/8 or from: 192.168.1.5)`},
		{"firewall no port", "name: a\nversion: 1.0.0\nkubernetes: {}\nfirewall:\n  allow:\n    - {proto: udp}\n", "images/x.yaml:6: firewall: allow[0]: port is required"},
		{"firewall bad proto", "name: a\nversion: 1.0.0\nkubernetes: {}\nfirewall:\n  allow:\n    - port: 80\n      proto: sctp\n", `images/x.yaml:6: firewall: allow[0] (port 80/sctp): proto "sctp" is not tcp or udp`},
		{"firewall unknown key", "name: a\nversion: 1.0.0\nkubernetes: {}\nfirewall:\n  allow:\n    - {port: 80, source: 10.0.0.0/8}\n", `images/x.yaml:6: unknown key "source" in firewall.allow[0]`},
		{"firewall port string", "name: a\nversion: 1.0.0\nkubernetes: {}\nfirewall:\n  allow:\n    - {port: http}\n", "images/x.yaml:6: cannot unmarshal"},
		{"firewall without kubernetes", "name: a\nversion: 1.0.0\nfirewall:\n  enabled: true\n  allow: [{port: 8080}]\n", ""},
		{"firewall allow while off", "name: a\nversion: 1.0.0\nfirewall:\n  enabled: false\n  allow: [{port: 80}]\n", "images/x.yaml:5: firewall: allow has 1 entries but enabled is false"},
		{"kubernetes empty manifest", "name: a\nversion: 1.0.0\nkubernetes:\n  manifests: [a.yaml, '']\n", "images/x.yaml:4: kubernetes.manifests entry is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSpec("images/x.yaml", []byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseSpec: %v", err)
				}
				if tt.name == "kubernetes bare" {
					if s.Agent.Kubernetes == nil {
						t.Error("a bare kubernetes: key did not turn Kubernetes on")
					}
					return
				}
				if tt.name == "kubernetes" {
					if k := s.Agent.Kubernetes; k == nil || k.ClusterCIDR != "10.244.0.0/16" || k.Images[0].Name != "r.example/web:1" {
						t.Errorf("kubernetes = %+v", s.Agent.Kubernetes)
					}
					return
				}
				if tt.name == "sysctl" {
					want := map[string]string{"vm.min_free_kbytes": "8192", "net.ipv4.tcp_rmem": "4096 131072 6291456", "vm.swappiness": "10"}
					if !maps.Equal(s.Sysctl, want) {
						t.Errorf("sysctl = %v, want %v (numbers as strings)", s.Sysctl, want)
					}
					return
				}
				if tt.name == "plain metrics" {
					if m := s.Agent.API.Metrics; m == nil || m.Interface != "eth0" || m.ListenPort() != 9100 {
						t.Errorf("api.metrics = %+v", m)
					}
					return
				}
				if strings.HasPrefix(tt.name, "firewall") {
					if on := s.Agent.FirewallOn(); on != (tt.name == "firewall" || tt.name == "firewall without kubernetes") {
						t.Errorf("FirewallOn() = %v", on)
					}
					return
				}
				if tt.name == "rpi" {
					if strings.Join(s.RPi.Config, " ") != "hdmi_safe=1" || strings.Join(s.RPi.Overlays, " ") != "disable-bt" {
						t.Errorf("rpi = %+v", s.RPi)
					}
					return
				}
				if tt.name == "agent keys" {
					if s.Agent.API.Port != 8443 || s.Agent.Network.Hostname != "edge-1" || s.Agent.Clock.NTP[0] != "time.example" {
						t.Errorf("agent config = %+v", s.Agent)
					}
					return
				}
				if got, want := s.Disk.SlotSize, 256*MiB; got != want {
					t.Errorf("SlotSize = %v, want %v", got, want)
				}
				if got, want := s.Disk.ESPSize, DefaultESPSize; got != want {
					t.Errorf("ESPSize default = %v, want %v", got, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseSpec error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseBoard(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"good", goodBoard, ""},
		{"name differs from file", strings.Replace(goodBoard, "name: qemu-x86_64", "name: other", 1), "differs from its file name"},
		{"bad arch", strings.Replace(goodBoard, "arch: amd64", "arch: x86_64", 1), "boards/qemu-x86_64.yaml:2: arch \"x86_64\" is not supported"},
		{"bad firmware", strings.Replace(goodBoard, "firmware: uefi", "firmware: bios", 1), ":3: firmware \"bios\""},
		{"no kernel", "name: qemu-x86_64\narch: amd64\nfirmware: uefi\n", "missing required key \"kernel.image\""},
		{"absolute efi path", strings.Replace(goodBoard, "path: usr/", "path: /usr/", 1), "bootloader.path"},
		{"bad boot module", strings.Replace(goodBoard, "[virtio_blk, squashfs]", "[virtio_blk, 'a b']", 1), ":7: module \"a b\""},
		{"kubernetes", goodBoard + kubeBoard, ""},
		{"kubernetes unknown key", goodBoard + "kubernetes:\n  addons: []\n", `boards/qemu-x86_64.yaml:12: unknown key "addons" in kubernetes (known keys: images, modules, tools)`},
		{"kubernetes image without name", goodBoard + "kubernetes:\n  images: [{image: oci-layout:x}]\n", "boards/qemu-x86_64.yaml:12: kubernetes.images[0] has no name"},
		{"kubernetes empty tool", goodBoard + "kubernetes:\n  tools: ['']\n", "boards/qemu-x86_64.yaml:12: kubernetes.tools entry is empty"},
		{"kubernetes bad module", goodBoard + "kubernetes:\n  modules: [bridge, nf_tables.ko]\n", `boards/qemu-x86_64.yaml:12: module "nf_tables.ko" is not a module name`},
		{"firewall", goodBoard + firewallBoard, ""},
		{"firewall no tools", goodBoard + "firewall:\n  modules: [nf_tables]\n", "boards/qemu-x86_64.yaml:11: firewall.tools is empty: give the image with nft, e.g. oci-layout:../.cache/oci:debian-nftables-amd64"},
		{"firewall empty tool", goodBoard + "firewall:\n  tools: ['']\n", "boards/qemu-x86_64.yaml:12: firewall.tools entry is empty"},
		{"firewall bad module", goodBoard + "firewall:\n  tools: [oci-layout:x]\n  modules: [nf tables]\n", `boards/qemu-x86_64.yaml:13: module "nf tables" is not a module name`},
		{"firewall unknown key", goodBoard + "firewall:\n  allow: []\n", `boards/qemu-x86_64.yaml:12: unknown key "allow" in firewall (known keys: modules, tools)`},
		{"rpi", "name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n", ""},
		{"rpi on amd64", strings.Replace("name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n", "arch: arm64", "arch: amd64", 1), "boards/qemu-x86_64.yaml:2: firmware rpi boots 64-bit kernels only"},
		{"rpi without dtbs", strings.Replace("name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n", "  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n", "", 1), `missing required key "rpi.dtbs"`},
		{"rpi absolute dtb", strings.Replace("name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n", "[broadcom/", "[/broadcom/", 1), "boards/qemu-x86_64.yaml:11: rpi.dtbs[0] \"/broadcom/bcm2711-rpi-4-b.dtb\" must be the relative path"},
		{"rpi duplicate file", strings.Replace("name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n", "fixup4.dat]", "fixup4.dat, x/START4.ELF]", 1), "boards/qemu-x86_64.yaml:10: rpi.firmware.files[2] \"start4.elf\" and \"x/START4.ELF\" are one file"},
		{"rpi owned config", strings.Replace("name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n", "[enable_uart=1]", "[enable_uart=1, os_prefix=x/]", 1), `boards/qemu-x86_64.yaml:12: rpi.config[1]: "os_prefix=x/" chooses boot files`},
		{"rpi bad overlay", strings.Replace("name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n", "[disable-bt,", "['../evil',", 1), `boards/qemu-x86_64.yaml:13: rpi.overlays[0] "../evil" is not an overlay`},
		{"rpi with a bootloader", "name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n" + "bootloader:\n  image: x\n", "boards/qemu-x86_64.yaml:14: bootloader is for UEFI boards"},
		{"rpi section on uefi", goodBoard + "rpi:\n  dtbs: [a.dtb]\n", "boards/qemu-x86_64.yaml:11: an rpi section is for boards with firmware: rpi"},
		{"rpi unknown key", "name: qemu-x86_64\narch: arm64\nfirmware: rpi\nkernel:\n  image: oci-layout:k\nrpi:\n  firmware:\n    image: oci-layout:fw\n    dir: usr/lib/raspi-firmware\n    files: [start4.elf, fixup4.dat]\n  dtbs: [broadcom/bcm2711-rpi-4-b.dtb]\n  config: [enable_uart=1]\n  overlays: [disable-bt, 'gpio-fan,gpiopin=14']\n" + "  dtoverlays: []\n", `unknown key "dtoverlays" in rpi`},
		{"extlinux", extlinuxBoard, ""},
		{"extlinux without fdt", strings.Replace(extlinuxBoard, "extlinux:\n  fdt: nvidia/tegra210-p3450-0000.dtb\n", "", 1), ""},
		{"extlinux with a bootloader", extlinuxBoard + "bootloader:\n  image: x\n", "boards/qemu-x86_64.yaml:9: bootloader is for UEFI boards; an extlinux board's boot loader is U-Boot"},
		{"extlinux with an rpi section", extlinuxBoard + "rpi:\n  dtbs: [a.dtb]\n", "boards/qemu-x86_64.yaml:9: an rpi section is for boards with firmware: rpi, and this one's is extlinux"},
		{"extlinux without vfat in the initramfs", strings.Replace(extlinuxBoard, "vfat, ", "", 1), "boards/qemu-x86_64.yaml:6: kernel.bootModules lacks vfat"},
		{"extlinux absolute fdt", strings.Replace(extlinuxBoard, "fdt: nvidia", "fdt: /nvidia", 1), `boards/qemu-x86_64.yaml:8: extlinux.fdt "/nvidia/tegra210-p3450-0000.dtb" must be the relative path of a .dtb`},
		{"extlinux fdt not a dtb", strings.Replace(extlinuxBoard, "0000.dtb", "0000.dts", 1), "must be the relative path of a .dtb"},
		{"extlinux unknown key", extlinuxBoard + "  fdtdir: nvidia\n", `unknown key "fdtdir" in extlinux (known keys: fdt)`},
		{"extlinux section on uefi", goodBoard + "extlinux:\n  fdt: a.dtb\n", "boards/qemu-x86_64.yaml:11: an extlinux section is for boards with firmware: extlinux, and this one's is uefi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBoard("boards/qemu-x86_64.yaml", []byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseBoard: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseBoard error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	s, err := ParseSpec("images/minimal.yaml", []byte(goodSpec+"kernel:\n  cmdline: [quiet]\n  modules: [e1000e]\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBoard("boards/qemu-x86_64.yaml", []byte(goodBoard))
	if err != nil {
		t.Fatal(err)
	}
	img := Merge(s, b)
	if got, want := strings.Join(img.Cmdline, " "), "transparent_hugepage=never panic=10 console=ttyS0 quiet"; got != want {
		t.Errorf("Cmdline = %q, want %q", got, want)
	}
	if got, want := strings.Join(img.Modules, " "), "e1000e"; got != want {
		t.Errorf("Modules = %q, want %q", got, want)
	}
	if got, want := img.Kernel.Dir, "boards"; got != want {
		t.Errorf("Kernel.Dir = %q, want %q", got, want)
	}
	if got, want := img.Kernel.From, "boards/qemu-x86_64.yaml:5"; got != want {
		t.Errorf("Kernel.From = %q, want %q", got, want)
	}
	if got, want := img.OutputName(), "minimal-qemu-x86_64"; got != want {
		t.Errorf("OutputName = %q, want %q", got, want)
	}
	if got, want := s.OverlayDirs()[0], "overlay"; got != want {
		t.Errorf("OverlayDirs = %q, want %q", got, want)
	}
}

const kubeBoard = `kubernetes:
  images:
    - {name: cairn.local/pause:3.10, image: oci-layout:../.cache/oci:cairn-pause-amd64}
    - name: cairn.local/coredns:1.15.0
      image: oci-layout:../.cache/oci:cairn-coredns-amd64
  tools: [oci-layout:../.cache/oci:debian-nftables-amd64]
  modules: [bridge, nf_tables]
`

const firewallBoard = `firewall:
  tools: [oci-layout:../.cache/oci:debian-nftables-amd64]
  modules: [nf_tables, nft_ct]
`

func TestMergeExtlinux(t *testing.T) {
	s, err := ParseSpec("images/minimal.yaml", []byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBoard("boards/qemu-x86_64.yaml", []byte(extlinuxBoard))
	if err != nil {
		t.Fatal(err)
	}
	img := Merge(s, b)
	if e := img.Extlinux; e == nil || e.FDT != "nvidia/tegra210-p3450-0000.dtb" || e.From != "boards/qemu-x86_64.yaml:8" || img.RPi != nil || img.Bootloader.Ref != "" {
		t.Errorf("Merge: extlinux %+v, rpi %v, bootloader %q", img.Extlinux, img.RPi, img.Bootloader.Ref)
	}
	uefi, _ := ParseBoard("boards/qemu-x86_64.yaml", []byte(goodBoard))
	if img := Merge(s, uefi); img.Extlinux != nil {
		t.Errorf("a uefi board merged with an extlinux part: %+v", img.Extlinux)
	}
}

func TestMergeKubernetes(t *testing.T) {
	b, err := ParseBoard("boards/qemu-x86_64.yaml", []byte(goodBoard+kubeBoard+firewallBoard))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ParseSpec("images/plain.yaml", []byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	if img := Merge(plain, b); img.Kubernetes != nil || len(img.Modules) != 0 {
		t.Errorf("a spec without kubernetes got %+v, modules %v", img.Kubernetes, img.Modules)
	}
	s, err := ParseSpec("images/k8s.yaml", []byte(`name: k8s
version: 1.0.0
kernel:
  modules: [e1000e]
kubernetes:
  mode: agent
  server: https://10.0.0.1:6443
  joinKubeconfig: secrets/join.kubeconfig
  manifests: [apps, ../shared/x.yaml]
  images:
    - name: cairn.local/coredns:1.15.0
      image: oci-layout:oci:my-coredns
    - name: registry.example.com/web:1.2
`))
	if err != nil {
		t.Fatal(err)
	}
	img := Merge(s, b)
	k := img.Kubernetes
	if k == nil || !k.BoardHasKubernetes {
		t.Fatalf("Kubernetes = %+v", k)
	}
	var got []string
	for _, im := range k.Images {
		got = append(got, im.Name+"="+im.Ref.Ref+"@"+im.Ref.Dir+"|"+im.Ref.From)
	}
	want := []string{
		"cairn.local/pause:3.10=oci-layout:../.cache/oci:cairn-pause-amd64@boards|boards/qemu-x86_64.yaml:13",
		"cairn.local/coredns:1.15.0=oci-layout:oci:my-coredns@images|images/k8s.yaml:12",
		"registry.example.com/web:1.2=registry.example.com/web:1.2@images|images/k8s.yaml:13",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Images:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The firewall (on by default with Kubernetes) brings the same nft
	// and one more module: each once.
	if len(img.Tools) != 1 || img.Tools[0].Dir != "boards" || img.Tools[0].From != "boards/qemu-x86_64.yaml:16" {
		t.Errorf("Tools = %+v", img.Tools)
	}
	if got, want := strings.Join(img.Modules, " "), "e1000e bridge nf_tables nft_ct"; got != want {
		t.Errorf("Modules = %q, want %q", got, want)
	}
	if k.Manifests[0].Path != "images/apps" || k.Manifests[1].Path != "shared/x.yaml" || k.Manifests[1].From != "images/k8s.yaml:9" {
		t.Errorf("Manifests = %+v", k.Manifests)
	}
	if k.JoinKubeconfig.Path != "images/secrets/join.kubeconfig" || k.JoinKubeconfig.From != "images/k8s.yaml:8" {
		t.Errorf("JoinKubeconfig = %+v", k.JoinKubeconfig)
	}
	if k.Config.ClusterCIDR != "10.42.0.0/16" || k.Config.Mode != "agent" {
		t.Errorf("Config defaults: %+v", k.Config)
	}
	noKube, _ := ParseBoard("boards/qemu-x86_64.yaml", []byte(goodBoard))
	if k := Merge(s, noKube).Kubernetes; k == nil || k.BoardHasKubernetes || len(k.Images) != 2 {
		t.Errorf("on a board without kubernetes: %+v", k)
	}
}

// TestMergeFirewall: the board's firewall tools and modules go to an
// image whose firewall is on, with or without Kubernetes, and to no other.
func TestMergeFirewall(t *testing.T) {
	b, err := ParseBoard("boards/qemu-x86_64.yaml", []byte(goodBoard+firewallBoard))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, spec string
		tools      int
		modules    string
	}{
		{"off by default", goodSpec, 0, ""},
		{"on", "name: a\nversion: 1.0.0\nfirewall: {enabled: true}\n", 1, "nf_tables nft_ct"},
		{"on with a module of the spec", "name: a\nversion: 1.0.0\nkernel: {modules: [nf_tables]}\nfirewall: {enabled: true}\n", 1, "nf_tables nft_ct"},
		{"off with kubernetes", "name: a\nversion: 1.0.0\nkubernetes: {}\nfirewall: {enabled: false}\n", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSpec("images/a.yaml", []byte(tt.spec))
			if err != nil {
				t.Fatal(err)
			}
			img := Merge(s, b)
			if len(img.Tools) != tt.tools || strings.Join(img.Modules, " ") != tt.modules {
				t.Errorf("Tools %+v, Modules %q; want %d tools, modules %q", img.Tools, img.Modules, tt.tools, tt.modules)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"4096", 4096, true},
		{"512KiB", 512 << 10, true},
		{"256MiB", 256 << 20, true},
		{"2GiB", 2 << 30, true},
		{" 1 TiB", 1 << 40, true},
		{"1.5GiB", 0, false},
		{"-1", 0, false},
		{"1GB", 0, false},
		{"99999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	if got, want := (256 * MiB).String(), "256MiB"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(goodSpec))
	f.Add([]byte("name: a\nversion: 1.0.0\ndisk:\n  slotSize: 1GiB\nkernel:\n  modules: [a]\n"))
	f.Add([]byte("name: [a\n"))
	f.Add([]byte("name: a\nversion: 1.0.0\nkubernetes:\n  mode: agent\n  server: https://a:6443\n  images: [{name: x}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec("x.yaml", data)
		if err == nil && (s.Name == "" || s.Disk.SlotSize < 16*MiB) {
			t.Fatalf("accepted an invalid spec: %+v", s)
		}
	})
}

func FuzzParseBoard(f *testing.F) {
	f.Add([]byte(goodBoard))
	f.Add([]byte(goodBoard + kubeBoard))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBoard("boards/qemu-x86_64.yaml", data)
		if err == nil && (b.Arch != "amd64" && b.Arch != "arm64") {
			t.Fatalf("accepted an invalid board: %+v", b)
		}
	})
}
