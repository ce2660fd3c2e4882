// Package bmap writes and reads block maps in the bmaptool 2.0 format, so
// that `bmaptool copy` and `cairn flash` write only the blocks of an image
// that hold data and check each range's SHA-256 on the way. Scan and
// Encode write one; Parse reads one, which may come from anywhere.
package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// BlockSize is the bmap block size.
const BlockSize = 4096

// Range is a run of mapped blocks, First to Last inclusive.
type Range struct {
	First, Last int64
	SHA256      string
}

// Map is an image's block map.
type Map struct {
	ImageSize int64
	// BlockSize is the size of a block in bytes; 0 means BlockSize.
	BlockSize int64
	Ranges    []Range
}

// blockSize is m's block size.
func (m Map) blockSize() int64 {
	if m.BlockSize == 0 {
		return BlockSize
	}
	return m.BlockSize
}

// Extent is the part of the image that r covers, in bytes: the last
// block of an image whose size is not a multiple of the block size is
// cut at the image's end.
func (m Map) Extent(r Range) (off, n int64) {
	bs := m.blockSize()
	off = r.First * bs
	end := min((r.Last+1)*bs, m.ImageSize)
	return off, end - off
}

// Mapped is the number of mapped blocks.
func (m Map) Mapped() int64 {
	var n int64
	for _, r := range m.Ranges {
		n += r.Last - r.First + 1
	}
	return n
}

// Covers reports whether every block holding a byte of [off, off+n) is
// mapped. Its ranges must be sorted and disjoint, as Scan and Parse
// leave them.
func (m Map) Covers(off, n int64) bool {
	if n <= 0 {
		return true
	}
	bs := m.blockSize()
	first, last := off/bs, (off+n-1)/bs
	for _, r := range m.Ranges {
		if r.Last < first {
			continue
		}
		if r.First > first {
			return false
		}
		if r.Last >= last {
			return true
		}
		first = r.Last + 1
	}
	return false
}

// Scan maps the blocks of f that hold data, as bmaptool create does: it
// leaves out holes (SEEK_DATA) only. A written block of zeros stays
// mapped, because its zeros can matter and a card that is not new holds
// old data wherever the map leaves a block out: a GPT's empty partition
// entries (the table's checksum covers them), a FAT's free clusters and
// empty root directory. What may hold anything is a hole in the image.
func Scan(f *os.File) (Map, error) {
	st, err := f.Stat()
	if err != nil {
		return Map{}, err
	}
	m := Map{ImageSize: st.Size(), BlockSize: BlockSize}
	blocks := (st.Size() + BlockSize - 1) / BlockSize
	buf := make([]byte, BlockSize)
	var cur *Range
	var h = sha256.New()
	flush := func() {
		if cur != nil {
			cur.SHA256 = hex.EncodeToString(h.Sum(nil))
			m.Ranges = append(m.Ranges, *cur)
			cur = nil
			h.Reset()
		}
	}
	for b := int64(0); b < blocks; b++ {
		off := b * BlockSize
		if data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA); err == nil && data >= off+BlockSize {
			flush()
			b = data/BlockSize - 1
			continue
		} else if errors.Is(err, unix.ENXIO) {
			break // nothing but a hole to the end
		}
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return Map{}, err
		}
		if cur == nil {
			cur = &Range{First: b}
		}
		cur.Last = b
		h.Write(buf[:n])
	}
	flush()
	return m, nil
}

// Encode renders the bmap XML, including its own checksum: the SHA-256 of
// the file with the checksum field set to 64 zeros.
func (m Map) Encode() []byte {
	render := func(sum string) []byte {
		var b bytes.Buffer
		bs := m.blockSize()
		blocks := (m.ImageSize + bs - 1) / bs
		fmt.Fprintf(&b, "<?xml version=\"1.0\" ?>\n<bmap version=\"2.0\">\n")
		fmt.Fprintf(&b, "    <ImageSize> %d </ImageSize>\n", m.ImageSize)
		fmt.Fprintf(&b, "    <BlockSize> %d </BlockSize>\n", bs)
		fmt.Fprintf(&b, "    <BlocksCount> %d </BlocksCount>\n", blocks)
		fmt.Fprintf(&b, "    <MappedBlocksCount> %d </MappedBlocksCount>\n", m.Mapped())
		fmt.Fprintf(&b, "    <ChecksumType> sha256 </ChecksumType>\n")
		fmt.Fprintf(&b, "    <BmapFileChecksum> %s </BmapFileChecksum>\n", sum)
		fmt.Fprintf(&b, "    <BlockMap>\n")
		for _, r := range m.Ranges {
			if r.First == r.Last {
				fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d </Range>\n", r.SHA256, r.First)
			} else {
				fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d-%d </Range>\n", r.SHA256, r.First, r.Last)
			}
		}
		fmt.Fprintf(&b, "    </BlockMap>\n</bmap>\n")
		return b.Bytes()
	}
	zero := render(string(bytes.Repeat([]byte("0"), 64)))
	sum := sha256.Sum256(zero)
	return render(hex.EncodeToString(sum[:]))
}
