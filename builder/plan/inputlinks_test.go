package plan

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/pki"
	"github.com/cairn-edge/cairn/builder/source"
	"github.com/cairn-edge/cairn/builder/spec"
)

// hostSecret marks the content of the build host's files in
// TestInputLinks: it must appear nowhere in a plan.
const hostSecret = "host-secret-5f0c1d"

// linkImage is an input image's tree for TestInputLinks: files with their
// content and links with their target, where HOST/ stands for the host
// directory outside every input and UP/ for a way up to it with ".."
// (climb).
type linkImage struct {
	files, links map[string]string
}

// deepDir is a directory of every image in TestInputLinks, deep enough
// for climb, with the link deepDir/top to the image's top.
var deepDir = strings.TrimSuffix(strings.Repeat("d/", 32), "/")

// climb is how a link in the directory dir of an image climbs to the build
// host's directory host with "..", past go-containerregistry: mutate.Extract
// drops a relative link whose target, joined to its directory, starts with
// "..", but it cleans the path as text, and "deepDir/top/.." is deepDir
// as text, the image's parent in fact. Climbing as many levels as deepDir
// is deep leaves the host's / above any cache's tree.
func climb(dir, host string) string {
	rel, _ := filepath.Rel(dir, deepDir)
	return rel + "/top/" + strings.Repeat("../", strings.Count(deepDir, "/")+2) + strings.TrimPrefix(host, "/")
}

// kernelImage is a kernel image with the modules of the test board.
func kernelImage() linkImage {
	const mods = "lib/modules/6.1.0-test/"
	return linkImage{files: map[string]string{
		"boot/vmlinuz":                "MZkernel",
		mods + "modules.dep":          "kernel/virtio_blk.ko:\nkernel/evdev.ko:\n",
		mods + "modules.builtin":      "kernel/8250.ko\n",
		mods + "kernel/virtio_blk.ko": "module virtio_blk",
		mods + "kernel/evdev.ko":      "module evdev",
	}, links: map[string]string{}}
}

// loaderImage is a boot loader image with the board's EFI binary.
func loaderImage() linkImage {
	return linkImage{files: map[string]string{efiPath: "MZ-efi"}, links: map[string]string{}}
}

const efiPath = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// move turns the file p into the file to, and p into a link to target.
func (im linkImage) move(p, to, target string) linkImage {
	im.files[to] = im.files[p]
	delete(im.files, p)
	im.links[p] = target
	return im
}

// link replaces the file p by a link to target.
func (im linkImage) link(p, target string) linkImage {
	delete(im.files, p)
	im.links[p] = target
	return im
}

