package artifact

import (
	"encoding/json"
	"strings"
	"testing"
)

func validConfig() Config {
	return Config{Name: "edge", Version: "1.2.0", Board: "qemu-x86_64", Arch: "amd64", Cmdline: []string{"console=ttyS0", "panic=10"}}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // error text; empty means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"prerelease", func(c *Config) { c.Version = "1.3.0-rc.1" }, ""},
		{"bad version", func(c *Config) { c.Version = "latest" }, "semantic version"},
		{"bad arch", func(c *Config) { c.Arch = "riscv64" }, "not amd64 or arm64"},
		{"bad board", func(c *Config) { c.Board = "../x" }, "not a board name"},
		{"slot in cmdline", func(c *Config) { c.Cmdline = append(c.Cmdline, "cairn.slot=a") }, "names a slot"},
		{"space in param", func(c *Config) { c.Cmdline = []string{"a b"} }, "white space"},
		{"newline in kernel", func(c *Config) { c.Kernel = "6.1\nx" }, "line break"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			b, _ := json.Marshal(c)
			_, err := ParseConfig(b)
			if tc.want == "" && err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("ParseConfig = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	c := validConfig()
	if err := c.Check("qemu-x86_64", "amd64"); err != nil {
		t.Fatal(err)
	}
	if err := c.Check("qemu-aarch64", "arm64"); err == nil || !strings.Contains(err.Error(), "arch") {
		t.Fatalf("other arch: %v", err)
	}
	if err := c.Check("nuc", "amd64"); err == nil || !strings.Contains(err.Error(), "board") {
		t.Fatalf("other board: %v", err)
	}
}

const d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func manifest(layers ...string) []byte {
	m := Manifest{SchemaVersion: 2, MediaType: ManifestMediaType, ArtifactType: ArtifactType,
		Config: Descriptor{MediaType: ConfigMediaType, Digest: d1, Size: 100}}
	for _, mt := range layers {
		m.Layers = append(m.Layers, Descriptor{MediaType: mt, Digest: d1, Size: 5})
	}
	b, _ := json.Marshal(m)
	return b
}

func TestParseUpdate(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"full", manifest(SlotMediaType, KernelMediaType, InitrdMediaType, ChunksMediaType), ""},
		{"no chunks", manifest(SlotMediaType, KernelMediaType, InitrdMediaType), ""},
		{"unknown layer ignored", manifest(SlotMediaType, KernelMediaType, InitrdMediaType, "application/x-later"), ""},
		{"no slot", manifest(KernelMediaType, InitrdMediaType), "no " + SlotMediaType},
		{"two slots", manifest(SlotMediaType, SlotMediaType, KernelMediaType, InitrdMediaType), "two"},
		{"not json", []byte("{"), "not JSON"},
		{"image", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d1 + `","size":1},"layers":[]}`), "artifact type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseUpdate(tc.b)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if u.Slot.Digest != d1 || u.Kernel.Size != 5 {
					t.Fatalf("layers not picked out: %+v", u)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseUpdate = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	ix := Index{SchemaVersion: 2, Manifests: []Descriptor{
		{MediaType: ManifestMediaType, Digest: d1, Size: 1, Annotations: map[string]string{AnnotationBoard: "qemu-x86_64", AnnotationArch: "amd64"}},
	}}
	b, _ := json.Marshal(ix)
	got, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := got.Select("qemu-x86_64", "amd64"); err != nil || d.Digest != d1 {
		t.Fatalf("Select = %v, %v", d, err)
	}
	if _, err := got.Select("rpi4", "arm64"); err == nil || !strings.Contains(err.Error(), "qemu-x86_64") {
		t.Fatalf("Select of a missing board: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	b, _ := json.Marshal(validConfig())
	f.Add(b)
	f.Add([]byte(`{"name":"x"}`))
	pi := validConfig()
	pi.BootFiles = []BootFile{{Name: "overlays/disable-bt.dtbo", Size: 10, Digest: d1}, {Name: "config.txt", Size: 0, Digest: d1}}
	b, _ = json.Marshal(pi)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		for _, bf := range c.BootFiles {
			if CheckBootFileName(bf.Name) != nil || bf.Size < 0 || !ValidDigest(bf.Digest) {
				t.Fatalf("accepted board file %+v", bf)
			}
		}
	})
}

func FuzzParseUpdate(f *testing.F) {
	f.Add(manifest(SlotMediaType, KernelMediaType, InitrdMediaType, ChunksMediaType))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if u, err := ParseUpdate(b); err == nil {
			for _, d := range []Descriptor{u.Slot, u.Kernel, u.Initrd} {
				if !ValidDigest(d.Digest) || d.Size < 0 {
					t.Fatalf("accepted layer %+v", d)
				}
			}
		}
		if ix, err := ParseIndex(b); err == nil {
			_, _ = ix.Select("b", "amd64")
		}
	})
}
