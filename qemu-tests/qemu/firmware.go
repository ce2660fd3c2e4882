package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// firmware is a UEFI build for one architecture: read-only code and the
// template of its variable store.
type firmware struct {
	code, vars string
	pkg        string // Debian package that ships both
}

// firmwares lists, per architecture, the UEFI builds to use, best first.
// A package variable so tests can point it elsewhere.
var firmwares = map[Arch][]firmware{
	AMD64: {
		{code: "/usr/share/OVMF/OVMF_CODE_4M.fd", vars: "/usr/share/OVMF/OVMF_VARS_4M.fd", pkg: "ovmf"},
	},
	ARM64: {
		// Already padded to the 64 MiB the virt machine's pflash wants.
		{code: "/usr/share/AAVMF/AAVMF_CODE.fd", vars: "/usr/share/AAVMF/AAVMF_VARS.fd", pkg: "qemu-efi-aarch64"},
		// Older layouts: one 2 MiB image, padded by us; empty vars are
		// formatted by the firmware on first boot.
		{code: "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", pkg: "qemu-efi-aarch64"},
	},
}

// armFlashSize is the size of each of the arm64 virt machine's two pflash
// banks; QEMU refuses images of any other size.
const armFlashSize = 64 << 20

// findFirmware returns the first installed firmware for arch.
func findFirmware(arch Arch) (firmware, error) {
	fws := firmwares[arch]
	for _, fw := range fws {
		if _, err := os.Stat(fw.code); err == nil {
			return fw, nil
		}
	}
	if len(fws) == 0 {
		return firmware{}, fmt.Errorf("no UEFI firmware known for %s", arch)
	}
	return firmware{}, fmt.Errorf("UEFI firmware for %s not found at %s: install Debian's %s package (apt-get install %s)",
		arch, fws[0].code, fws[0].pkg, fws[0].pkg)
}

// pflashArgs returns QEMU's two pflash drives for fw: the code read-only and
// the variable store at varsPath, created from the template when missing.
// dir holds any padded copy of the code.
func pflashArgs(arch Arch, fw firmware, varsPath, dir string) ([]string, error) {
	code := fw.code
	if arch == ARM64 {
		padded, err := padFlash(code, dir)
		if err != nil {
			return nil, err
		}
		code = padded
	}
	if _, err := os.Stat(varsPath); errors.Is(err, os.ErrNotExist) {
		if err := createVars(arch, fw, varsPath); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("UEFI variable store: %w", err)
	}
	return []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + varsPath,
	}, nil
}

// createVars writes a fresh variable store at path.
func createVars(arch Arch, fw firmware, path string) error {
	if fw.vars == "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("creating UEFI variable store: %w", err)
		}
		defer f.Close()
		return f.Truncate(armFlashSize)
	}
	if err := CopySparse(path, fw.vars); err != nil {
		return fmt.Errorf("copying UEFI variable store template: %w (reinstall Debian's %s package)", err, fw.pkg)
	}
	if arch == ARM64 {
		return os.Truncate(path, armFlashSize)
	}
	return nil
}

// padFlash returns code itself when it already fills a pflash bank, or else
// a copy padded with zeros in dir.
func padFlash(code, dir string) (string, error) {
	fi, err := os.Stat(code)
	if err != nil {
		return "", fmt.Errorf("UEFI firmware: %w", err)
	}
	if fi.Size() == armFlashSize {
		return code, nil
	}
	if fi.Size() > armFlashSize {
		return "", fmt.Errorf("UEFI firmware %s is %d bytes, larger than a %d-byte pflash bank", code, fi.Size(), armFlashSize)
	}
	padded := filepath.Join(dir, "code.fd")
	if err := CopySparse(padded, code); err != nil {
		return "", fmt.Errorf("padding UEFI firmware: %w", err)
	}
	return padded, os.Truncate(padded, armFlashSize)
}

// CopySparse copies src to a new file dst, leaving holes where src has
// blocks of zeros: the arm64 variable store is 64 MiB of mostly nothing, and
// disk images are mostly empty too.
func CopySparse(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			block := buf[:n]
			if allZero(block) {
				if _, err := out.Seek(int64(n), io.SeekCurrent); err != nil {
					return err
				}
			} else if _, err := out.Write(block); err != nil {
				return err
			}
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	return out.Truncate(size)
}

var zeros = make([]byte, 1<<20)

func allZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }

// qemuBinary returns the path of QEMU's system emulator for arch, or an error
// naming the Debian package that provides it.
func qemuBinary(arch Arch) (string, error) {
	var name, pkg string
	switch arch {
	case AMD64:
		name, pkg = "qemu-system-x86_64", "qemu-system-x86"
	case ARM64:
		name, pkg = "qemu-system-aarch64", "qemu-system-arm"
	default:
		return "", fmt.Errorf("unsupported guest architecture %q (want %s or %s)", arch, AMD64, ARM64)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in $PATH: install Debian's %s package (apt-get install %s)", name, pkg, pkg)
	}
	return path, nil
}
