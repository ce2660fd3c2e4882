package flash

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Seams for tests: where the kernel describes block devices and mounts.
var (
	sysRoot   = "/sys"
	mountInfo = "/proc/self/mountinfo"
	// systemPaths are the mount points whose disks are the running system's.
	systemPaths = []string{"/", "/boot", "/boot/efi"}
)

// Device is a block device that CheckDevice found safe to write.
type Device struct {
	// Path is the device node as given, e.g. /dev/sdb.
	Path string
	// Name is the kernel's name of it (sdb, mmcblk0, loop3).
	Name string
	// Model is the vendor and model the kernel reports, if any.
	Model string
	// Size is its size in bytes.
	Size int64
	// Dev is its device number.
	Dev uint64
}

// String describes d for the confirmation question and the logs.
func (d *Device) String() string {
	s := fmt.Sprintf("%s (%s, %s", d.Path, d.Name, humanBytes(d.Size))
	if d.Model != "" {
		s += ", " + d.Model
	}
	return s + ")"
}

// CheckDevice checks that path is a whole block device of at least need
// bytes that nothing uses: not mounted, none of its partitions mounted,
// not held by device-mapper, RAID or another loop device, not the disk of
// the running system's / or /boot, and writable. Each refusal says why.
// It only reads: nothing is opened for writing.
func CheckDevice(path string, need int64) (*Device, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w (name the card's device, e.g. /dev/sdb or /dev/mmcblk0; lsblk lists them)", path, err)
	}
	switch mode := st.Mode(); {
	case mode.IsDir():
		return nil, fmt.Errorf("%s is a directory, not a block device (name the card's device, e.g. /dev/sdb; lsblk lists them)", path)
	case mode.IsRegular():
		return nil, fmt.Errorf("%s is a regular file, not a block device: cairn flash writes cards and disks (copy an image file with cp, or name the device, e.g. /dev/sdb)", path)
	case mode&fs.ModeDevice == 0 || mode&fs.ModeCharDevice != 0:
		return nil, fmt.Errorf("%s is not a block device (name the card's device, e.g. /dev/sdb; lsblk lists them)", path)
	}
	var sst unix.Stat_t
	if err := unix.Stat(path, &sst); err != nil {
		return nil, fmt.Errorf("device %s: %w", path, err)
	}
	b, err := readBlock(uint64(sst.Rdev))
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", path, err)
	}
	d := &Device{Path: path, Name: b.name, Model: b.model, Size: b.size, Dev: b.dev}
	if b.partitionOf != "" {
		return nil, fmt.Errorf("%s is a partition of %s: flash the whole disk (/dev/%s)", path, b.partitionOf, b.partitionOf)
	}
	info, err := os.ReadFile(mountInfo)
	if err != nil {
		return nil, fmt.Errorf("reading the mounts to check %s is not in use: %w", path, err)
	}
	mounts := parseMountInfo(info)
	if err := checkInUse(b, mounts, systemDevs(mounts)); err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	if b.readOnly {
		return nil, fmt.Errorf("%s is read-only (an SD card's lock switch? slide it to unlock)", d)
	}
	if d.Size < need {
		return nil, fmt.Errorf("%s is smaller than the image (%s): use a card of at least %s", d, humanBytes(need), humanBytes(need))
	}
	return d, nil
}

// block is what sysfs says of a block device.
type block struct {
	name  string
	dev   uint64
	size  int64
	model string
	// partitionOf is the disk's name when this is a partition.
	partitionOf string
	readOnly    bool
	// parts are its partitions; holders the devices built on it or on
	// one of its partitions (dm-0, md0, loop devices), by name.
	parts   []block
	holders []string
}

// readBlock reads /sys/dev/block/MAJ:MIN.
func readBlock(dev uint64) (block, error) {
	dir, err := filepath.EvalSymlinks(devDir(dev))
	if err != nil {
		return block{}, fmt.Errorf("the kernel does not know block device %d:%d: %w", unix.Major(dev), unix.Minor(dev), err)
	}
	b := block{name: filepath.Base(dir), dev: dev}
	if sectors, err := readInt(filepath.Join(dir, "size")); err == nil {
		b.size = sectors * 512 // sysfs counts 512-byte sectors whatever the device's
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		b.partitionOf = filepath.Base(filepath.Dir(dir))
	}
	if ro, err := readInt(filepath.Join(dir, "ro")); err == nil && ro != 0 {
		b.readOnly = true
	}
	var model []string
	for _, f := range []string{"device/vendor", "device/model", "device/name"} {
		if s, err := os.ReadFile(filepath.Join(dir, f)); err == nil && len(bytes.TrimSpace(s)) > 0 {
			model = append(model, string(bytes.TrimSpace(s)))
		}
	}
	b.model = strings.Join(model, " ")
	b.holders = holders(dir)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		pdir := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(pdir, "partition")); err != nil {
			continue
		}
		pdev, err := readDev(filepath.Join(pdir, "dev"))
		if err != nil {
			continue
		}
		b.parts = append(b.parts, block{name: e.Name(), dev: pdev, partitionOf: b.name, holders: holders(pdir)})
	}
	return b, nil
}

