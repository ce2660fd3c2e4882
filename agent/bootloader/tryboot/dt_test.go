package tryboot

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cairn-edge/cairn/agent/contract"
)

func TestReadBootRecord(t *testing.T) {
	for _, tt := range []struct {
		name    string
		dt      fstest.MapFS
		want    BootRecord
		wantErr string
	}{
		{"normal boot of BOOT-A", fstest.MapFS{contract.RPiDTTryboot: cell(0), contract.RPiDTPartition: cell(2)}, BootRecord{false, 2}, ""},
		{"tryboot of BOOT-B", fstest.MapFS{contract.RPiDTTryboot: cell(1), contract.RPiDTPartition: cell(3)}, BootRecord{true, 3}, ""},
		{"no record (old firmware)", fstest.MapFS{}, BootRecord{}, "is missing"},
		{"no partition", fstest.MapFS{contract.RPiDTTryboot: cell(0)}, BootRecord{}, "partition is missing"},
		{"tryboot 2", fstest.MapFS{contract.RPiDTTryboot: cell(2), contract.RPiDTPartition: cell(3)}, BootRecord{}, "want 0 or 1"},
		{"a short cell", fstest.MapFS{contract.RPiDTTryboot: {Data: []byte{1}}, contract.RPiDTPartition: cell(3)}, BootRecord{}, "1 bytes, want 4"},
		{"a string, not a cell", fstest.MapFS{contract.RPiDTTryboot: cell(1), contract.RPiDTPartition: {Data: []byte("3\x00")}}, BootRecord{}, "2 bytes, want 4"},
		{"two cells", fstest.MapFS{contract.RPiDTTryboot: cell(1), contract.RPiDTPartition: {Data: make([]byte, 8)}}, BootRecord{}, "8 bytes, want 4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadBootRecord(tt.dt)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("ReadBootRecord = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), contract.RPiDeviceTree+"/chosen/bootloader/") {
				t.Errorf("ReadBootRecord = %+v, %v; want an error naming the file and saying %q", got, err, tt.wantErr)
			}
		})
	}
	if _, err := ReadBootRecord(nil); err == nil {
		t.Error("ReadBootRecord(nil): no error")
	}
}

// FuzzParseCell: exactly four bytes parse, as big-endian; nothing else
// does, and nothing panics.
func FuzzParseCell(f *testing.F) {
	for _, s := range [][]byte{{0, 0, 0, 1}, {0, 0, 0, 3}, {}, {1}, []byte("3\x00"), make([]byte, 8)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseCell(b)
		if (err == nil) != (len(b) == 4) {
			t.Fatalf("ParseCell(%x) = %d, %v", b, v, err)
		}
		if err == nil && !bytes.Equal(binary.BigEndian.AppendUint32(nil, v), b) {
			t.Fatalf("ParseCell(%x) = %#x", b, v)
		}
	})
}

// FuzzReadBootRecord: any two files the firmware might leave read
// without a panic, and a record read names the cells' values.
func FuzzReadBootRecord(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1}, []byte{0, 0, 0, 3})
	f.Add([]byte{0, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, tryboot, part []byte) {
		rec, err := ReadBootRecord(fstest.MapFS{contract.RPiDTTryboot: {Data: tryboot}, contract.RPiDTPartition: {Data: part}})
		if err != nil {
			return
		}
		if len(tryboot) != 4 || len(part) != 4 || rec.Partition != binary.BigEndian.Uint32(part) || rec.Tryboot != (tryboot[3] == 1) {
			t.Fatalf("ReadBootRecord(%x, %x) = %+v", tryboot, part, rec)
		}
	})
}
