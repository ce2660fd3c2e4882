package disk

import (
	"encoding/binary"
	"fmt"
	"io"
)

// fixFAT32 repairs two things go-diskfs v1.9.4 writes differently from the
// FAT specification, so that fsck.vfat finds nothing to fix:
//   - the ".." entry of a directory whose parent is the root must point at
//     cluster 0, not at the root directory's cluster;
//   - FSInfo's free-cluster count and next-free hint are left "unknown";
//   - for some sizes the FAT has fewer entries than the volume has clusters:
//     the volume is then shrunk (by a few sectors) to the clusters the FAT can
//     address, which is what fsck.vfat would do.
//
// rw is the partition (offset 0 is the boot sector).
func fixFAT32(rw interface {
	io.ReaderAt
	io.WriterAt
}) error {
	var bs [512]byte
	if _, err := rw.ReadAt(bs[:], 0); err != nil {
		return err
	}
	le := binary.LittleEndian
	v := fatVolume{
		rw:          rw,
		sectorSize:  int64(le.Uint16(bs[11:])),
		perCluster:  int64(bs[13]),
		reserved:    int64(le.Uint16(bs[14:])),
		fats:        int64(bs[16]),
		fatSectors:  int64(le.Uint32(bs[36:])),
		rootCluster: le.Uint32(bs[44:]),
	}
	totalSectors := int64(le.Uint32(bs[32:]))
	fsinfo := int64(le.Uint16(bs[48:]))
	if v.sectorSize == 0 || v.perCluster == 0 || v.fats == 0 || string(bs[82:87]) != "FAT32" {
		return fmt.Errorf("not a FAT32 boot sector")
	}
	v.dataStart = (v.reserved + v.fats*v.fatSectors) * v.sectorSize
	clusters := uint32((totalSectors*v.sectorSize - v.dataStart) / (v.perCluster * v.sectorSize))
	if addressable := uint32(v.fatSectors*v.sectorSize/4) - 2; clusters > addressable {
		clusters = addressable
		var tot [4]byte
		le.PutUint32(tot[:], uint32(v.dataStart/v.sectorSize+int64(clusters)*v.perCluster))
		backup := int64(le.Uint16(bs[50:]))
		for _, sec := range []int64{0, backup} {
			if _, err := rw.WriteAt(tot[:], sec*v.sectorSize+32); err != nil {
				return err
			}
		}
	}
	fat := make([]byte, v.fatSectors*v.sectorSize)
	if _, err := rw.ReadAt(fat, v.reserved*v.sectorSize); err != nil {
		return err
	}
	v.fat = fat

	// Walk every directory below the root.
	if err := v.walk(v.rootCluster, true); err != nil {
		return err
	}

	var free, next uint32 = 0, 0xFFFFFFFF
	for c := uint32(2); c < clusters+2 && int(c)*4+4 <= len(fat); c++ {
		if le.Uint32(fat[c*4:])&0x0FFFFFFF == 0 {
			free++
			if next == 0xFFFFFFFF {
				next = c
			}
		}
	}
	var counts [8]byte
	le.PutUint32(counts[0:], free)
	le.PutUint32(counts[4:], next)
	backupFSInfo := int64(le.Uint16(bs[50:])) + fsinfo
	for _, sec := range []int64{fsinfo, backupFSInfo} {
		if _, err := rw.WriteAt(counts[:], sec*v.sectorSize+488); err != nil {
			return err
		}
	}
	return nil
}

type fatVolume struct {
	rw interface {
		io.ReaderAt
		io.WriterAt
	}
	sectorSize, perCluster, reserved, fats, fatSectors, dataStart int64
	rootCluster                                                   uint32
	fat                                                           []byte
}

func (v *fatVolume) clusterOffset(c uint32) int64 {
	return v.dataStart + int64(c-2)*v.perCluster*v.sectorSize
}

// chain lists a file's clusters, following the FAT.
func (v *fatVolume) chain(first uint32) []uint32 {
	var out []uint32
	for c := first; c >= 2 && c < 0x0FFFFFF8 && int(c)*4+4 <= len(v.fat) && len(out) < 1<<20; {
		out = append(out, c)
		c = binary.LittleEndian.Uint32(v.fat[c*4:]) & 0x0FFFFFFF
	}
	return out
}

func (v *fatVolume) walk(dir uint32, isRoot bool) error {
	clusterSize := v.perCluster * v.sectorSize
	buf := make([]byte, clusterSize)
	for _, c := range v.chain(dir) {
		off := v.clusterOffset(c)
		if _, err := v.rw.ReadAt(buf, off); err != nil {
			return err
		}
		for i := int64(0); i < clusterSize; i += 32 {
			e := buf[i : i+32]
			switch {
			case e[0] == 0:
				return nil
			case e[0] == 0xE5 || e[11] == 0x0F || e[11]&0x10 == 0:
				continue // deleted, long-name part, or not a directory
			}
			cluster := uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
			switch string(e[0:11]) {
			case ".          ":
			case "..         ":
				if cluster == v.rootCluster {
					var zero [2]byte
					if _, err := v.rw.WriteAt(zero[:], off+i+20); err != nil {
						return err
					}
					if _, err := v.rw.WriteAt(zero[:], off+i+26); err != nil {
						return err
					}
				}
			default:
				if err := v.walk(cluster, false); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
