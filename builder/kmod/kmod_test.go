package kmod

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/builder/rootfs"
)

const depFile = `kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko
kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/drivers/block/virtio_blk.ko:
`

func testIndex(t *testing.T) *Index {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "lib", "modules", "6.1.0-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(depFile), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/tty/serial/8250/8250.ko\n"), 0o644)
	ix, err := Open(rootfs.New(root))
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestResolve(t *testing.T) {
	ix := testIndex(t)
	tests := []struct {
		names   []string
		want    []string
		wantErr string
	}{
		{[]string{"virtio-blk"}, []string{"kernel/drivers/block/virtio_blk.ko"}, ""},
		{[]string{"ext4"}, []string{"kernel/lib/crc16.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko", "kernel/fs/ext4/ext4.ko"}, ""},
		{[]string{"crc16", "ext4", "ext4"}, []string{"kernel/lib/crc16.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko", "kernel/fs/ext4/ext4.ko"}, ""},
		{[]string{"8250"}, nil, ""},
		{[]string{"nosuch"}, nil, `kernel module "nosuch" is not in kernel 6.1.0-test`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) {
			got, err := ix.Resolve(tt.names)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDepFile(t *testing.T) {
	ix := testIndex(t)
	paths, _ := ix.Resolve([]string{"ext4"})
	got := string(ix.DepFile(paths))
	want := `kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko
kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
`
	if got != want {
		t.Errorf("DepFile =\n%s\nwant\n%s", got, want)
	}
	// What we write must read back the same.
	deps, err := ParseDep(strings.NewReader(got))
	if err != nil || len(deps) != 4 {
		t.Errorf("ParseDep(DepFile) = %v, %v", deps, err)
	}
}

func TestParseDep(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"a.ko: b.ko\nb.ko:\n", ""},
		{"# comment\n\n", ""},
		{"a.ko b.ko\n", "line 1"},
		{"/abs/a.ko:\n", "not a relative .ko path"},
		{"a.ko: ../../etc/passwd.ko\n", "not a relative .ko path"},
		{"notmodule:\n", "not a relative .ko path"},
	}
	for _, tt := range tests {
		_, err := ParseDep(strings.NewReader(tt.in))
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ParseDep(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestParseModinfoDepends(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"license=GPL\x00depends=jbd2,mbcache,crc16\x00intree=Y\x00", []string{"jbd2", "mbcache", "crc16"}},
		{"license=GPL\x00depends=\x00", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := ParseModinfoDepends([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseModinfoDepends(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(rootfs.New(t.TempDir())); err == nil || !strings.Contains(err.Error(), "has no /lib/modules") {
		t.Errorf("Open(empty) error = %v", err)
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "lib/modules/a"), 0o755)
	os.MkdirAll(filepath.Join(root, "lib/modules/b"), 0o755)
	if _, err := Open(rootfs.New(root)); err == nil || !strings.Contains(err.Error(), "2 kernel versions") {
		t.Errorf("Open(two versions) error = %v", err)
	}
}

// TestDebianKernel derives modules.dep from a real Debian kernel's .modinfo
// sections when CAIRN_TEST_KERNEL_TREE points at an unpacked kernel image.
func TestDebianKernel(t *testing.T) {
	root := os.Getenv("CAIRN_TEST_KERNEL_TREE")
	if root == "" {
		t.Skip("CAIRN_TEST_KERNEL_TREE is not set (make test sets it)")
	}
	ix, err := Open(rootfs.New(root))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := ix.Resolve([]string{"ext4", "virtio_blk", "squashfs"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, Name(p))
	}
	for _, want := range []string{"jbd2", "mbcache", "ext4", "virtio_blk", "squashfs"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("Resolve(ext4, virtio_blk, squashfs) = %v, lacks %s", names, want)
		}
	}
}

func FuzzParseDep(f *testing.F) {
	f.Add(depFile)
	f.Add("a.ko:\n")
	f.Fuzz(func(t *testing.T, in string) {
		deps, err := ParseDep(strings.NewReader(in))
		if err != nil {
			return
		}
		for p, ds := range deps {
			for _, q := range append(ds, p) {
				if filepath.IsAbs(q) || strings.Contains(q, "..") {
					t.Fatalf("accepted unsafe module path %q", q)
				}
			}
		}
	})
}

// TestOpenLinks opens kernel images whose module files are links. Inside
// the image they are followed, an absolute one from the image's top as on
// the node; out of it they fail naming the link, and nothing of the build
// host is read: not its modules.dep, modules.builtin, modules or
// /lib/modules.
func TestOpenLinks(t *testing.T) {
	const ver = "6.1.0-test"
	const secret = "host-secret"
	host := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	elfBytes, err := os.ReadFile(exe) // an ELF file, as a module is
	if err != nil {
		t.Fatal(err)
	}
	write(t, host, map[string]string{
		"modules.dep":                         "# " + secret + "\nkernel/x.ko:\n",
		"modules.builtin":                     "kernel/" + secret + ".ko\n",
		"elf.ko":                              string(elfBytes) + secret,
		"lib/modules/" + ver + "/modules.dep": "kernel/x.ko:\n",
		"lib/modules/" + ver + "/kernel/x.ko": secret,
	})
	mods := "lib/modules/" + ver + "/"
	tests := []struct {
		name  string
		files map[string]string // the image's files
		links map[string]string // the image's links; HOST/ is the host directory
		// wantErr is what the first failing step says: Open, Resolve("x")
		// or HostPath of a module.
		wantErr string
	}{
		{name: "files", files: map[string]string{mods + "modules.dep": "kernel/x.ko:\n", mods + "kernel/x.ko": "module x"}},
		{
			name:  "usrmerge",
			files: map[string]string{"usr/" + mods + "modules.dep": "kernel/x.ko:\n", "usr/" + mods + "kernel/x.ko": "module x"},
			links: map[string]string{"lib": "usr/lib"},
		},
		{
			name:  "absolute usrmerge",
			files: map[string]string{"usr/" + mods + "modules.dep": "kernel/x.ko:\n", "usr/" + mods + "kernel/x.ko": "module x"},
			links: map[string]string{"lib": "/usr/lib"},
		},
		{
			name:  "module link inside",
			files: map[string]string{mods + "modules.dep": "kernel/x.ko:\n", mods + "kernel/real/x.ko": "module x"},
			links: map[string]string{mods + "kernel/x.ko": "/" + mods + "kernel/real/x.ko"},
		},
		{
			name:    "modules.dep to the host",
			files:   map[string]string{mods + "kernel/x.ko": "module x"},
			links:   map[string]string{mods + "modules.dep": "HOST/modules.dep"},
			wantErr: mods + "modules.dep is a link to HOST/modules.dep, but the input holds no",
		},
		{
			name:    "modules.dep climbing out",
			files:   map[string]string{mods + "kernel/x.ko": "module x"},
			links:   map[string]string{mods + "modules.dep": "UP/modules.dep"},
			wantErr: mods + "modules.dep is a link to UP/modules.dep, outside the input",
		},
		{
			name:    "modules.builtin to the host",
			files:   map[string]string{mods + "modules.dep": "kernel/x.ko:\n", mods + "kernel/x.ko": "module x"},
			links:   map[string]string{mods + "modules.builtin": "HOST/modules.builtin"},
			wantErr: mods + "modules.builtin is a link to HOST/modules.builtin, but the input holds no",
		},
		{
			name:    "lib to the host",
			links:   map[string]string{"lib": "HOST/lib"},
			wantErr: "lib/modules goes through lib, a link to HOST/lib, but the input holds no",
		},
		{
			name:    "module to the host",
			files:   map[string]string{mods + "modules.dep": "kernel/x.ko:\n"},
			links:   map[string]string{mods + "kernel/x.ko": "HOST/elf.ko"},
			wantErr: mods + "kernel/x.ko is a link to HOST/elf.ko, but the input holds no",
		},
		{
			name:    "module to the host, no modules.dep",
			links:   map[string]string{mods + "kernel/x.ko": "HOST/elf.ko"},
			wantErr: "kernel module kernel/x.ko: " + mods + "kernel/x.ko is a link to HOST/elf.ko, but the input holds no",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			up, _ := filepath.Rel(filepath.Join(root, mods), host)
			expand := strings.NewReplacer("HOST", host, "UP", up).Replace
			write(t, root, tt.files)
			for p, target := range tt.links {
				p = filepath.Join(root, p)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.Symlink(expand(target), p); err != nil {
					t.Fatal(err)
				}
			}
			var read []byte
			err := func() error {
				ix, err := Open(rootfs.New(root))
				if err != nil {
					return err
				}
				read = append(read, ix.BuiltinFile()...)
				paths, err := ix.Resolve([]string{"x"})
				if err != nil {
					return err
				}
				for _, p := range paths {
					hp, err := ix.HostPath(p)
					if err != nil {
						return err
					}
					b, err := os.ReadFile(hp)
					if err != nil {
						return err
					}
					read = append(read, b...)
				}
				return nil
			}()
			if strings.Contains(string(read), secret) {
				t.Errorf("read the build host's files: %.40q…", read)
			}
			if tt.wantErr == "" {
				if err != nil || string(read) != "module x" {
					t.Errorf("modules read %q, %v; want %q", read, err, "module x")
				}
				return
			}
			if want := expand(tt.wantErr); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want one with %q", err, want)
			}
		})
	}
}

// write writes files (path: content) below root.
func write(t *testing.T, root string, files map[string]string) {
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
}
