package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The hybrid MBR of the Raspberry Pi's disk. The Pi firmware reads MBR
// partitions only; Linux, given a GPT, must still take the GPT. Linux's
// block/partitions/efi.c (is_pmbr_valid) takes an MBR as a GPT's
// protective or hybrid MBR when one of its four entries has type 0xEE and
// starts at LBA 1, the GPT header; any other non-empty entry makes it
// hybrid, and a hybrid MBR's 0xEE entry may have any size. The GPT then
// wins (the EFI partition parser runs before the MSDOS one).
//
// So entries 1-3 are the GPT's partitions 1-3 (the FAT partitions, type
// 0x0c) at the same sectors, and entry 4 is 0xEE from LBA 1 to the end of
// the disk (or of 32-bit LBAs), as a protective MBR's is: it overlaps
// entries 1-3, so that a tool that reads only the MBR sees no free space
// where the slots and CAIRN-DATA are. The Pi firmware reads entries by
// number and ignores 0xEE.

// mbrEntry is one of the MBR's four partition entries, in on-disk order.
type mbrEntry struct {
	Status   byte    // 0x80 bootable, 0 not: the Pi's firmware does not look
	FirstCHS [3]byte // CHS addressing is not used: 0xFE 0xFF 0xFF, "beyond CHS"
	Type     byte    // 0x0c FAT32 (LBA), 0xEE the GPT
	LastCHS  [3]byte
	FirstLBA uint32 // first sector
	Sectors  uint32 // length in sectors
}

// mbr is the first sector, in on-disk order.
type mbr struct {
	Bootstrap [440]byte // no boot code: the Pi's firmware and UEFI run none
	Signature uint32    // disk signature, PARTUUID's first half
	Reserved  uint16    // 0 (0x5A5A would mark it copy-protected)
	Entries   [4]mbrEntry
	BootSig   uint16 // 0xAA55
}

const (
	mbrTypeGPT = 0xEE
	mbrBootSig = 0xAA55
)

var noCHS = [3]byte{0xFE, 0xFF, 0xFF}

// hybridMBR is l's hybrid MBR: its partitions with an MBRType under their
// index (1-3), and the 0xEE entry in slot 4.
func hybridMBR(l Layout) (*mbr, error) {
	m := &mbr{Signature: l.MBRSignature, BootSig: mbrBootSig}
	sectors := l.Size / sector
	for _, p := range l.Partitions {
		if p.MBRType == 0 {
			continue
		}
		if p.Index < 1 || p.Index > 3 {
			return nil, fmt.Errorf("hybrid MBR: partition %d (%s) is not one of 1-3 (entry 4 is the GPT's)", p.Index, p.Label)
		}
		start, n := p.Start/sector, p.Size/sector
		if start+n > 1<<32 {
			return nil, fmt.Errorf("hybrid MBR: partition %d (%s) ends beyond the MBR's 2 TiB", p.Index, p.Label)
		}
		m.Entries[p.Index-1] = mbrEntry{FirstCHS: noCHS, Type: p.MBRType, LastCHS: noCHS, FirstLBA: uint32(start), Sectors: uint32(n)}
	}
	n := sectors - 1
	if n > 0xFFFFFFFF {
		n = 0xFFFFFFFF
	}
	m.Entries[3] = mbrEntry{FirstCHS: [3]byte{0, 2, 0}, Type: mbrTypeGPT, LastCHS: noCHS, FirstLBA: 1, Sectors: uint32(n)}
	return m, nil
}

// writeHybridMBR writes l's hybrid MBR over sector 0 (go-diskfs's
// protective MBR), if l has partitions in the MBR.
func writeHybridMBR(w io.WriterAt, l Layout) error {
	hybrid := false
	for _, p := range l.Partitions {
		hybrid = hybrid || p.MBRType != 0
	}
	if !hybrid {
		return nil
	}
	m, err := hybridMBR(l)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, m); err != nil {
		return err
	}
	if b.Len() != sector {
		return fmt.Errorf("hybrid MBR: %d bytes, not one sector (a bug)", b.Len())
	}
	_, err = w.WriteAt(b.Bytes(), 0)
	return err
}

// readMBR parses an MBR sector.
func readMBR(r io.ReaderAt) (*mbr, error) {
	buf := make([]byte, sector)
	if _, err := r.ReadAt(buf, 0); err != nil {
		return nil, err
	}
	m := &mbr{}
	if err := binary.Read(bytes.NewReader(buf), binary.LittleEndian, m); err != nil {
		return nil, err
	}
	if m.BootSig != mbrBootSig {
		return nil, errors.New("no MBR boot signature 0xAA55")
	}
	return m, nil
}
