package tftp

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// cleanName turns a requested file name into a path relative to the
// served directory, or says why it is refused. A leading "/" is dropped,
// since PXE clients often send "/pxelinux.0" for the file "pxelinux.0" of
// the root; what remains must be a clean relative path (fs.ValidPath: no
// ".." or "." element, no empty element, no trailing slash) without
// backslashes (a Windows separator that some servers would translate and
// this one does not) and without control characters, which no boot file
// name has. Nothing is cleaned silently: a name that needs cleaning comes
// from a broken or hostile client, and the refusal says which.
//
// os.Root confines what cleanName lets through a second time, and also
// symbolic links, which no name check can see.
func cleanName(name string) (string, error) {
	rel := strings.TrimLeft(name, "/")
	switch {
	case rel == "":
		return "", fmt.Errorf("file name %q names the served directory itself, not a file", name)
	case strings.ContainsRune(rel, '\\'):
		return "", fmt.Errorf("file name %q has a backslash (use / between directories)", name)
	case strings.ContainsFunc(rel, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", fmt.Errorf("file name %q has a control character", name)
	case !fs.ValidPath(rel):
		return "", fmt.Errorf("file name %q is not a clean path inside the served directory (no .., . or empty elements)", name)
	}
	return rel, nil
}

// openFile opens the regular file at the clean path name in root and
// returns it with its size. It checks the type before opening, because
// opening a FIFO would block the transfer until something writes to it,
// and again after, on the file it got.
func openFile(root *os.Root, name string) (*os.File, int64, error) {
	if fi, err := root.Stat(name); err != nil {
		return nil, 0, err
	} else if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s is a %s, not a regular file", name, fileType(fi.Mode()))
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is a %s, not a regular file", name, fileType(fi.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}
