// Package initramfs writes a file tree as a zstd-compressed newc cpio
// archive, the format the Linux kernel unpacks into its first root file
// system. Entries are sorted and carry no times or owners, so the same tree
// always gives the same bytes.
package initramfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// Write writes tree to w as zstd(newc cpio).
func Write(tree *fstree.Tree, w io.Writer) error {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return err
	}
	if err := WriteCPIO(tree, zw); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// WriteCPIO writes tree to w as an uncompressed newc cpio archive.
func WriteCPIO(tree *fstree.Tree, w io.Writer) error {
	rw := cpio.Newc.Writer(w)
	for i, e := range tree.Entries() {
		rec, closer, err := record(e)
		if err != nil {
			return fmt.Errorf("initramfs: %s: %w", e.Path, err)
		}
		rec.Ino = uint64(i + 1)
		rec.NLink = 1
		err = rw.WriteRecord(rec)
		if closer != nil {
			closer.Close()
		}
		if err != nil {
			return fmt.Errorf("initramfs: %s: %w", e.Path, err)
		}
	}
	return cpio.WriteTrailer(rw)
}

func record(e *fstree.Entry) (cpio.Record, io.Closer, error) {
	perm := uint64(e.Mode.Perm())
	switch {
	case e.Mode.IsDir():
		return cpio.Directory(e.Path, perm), nil, nil
	case e.Mode&fs.ModeSymlink != 0:
		return cpio.Symlink(e.Path, e.Target), nil, nil
	case e.Source == "":
		return cpio.StaticRecord(e.Data, cpio.Info{Name: e.Path, Mode: cpio.S_IFREG | perm}), nil, nil
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return cpio.Record{}, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return cpio.Record{}, nil, err
	}
	return cpio.Record{ReaderAt: f, Info: cpio.Info{Name: e.Path, Mode: cpio.S_IFREG | perm, FileSize: uint64(st.Size())}}, f, nil
}