func devDir(dev uint64) string {
	return filepath.Join(sysRoot, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev)))
}

func holders(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, "holders"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
}

// readDev reads a sysfs dev file, "MAJ:MIN".
func readDev(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseDev(string(bytes.TrimSpace(b)))
}

func parseDev(s string) (uint64, error) {
	maj, min, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a device number MAJ:MIN", s)
	}
	return unix.Mkdev(uint32(a), uint32(b)), nil
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	dev    uint64
	point  string
	source string
}

// parseMountInfo reads the device, mount point and source of each mount.
func parseMountInfo(b []byte) []mount {
	var ms []mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		left, right, ok := strings.Cut(sc.Text(), " - ")
		f := strings.Fields(left)
		if !ok || len(f) < 5 {
			continue
		}
		dev, err := parseDev(f[2])
		if err != nil {
			continue
		}
		m := mount{dev: dev, point: unescape(f[4])}
		if r := strings.Fields(right); len(r) >= 2 {
			m.source = unescape(r[1])
		}
		ms = append(ms, m)
	}
	return ms
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// systemDevs are the block devices under the running system's / and
// /boot, with what they are built on (the disk of a partition, the
// disks under device-mapper or RAID), each with the mount point it serves.
func systemDevs(mounts []mount) map[uint64]string {
	devs := map[uint64]string{}
	for _, p := range systemPaths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil {
			devs[uint64(st.Dev)] = p
		}
		// A file system such as btrfs reports a device number of its own
		// in st_dev: the mount's source names the real device.
		for _, m := range mounts {
			if m.point != p || !strings.HasPrefix(m.source, "/dev/") {
				continue
			}
			if err := unix.Stat(m.source, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
				devs[uint64(st.Rdev)] = p
			}
		}
	}
	out := map[uint64]string{}
	for dev, p := range devs {
		for _, d := range below(dev, 0) {
			out[d] = p
		}
	}
	return out
}

// below is dev and every device it is built on: the disk of a partition,
// and recursively the slaves of a device-mapper or RAID device.
func below(dev uint64, depth int) []uint64 {
	out := []uint64{dev}
	dir, err := filepath.EvalSymlinks(devDir(dev))
	if err != nil || depth > 8 {
		return out
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		if d, err := readDev(filepath.Join(filepath.Dir(dir), "dev")); err == nil {
			out = append(out, d)
		}
	}
	slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
	for _, s := range slaves {
		if d, err := readDev(filepath.Join(dir, "slaves", s.Name(), "dev")); err == nil {
			out = append(out, below(d, depth+1)...)
		}
	}
	return out
}

// checkInUse refuses a disk that the running system is on, that is
// mounted, or that something is built on, itself or by a partition.
func checkInUse(b block, mounts []mount, system map[uint64]string) error {
	all := append([]block{b}, b.parts...)
	for _, p := range all {
		if mp, ok := system[p.dev]; ok {
			what := "it"
			if p.name != b.name {
				what = "its partition " + p.name
			}
			return fmt.Errorf("%s holds the running system's %s: this is this computer's own disk (name the card's device instead; lsblk lists them)", what, mp)
		}
	}
	var errs []error
	for _, p := range all {
		var points []string
		for _, m := range mounts {
			if m.dev == p.dev && !slices.Contains(points, m.point) {
				points = append(points, m.point)
			}
		}
		if len(points) > 0 {
			errs = append(errs, fmt.Errorf("%s is mounted on %s (unmount it first: umount %s)", "/dev/"+p.name, strings.Join(points, ", "), strings.Join(points, " ")))
		}
		if len(p.holders) > 0 {
			errs = append(errs, fmt.Errorf("%s is in use by %s (device-mapper, RAID or a loop device: stop that first)", "/dev/"+p.name, strings.Join(p.holders, ", ")))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("in use, not written: %w", errors.Join(errs...))
	}
	return nil
}

// humanBytes writes n in binary units.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
