package serve

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/builder/netboot"
	"github.com/cairn-edge/cairn/builder/serve/proxydhcp"
)

// bundle writes a PXE bundle for arch into a new directory.
func bundle(t *testing.T, arch string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vmlinuz", "initramfs", "slot.cpio"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Repeat(name+" ", 1000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := &netboot.Manifest{Name: "edge", Version: "2.0.0", Arch: arch, Cmdline: "console=ttyS0 cairn.slot=a cairn.media=ram"}
	if err := m.Pack(dir, "vmlinuz", "initramfs", "slot.cpio"); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestOpen(t *testing.T) {
	amd, arm := bundle(t, "amd64"), bundle(t, "arm64")
	b, err := Open(amd, arm)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.Archs(), " "); got != "amd64 arm64" {
		t.Errorf("Archs = %q", got)
	}
	for _, tt := range []struct {
		name string
		dirs func() []string
		err  string
	}{
		{"one arch twice", func() []string { return []string{amd, bundle(t, "amd64")} }, "both hold amd64 (serve one bundle per architecture)"},
		{"not a bundle", func() []string { return []string{t.TempDir()} }, "holds no bundle"},
		{"a changed file", func() []string {
			d := bundle(t, "amd64")
			f := filepath.Join(d, "amd64", "vmlinuz")
			data, _ := os.ReadFile(f)
			data[0] ^= 1
			os.WriteFile(f, data, 0o644)
			return []string{d}
		}, "the bundle was changed or damaged"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.dirs()...); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Open: %v; want %q", err, tt.err)
			}
		})
	}
}

func TestBootFile(t *testing.T) {
	b, err := Open(bundle(t, "amd64"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		client proxydhcp.Client
		want   string
	}{
		{proxydhcp.Client{Arch: "amd64", Firmware: proxydhcp.IPXE}, "http://10.0.0.1:8080/ipxe/amd64"},
		{proxydhcp.Client{Arch: "arm64", Firmware: proxydhcp.IPXE}, "error: the bundle holds no arm64 (it holds amd64"},
		{proxydhcp.Client{Arch: "amd64", Firmware: proxydhcp.UEFI}, "error: uefi firmware loads an EFI or PXE program first"},
		{proxydhcp.Client{Arch: "amd64", Firmware: proxydhcp.BIOS}, "error: bios firmware"},
	} {
		got, err := b.bootFile("http://10.0.0.1:8080", tt.client)
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("bootFile(%s) = %q, want %q", tt.client, got, tt.want)
		}
	}
}

func TestHandler(t *testing.T) {
	b, err := Open(bundle(t, "amd64"))
	if err != nil {
		t.Fatal(err)
	}
	var served []Transfer
	srv := httptest.NewServer(b.Handler(slog.New(slog.DiscardHandler), func(tr Transfer) { served = append(served, tr) }))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct {
		path   string
		status int
		body   string // what it holds
	}{
		{"/boot.ipxe", 200, "#!ipxe\nchain http://" + host + "/ipxe/${buildarch}\n"},
		{"/ipxe/amd64", 200, "kernel http://" + host + "/amd64/vmlinuz console=ttyS0 cairn.slot=a cairn.media=ram\ninitrd http://" + host + "/amd64/initramfs\ninitrd http://" + host + "/amd64/slot.cpio\nboot\n"},
		{"/ipxe/x86_64", 200, "echo Cairn edge 2.0.0 (amd64)"},
		{"/ipxe/i386", 200, "kernel http://" + host + "/amd64/vmlinuz"}, // iPXE for a BIOS is an i386 build
		{"/ipxe/arm64", 404, "holds no bundle for arm64 (it holds amd64)"},
		{"/amd64/vmlinuz", 200, strings.Repeat("vmlinuz ", 1000)},
		{"/amd64/netboot.json", 404, ""},
		{"/amd64/../amd64/vmlinuz", 200, "vmlinuz"}, // cleaned by the mux: still only bundle files
		{"/amd64/%2e%2e%2fnetboot.json", 404, ""},
		{"/arm64/vmlinuz", 404, ""},
		{"/", 404, ""},
	} {
		status, body := get(tt.path)
		if status != tt.status || !strings.Contains(body, tt.body) {
			t.Errorf("GET %s = %d %.80q; want %d with %q", tt.path, status, body, tt.status, tt.body)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/amd64/slot.cpio", nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(part) != strings.Repeat("slot.cpio ", 2)[10:20] {
		t.Errorf("range request: %d %q", resp.StatusCode, part)
	}
	var file *Transfer
	for i := range served {
		if served[i].Path == "/amd64/vmlinuz" {
			file = &served[i]
		}
	}
	if file == nil || file.Bytes != 8000 || file.Status != 200 {
		t.Errorf("the kernel's transfer was reported as %+v; want 8000 bytes", file)
	}
}

func TestOptions(t *testing.T) {
	b, err := Open(bundle(t, "amd64"))
	if err != nil {
		t.Fatal(err)
	}
	got := Options(b, "http://192.168.1.10:8080")
	for _, want := range []string{
		"dhcp-userclass=set:ipxe,iPXE\ndhcp-boot=tag:ipxe,http://192.168.1.10:8080/boot.ipxe\n",
		"if exists user-class and option user-class = \"iPXE\" {\n  filename \"http://192.168.1.10:8080/boot.ipxe\";\n}",
		"-OptionId 67 -Value \"http://192.168.1.10:8080/boot.ipxe\"",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Options lack %q:\n%s", want, got)
		}
	}
}
