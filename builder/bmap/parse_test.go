package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var fileSum = regexp.MustCompile(`<BmapFileChecksum> *([0-9a-fA-F]*) *</BmapFileChecksum>`)

// resign sets a map's own checksum to match its (edited) content, so a
// test reaches the check after it.
func resign(b []byte) []byte {
	zero := fileSum.ReplaceAll(b, []byte("<BmapFileChecksum> "+strings.Repeat("0", 64)+" </BmapFileChecksum>"))
	sum := sha256.Sum256(zero)
	return bytes.Replace(zero, []byte(strings.Repeat("0", 64)), []byte(hex.EncodeToString(sum[:])), 1)
}

func sampleMap() Map {
	h := func(c string) string { return strings.Repeat(c, 64) }
	return Map{ImageSize: 64*BlockSize - 100, BlockSize: BlockSize, Ranges: []Range{
		{First: 0, Last: 0, SHA256: h("a")}, {First: 5, Last: 6, SHA256: h("b")}, {First: 63, Last: 63, SHA256: h("c")},
	}}
}

func TestParse(t *testing.T) {
	m := sampleMap()
	got, err := Parse(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("Parse(Encode(m)) = %+v, want %+v", got, m)
	}
	if off, n := got.Extent(got.Ranges[2]); off != 63*BlockSize || n != BlockSize-100 {
		t.Errorf("the last range covers %d+%d, want the image's end cut at %d", off, n, m.ImageSize)
	}
}

func TestParseRefuses(t *testing.T) {
	good := string(sampleMap().Encode())
	sum := sha256.Sum256([]byte("x"))
	h := hex.EncodeToString(sum[:])
	tests := []struct {
		name    string
		edit    func(string) string
		resign  bool
		wantErr string
	}{
		{"not XML", func(string) string { return "hello" }, false, "not a bmap XML document"},
		{"changed, checksum kept", func(s string) string { return strings.Replace(s, "> 5-6 <", "> 5-7 <", 1) }, false, "the file was changed"},
		{"cut short", func(s string) string { return s[:len(s)-40] }, false, "not a bmap XML document"},
		{"version 1", func(s string) string { return strings.Replace(s, `version="2.0"`, `version="1.4"`, 1) }, true, "only version 2"},
		{"sha1", func(s string) string { return strings.Replace(s, "> sha256 <", "> sha1 <", 1) }, true, "only sha256"},
		{"beyond the image", func(s string) string { return strings.Replace(s, "> 63 <", "> 64 <", 1) }, true, "beyond the image's 64 blocks"},
		{"overlapping", func(s string) string { return strings.Replace(s, "> 5-6 <", "> 0-6 <", 1) }, true, "overlaps or comes before range 1"},
		{"unsorted", func(s string) string {
			s = strings.Replace(s, "> 0 <", "> 40 <", 1)
			return s
		}, true, "overlaps or comes before range 1"},
		{"backwards", func(s string) string { return strings.Replace(s, "> 5-6 <", "> 6-5 <", 1) }, true, "ends before it starts"},
		{"bad checksum", func(s string) string { return strings.Replace(s, strings.Repeat("b", 64), "xyz", 1) }, true, `chksum "xyz" is not a SHA-256`},
		{"short checksum", func(s string) string { return strings.Replace(s, strings.Repeat("b", 64), h[:62], 1) }, true, "is not a SHA-256"},
		{"no checksum", func(s string) string { return strings.Replace(s, `chksum="`+strings.Repeat("b", 64)+`"`, "", 1) }, true, "chksum is missing"},
		{"mapped count", func(s string) string { return strings.Replace(s, "> 4 </Mapped", "> 5 </Mapped", 1) }, true, "MappedBlocksCount 5 does not match the ranges' 4"},
		{"blocks count", func(s string) string { return strings.Replace(s, "> 64 </BlocksCount", "> 65 </BlocksCount", 1) }, true, "BlocksCount 65 does not match"},
		{"block size", func(s string) string { return strings.Replace(s, "> 4096 <", "> 4000 <", 1) }, true, "BlockSize"},
		{"negative", func(s string) string { return strings.Replace(s, "> 5-6 <", "> -5-6 <", 1) }, true, "first block"},
		{"huge", func(s string) string {
			return strings.Replace(s, "<ImageSize> 262044 </ImageSize>", "<ImageSize> 99999999999999999999 </ImageSize>", 1)
		}, true, "ImageSize"},
		{"no file checksum", func(s string) string { return fileSum.ReplaceAllString(s, "") }, false, "BmapFileChecksum is missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.edit(good))
			if tc.resign {
				b = resign(b)
			}
			_, err := Parse(b)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestParseBmaptool reads what bmaptool itself writes.
func TestParseBmaptool(t *testing.T) {
	tool, err := exec.LookPath("bmaptool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("bmaptool is not installed (builder/scripts/deps.sh installs it)")
		}
		t.Skip("bmaptool is not installed")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(img)
	f.Truncate(1 << 20)
	f.WriteAt([]byte("boot"), 0)
	f.WriteAt(bytes.Repeat([]byte("x"), 3*BlockSize), 100*BlockSize)
	f.Close()
	out, err := exec.Command(tool, "create", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(bmaptool create): %v\n%s", err, out)
	}
	if m.ImageSize != 1<<20 || len(m.Ranges) != 2 || m.Ranges[1].First != 100 || m.Ranges[1].Last != 102 {
		t.Errorf("Parse(bmaptool create) = %+v", m)
	}
}

// FuzzParse: Parse never panics, and what it accepts encodes back to a
// map it reads the same. Each input is also tried re-signed, so the
// fuzzer gets past the file checksum to the checks behind it.
func FuzzParse(f *testing.F) {
	f.Add(sampleMap().Encode())
	f.Add(Map{ImageSize: 0}.Encode())
	f.Add(resign([]byte(strings.Replace(string(sampleMap().Encode()), "> 5-6 <", "> 0-6 <", 1))))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, resign(b)} {
			m, err := Parse(in)
			if err != nil {
				continue
			}
			again, err := Parse(m.Encode())
			if err != nil {
				t.Fatalf("Parse(Encode(Parse(b))): %v", err)
			}
			if !reflect.DeepEqual(again, m) {
				t.Fatalf("a map changed through Encode: %+v vs %+v", m, again)
			}
		}
	})
}