// TestInputLinks plans images whose kernel or boot loader image holds links
// where the plan reads a file: the kernel, the EFI binary, modules.dep,
// modules.builtin, the modules (named in modules.dep, or found without one
// through their .modinfo) and /lib/modules itself. A link that stays in
// its input is followed, an absolute one from the input's top as on the
// node; one that leads to the build host is refused, naming the input, the
// file and the link, and the host file's content is nowhere in the plan.
func TestInputLinks(t *testing.T) {
	const mods = "lib/modules/6.1.0-test/"
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	anELF, err := os.ReadFile(exe) // debug/elf reads it as a module without .modinfo
	if err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	writeTree(t, host, map[string]string{
		"shadow":                      hostSecret + "\n",
		"elf.ko":                      string(anELF) + hostSecret,
		"boot/vmlinuz":                "MZ" + hostSecret,
		"efi/systemd-bootx64.efi":     "MZ" + hostSecret,
		mods + "modules.dep":          "kernel/virtio_blk.ko:\nkernel/evdev.ko:\n# " + hostSecret + "\n",
		mods + "kernel/virtio_blk.ko": hostSecret,
		mods + "kernel/evdev.ko":      hostSecret,
	}, nil)
	noDep := func(im linkImage) linkImage { delete(im.files, mods+"modules.dep"); return im }
	usr := func(im linkImage) linkImage {
		for p, c := range im.files {
			if strings.HasPrefix(p, "lib/") {
				delete(im.files, p)
				im.files["usr/"+p] = c
			}
		}
		return im
	}
	const kernelRef, loaderRef = "oci-layout:../oci:kernel", "oci-layout:../oci:loader"
	tests := []struct {
		name           string
		kernel, loader linkImage
		// wantErr is what the error says, "" for a plan that works; UP
		// stands for any text.
		wantErr string
	}{
		{name: "files", kernel: kernelImage(), loader: loaderImage()},
		{name: "kernel: link inside", kernel: kernelImage().move("boot/vmlinuz", "boot/vmlinuz-6.1.0-test", "vmlinuz-6.1.0-test"), loader: loaderImage()},
		{name: "kernel: absolute link inside", kernel: kernelImage().move("boot/vmlinuz", "boot/vmlinuz-6.1.0-test", "/boot/vmlinuz-6.1.0-test"), loader: loaderImage()},
		{name: "kernel: relative link chain inside", kernel: kernelImage().move("boot/vmlinuz", "k/real", "a").link("boot/a", "../boot/b").link("boot/b", "../k/real"), loader: loaderImage()},
		{name: "kernel: link chain inside", kernel: kernelImage().move("boot/vmlinuz", "k/real", "a").link("boot/a", "../boot/b").link("boot/b", "/k/real"), loader: loaderImage()},
		{
			name: "kernel: link to a host file", kernel: kernelImage().link("boot/vmlinuz", "HOST/shadow"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": boot/vmlinuz is a link to HOST/shadow, but the input holds no",
		},
		{
			name: "kernel: link climbing out", kernel: kernelImage().link("boot/vmlinuz", "UP/shadow"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": boot/vmlinuz is a link to UP/shadow, outside the input (an input's files must be inside it)",
		},
		{
			name: "kernel: link chain out", kernel: kernelImage().link("boot/vmlinuz", "a").link("boot/a", "b").link("boot/b", "UP/shadow"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": boot/vmlinuz goes through boot/b, a link to UP/shadow, outside the input",
		},
		{
			name: "kernel: boot a link to a host directory", kernel: kernelImage().link("boot/vmlinuz", "").link("boot", "HOST/boot"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": boot/vmlinuz goes through boot, a link to HOST/boot, but the input holds no",
		},
		{name: "EFI binary: absolute link inside", kernel: kernelImage(), loader: loaderImage().move(efiPath, "efi/real.efi", "/efi/real.efi")},
		{
			name: "EFI binary: link to a host file", kernel: kernelImage(), loader: loaderImage().link(efiPath, "HOST/efi/systemd-bootx64.efi"),
			wantErr: "boot loader image " + loaderRef + ": " + efiPath + " is a link to HOST/efi/systemd-bootx64.efi, but the input holds no",
		},
		{
			name: "EFI binary: link climbing out", kernel: kernelImage(), loader: loaderImage().link(efiPath, "UP/efi/systemd-bootx64.efi"),
			wantErr: "boot loader image " + loaderRef + ": " + efiPath + " is a link to UP/efi/systemd-bootx64.efi, outside the input",
		},
		{
			name: "EFI binary: directory link to the host", kernel: kernelImage(), loader: loaderImage().link(efiPath, "").link("usr/lib/systemd/boot/efi", "HOST/efi"),
			wantErr: "boot loader image " + loaderRef + ": " + efiPath + " goes through usr/lib/systemd/boot/efi, a link to HOST/efi, but the input holds no",
		},
		{name: "modules: usrmerge link", kernel: usr(kernelImage()).link("lib", "usr/lib"), loader: loaderImage()},
		{name: "modules: absolute usrmerge link", kernel: usr(kernelImage()).link("lib", "/usr/lib"), loader: loaderImage()},
		{name: "modules: module link inside", kernel: kernelImage().move(mods+"kernel/evdev.ko", mods+"kernel/input/evdev.ko", "/"+mods+"kernel/input/evdev.ko"), loader: loaderImage()},
		{
			name: "modules: lib a link to the host", kernel: usr(kernelImage()).link("lib", "HOST/lib"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": lib/modules goes through lib, a link to HOST/lib, but the input holds no",
		},
		{
			name: "modules: modules.dep a link to the host", kernel: kernelImage().link(mods+"modules.dep", "HOST/"+mods+"modules.dep"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": " + mods + "modules.dep is a link to HOST/" + mods + "modules.dep, but the input holds no",
		},
		{
			name: "modules: modules.builtin climbing out", kernel: kernelImage().link(mods+"modules.builtin", "UP/shadow"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": " + mods + "modules.builtin is a link to UP/shadow, outside the input",
		},
		{
			name: "modules: a module a link to the host", kernel: kernelImage().link(mods+"kernel/evdev.ko", "HOST/"+mods+"kernel/evdev.ko"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": " + mods + "kernel/evdev.ko is a link to HOST/" + mods + "kernel/evdev.ko, but the input holds no",
		},
		{
			name: "modules: a module climbing out, no modules.dep", kernel: noDep(kernelImage()).link(mods+"kernel/evdev.ko", "UP/elf.ko").link(mods+"kernel/virtio_blk.ko", "UP/elf.ko"), loader: loaderImage(),
			wantErr: "kernel image " + kernelRef + ": reading kernel modules: kernel module kernel/evdev.ko: " + mods + "kernel/evdev.ko is a link to UP/elf.ko, outside the input",
		},
	}
	creds, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			lay := filepath.Join(dir, "oci")
			for tag, im := range map[string]linkImage{"kernel": tt.kernel, "loader": tt.loader} {
				tree := filepath.Join(dir, tag)
				expand := func(p, target string) string {
					return strings.NewReplacer("HOST", host, "UP", climb(filepath.Dir(p), host)).Replace(target)
				}
				top := strings.TrimSuffix(strings.Repeat("../", strings.Count(deepDir, "/")+1), "/")
				writeTree(t, tree, im.files, expand, im.links, map[string]string{deepDir + "/top": top})
				if _, err := source.PackDir(tree, "amd64", lay, tag); err != nil {
					t.Fatal(err)
				}
			}
			img := linkTestImage(t, dir)
			c, err := source.OpenCache(filepath.Join(dir, "cache"))
			if err != nil {
				t.Fatal(err)
			}
			var p *Plan
			in, err := Resolve(context.Background(), c, img, filepath.Join(dir, "bin"))
			if err == nil {
				p, err = Make(img, in, creds, time.Unix(1704067200, 0), t.TempDir())
			}
			if p != nil {
				if where := leaks(t, p); where != "" {
					t.Errorf("the build host's file is in the plan: %s", where)
				}
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := string(mustRead(t, p.Boot.Kernel)); got != "MZkernel" {
					t.Errorf("kernel = %q, want the image's", got)
				}
				return
			}
			if err == nil || !containsInOrder(err.Error(), strings.Split(strings.ReplaceAll(tt.wantErr, "HOST", host), "UP")) {
				t.Errorf("error = %v\nwant one with %s (UP: the way up to %s)", err, tt.wantErr, host)
			}
		})
	}
}

// linkTestImage is a spec on a board, both in dir, whose kernel and boot
// loader are dir/oci's images kernel and loader, with our binaries in
// dir/bin.
func linkTestImage(t *testing.T, dir string) *spec.Image {
	t.Helper()
	writeTree(t, dir, map[string]string{
		"bin/linux-amd64/cairn-init":  "#!init",
		"bin/linux-amd64/cairn-agent": "#!agent",
		"images/test.yaml":            "name: test\nversion: 1.0.0\ndisk:\n  espSize: 64MiB\n  slotSize: 16MiB\n  dataSize: 16MiB\n",
		"boards/test-board.yaml": fmt.Sprintf(`name: test-board
arch: amd64
firmware: uefi
kernel:
  image: oci-layout:../oci:kernel
  bootModules: [virtio_blk]
  modules: [evdev]
bootloader:
  image: oci-layout:../oci:loader
  path: %s
`, efiPath),
	}, nil)
	s, err := spec.LoadSpec(filepath.Join(dir, "images", "test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := spec.LoadBoard(filepath.Join(dir, "boards"), "test-board")
	if err != nil {
		t.Fatal(err)
	}
	return spec.Merge(s, b)
}

// writeTree writes files (path: content) below root, then links (path:
// target, expand(path, target) written; an empty target is no link).
func writeTree(t *testing.T, root string, files map[string]string, expand func(p, target string) string, links ...map[string]string) {
	t.Helper()
	for p, content := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, ls := range links {
		for p, target := range ls {
			if target == "" {
				continue
			}
			full := filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(expand(p, target), full); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// leaks names the first place of the plan, if any, that holds the host's
// hostSecret: a file of the slot, the initramfs or the boot partition.
func leaks(t *testing.T, p *Plan) string {
	t.Helper()
	trees := map[string]*fstree.Tree{"slot": p.Slot, "initramfs": p.Initramfs}
	if fats, err := p.Firmware.BootPartitions(p.Boot, nil); err == nil {
		for label, tree := range fats {
			trees["boot partition "+label] = tree
		}
	} else {
		t.Errorf("boot partition: %v", err)
	}
	for name, tree := range trees {
		for _, e := range tree.Entries() {
			if !e.Mode.IsRegular() {
				continue
			}
			r, err := e.Open()
			if err != nil {
				t.Errorf("%s %s: %v", name, e.Path, err)
				continue
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Errorf("%s %s: %v", name, e.Path, err)
			}
			if strings.Contains(string(b), hostSecret) {
				return name + " " + e.Path
			}
		}
	}
	return ""
}

// containsInOrder tells whether s holds each of parts, one after the other.
func containsInOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// mustRead is the content of the host file p.
func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
