// Package mountcmd is a small mount(8) and umount(8) for Cairn nodes,
// which carry no util-linux: the kubelet runs `mount` and `umount` for the
// volumes it sets up (service-account tokens on tmpfs, bind mounts). It
// understands what they pass — `mount [--no-canonicalize] [-t TYPE]
// [-o OPTIONS] SOURCE TARGET` and `umount [-f] [-l] TARGET` — and answers
// like util-linux where callers read the answer ("not mounted").
// cairn-agent runs it when started as mount or umount (links in the slot).
package mountcmd

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/sys/unix"
)

// Options are mount options split into mount(2) flags, propagation flags
// (set with a call of their own) and the file system's data string.
type Options struct {
	Flags       uintptr
	Propagation uintptr
	Data        string
}

var flagOptions = map[string]struct {
	set   bool
	flags uintptr
}{
	"ro": {true, unix.MS_RDONLY}, "rw": {false, unix.MS_RDONLY},
	"nosuid": {true, unix.MS_NOSUID}, "suid": {false, unix.MS_NOSUID},
	"nodev": {true, unix.MS_NODEV}, "dev": {false, unix.MS_NODEV},
	"noexec": {true, unix.MS_NOEXEC}, "exec": {false, unix.MS_NOEXEC},
	"sync": {true, unix.MS_SYNCHRONOUS}, "async": {false, unix.MS_SYNCHRONOUS},
	"noatime": {true, unix.MS_NOATIME}, "atime": {false, unix.MS_NOATIME},
	"nodiratime": {true, unix.MS_NODIRATIME}, "diratime": {false, unix.MS_NODIRATIME},
	"relatime": {true, unix.MS_RELATIME}, "norelatime": {false, unix.MS_RELATIME},
	"strictatime": {true, unix.MS_STRICTATIME},
	"remount":     {true, unix.MS_REMOUNT},
	"bind":        {true, unix.MS_BIND}, "rbind": {true, unix.MS_BIND | unix.MS_REC},
	"mand": {true, unix.MS_MANDLOCK}, "nomand": {false, unix.MS_MANDLOCK},
	"defaults": {false, 0},
}

var propagationOptions = map[string]uintptr{
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// ParseOptions splits a comma-separated option list.
func ParseOptions(s string) Options {
	var o Options
	var data []string
	for _, opt := range strings.Split(s, ",") {
		if opt == "" {
			continue
		}
		if f, ok := flagOptions[opt]; ok {
			if f.set {
				o.Flags |= f.flags
			} else {
				o.Flags &^= f.flags
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.Propagation |= p
			continue
		}
		data = append(data, opt)
	}
	o.Data = strings.Join(data, ",")
	return o
}

// Seam for tests.
var (
	sysMount   = unix.Mount
	sysUnmount = unix.Unmount
)

// Mount runs mount with args (args[0] is the program name) and returns the
// exit status.
func Mount(args []string, stderr io.Writer) int {
	var fstype, opts string
	var pos []string
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-t" && i+1 < len(args):
			i++
			fstype = args[i]
		case a == "-o" && i+1 < len(args):
			i++
			opts = joinOptions(opts, args[i])
		case a == "--no-canonicalize" || a == "-n" || a == "-v" || a == "-i":
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr, "mount: option %s is not supported (this is Cairn's small mount: -t TYPE -o OPTIONS SOURCE TARGET)\n", a)
			return 1
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "mount: usage: mount [-t TYPE] [-o OPTIONS] SOURCE TARGET")
		return 1
	}
	source, target := pos[0], pos[1]
	o := ParseOptions(opts)
	if err := apply(source, target, fstype, o); err != nil {
		fmt.Fprintf(stderr, "mount: %s: %v\n", target, err)
		return 32
	}
	return 0
}

func joinOptions(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

// apply mounts as util-linux does: a bind mount takes other flags only in
// a second, remounting call, and propagation needs a call of its own.
func apply(source, target, fstype string, o Options) error {
	flags := o.Flags
	if flags&unix.MS_BIND != 0 && flags&unix.MS_REMOUNT == 0 {
		if err := sysMount(source, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return err
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := sysMount("", target, "", rest|unix.MS_BIND|unix.MS_REMOUNT, ""); err != nil {
				return err
			}
		}
	} else if flags != 0 || o.Data != "" || o.Propagation == 0 {
		if err := sysMount(source, target, fstype, flags, o.Data); err != nil {
			return err
		}
	}
	if o.Propagation != 0 {
		return sysMount("", target, "", o.Propagation, "")
	}
	return nil
}

// Umount runs umount with args and returns the exit status. A target that
// is not a mount point is reported as util-linux does ("not mounted"),
// which the kubelet relies on.
func Umount(args []string, stderr io.Writer) int {
	var flags int
	var targets []string
	for _, a := range args[1:] {
		switch a {
		case "-f":
			flags |= unix.MNT_FORCE
		case "-l":
			flags |= unix.MNT_DETACH
		case "-n", "-v", "-i":
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(stderr, "umount: option %s is not supported (this is Cairn's small umount: [-f] [-l] TARGET)\n", a)
				return 1
			}
			targets = append(targets, a)
		}
	}
	if len(targets) == 0 {
		fmt.Fprintln(stderr, "umount: usage: umount [-f] [-l] TARGET")
		return 1
	}
	status := 0
	for _, t := range targets {
		err := sysUnmount(t, flags)
		switch {
		case errors.Is(err, unix.EINVAL):
			fmt.Fprintf(stderr, "umount: %s: not mounted.\n", t)
			status = 32
		case err != nil:
			fmt.Fprintf(stderr, "umount: %s: %v\n", t, err)
			status = 32
		}
	}
	return status
}
