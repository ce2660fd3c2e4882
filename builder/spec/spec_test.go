package spec

import (
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
		{"empty", "", "the file is empty"},
		{"not a mapping", "- a\n", "must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSpec("images/x.yaml", []byte(tt.yaml))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseSpec: %v", err)
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
	if got, want := strings.Join(img.Cmdline, " "), "transparent_hugepage=madvise console=ttyS0 quiet"; got != want {
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
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec("x.yaml", data)
		if err == nil && (s.Name == "" || s.Disk.SlotSize < 16*MiB) {
			t.Fatalf("accepted an invalid spec: %+v", s)
		}
	})
}

func FuzzParseBoard(f *testing.F) {
	f.Add([]byte(goodBoard))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBoard("boards/qemu-x86_64.yaml", data)
		if err == nil && (b.Arch != "amd64" && b.Arch != "arm64") {
			t.Fatalf("accepted an invalid board: %+v", b)
		}
	})
}
