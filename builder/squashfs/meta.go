package squashfs

import (
	"encoding/binary"
	"io"
)

// metaWriter collects a metadata table (inodes, directory listings, ids):
// a stream cut into blocks of metaSize bytes, each compressed when that
// makes it smaller and stored behind a 16-bit header giving its stored
// length, the top bit set for a block stored as is. A position in the
// table is a reference: the stored offset of its block from the table's
// start, and the offset inside the uncompressed block.
type metaWriter struct {
	out []byte // finished blocks, headers included
	buf []byte // the block being filled
}

func newMetaWriter() *metaWriter { return &metaWriter{} }

// ref is the reference of the next byte written: block << 16 | offset.
func (m *metaWriter) ref() uint64 { return uint64(len(m.out))<<16 | uint64(len(m.buf)) }

// write appends b, finishing blocks as they fill.
func (m *metaWriter) write(b []byte) {
	m.buf = append(m.buf, b...)
	for len(m.buf) >= metaSize {
		m.finish(m.buf[:metaSize])
		m.buf = append(m.buf[:0], m.buf[metaSize:]...)
	}
}

func (m *metaWriter) finish(block []byte) {
	stored, compressed := compress(block, false)
	header := uint16(len(stored))
	if !compressed {
		header |= 1 << 15
	}
	m.out = binary.LittleEndian.AppendUint16(m.out, header)
	m.out = append(m.out, stored...)
}

// flush finishes the last block and writes the table to w.
func (m *metaWriter) flush(w io.Writer) error {
	if len(m.buf) > 0 {
		m.finish(m.buf)
		m.buf = nil
	}
	_, err := w.Write(m.out)
	return err
}
