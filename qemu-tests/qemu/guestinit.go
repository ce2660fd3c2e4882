package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/u-root/u-root/pkg/cpio"
)

// GuestInitramfs builds the harness's tiny Go init (testdata/init: hello,
// power off, or print what the kernel alone holds in memory, as the kernel
// command line's cairntest= asks) for arch and packs it as /init into a
// newc cpio archive in dir. It returns the archive's path. Boot it with
// WithKernel and a command line like "console=ttyS0 cairntest=meminfo".
func GuestInitramfs(dir string, arch Arch) (string, error) {
	root, ok := moduleRoot()
	if !ok {
		return "", fmt.Errorf("building the test init: no Cairn go.mod above the working directory (run from inside the repository)")
	}
	bin := filepath.Join(dir, "init-"+string(arch))
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./qemu-tests/qemu/testdata/init")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+string(arch))
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the test init for %s: %v\n%s", arch, err, out)
	}
	content, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}

	path := filepath.Join(dir, "initramfs-"+string(arch)+".cpio")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	w := cpio.Newc.Writer(f)
	err = cpio.WriteRecordsAndDirs(w, []cpio.Record{
		// The kernel opens /dev/console as init's stdin, stdout and stderr.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		// Mount points for the meminfo probe.
		cpio.Directory("proc", 0o755),
		cpio.Directory("sys", 0o755),
		cpio.StaticFile("init", string(content), 0o755),
	})
	if err == nil {
		err = cpio.WriteTrailer(w)
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return "", fmt.Errorf("writing initramfs %s: %w", path, err)
	}
	return path, nil
}
