package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxFile bounds the block maps Parse reads: a map of a 1 TiB image with
// a range every other block is about this size; a larger one is not a map.
const MaxFile = 64 << 20

// maxImage bounds ImageSize (1 PiB), so that no block offset overflows.
const maxImage = 1 << 50

// xmlMap is the bmaptool 2.0 document.
type xmlMap struct {
	XMLName           xml.Name   `xml:"bmap"`
	Version           string     `xml:"version,attr"`
	ImageSize         string     `xml:"ImageSize"`
	BlockSize         string     `xml:"BlockSize"`
	BlocksCount       string     `xml:"BlocksCount"`
	MappedBlocksCount string     `xml:"MappedBlocksCount"`
	ChecksumType      string     `xml:"ChecksumType"`
	BmapFileChecksum  string     `xml:"BmapFileChecksum"`
	Ranges            []xmlRange `xml:"BlockMap>Range"`
}

type xmlRange struct {
	Chksum string `xml:"chksum,attr"`
	Blocks string `xml:",chardata"`
}

// Parse reads a block map in the bmaptool 2.0 format (SHA-256 checksums),
// as Encode and `bmaptool create` write it. The map comes from outside
// (downloaded beside an image), so Parse checks all of it and refuses,
// naming the problem: a map whose own checksum does not match its
// content, a range beyond the image, ranges out of order or overlapping,
// a range without a well-formed SHA-256, and counts that disagree with
// the ranges. It never panics.
func Parse(data []byte) (Map, error) {
	if len(data) > MaxFile {
		return Map{}, fmt.Errorf("%d bytes, more than the %d a block map may have (is it a block map?)", len(data), MaxFile)
	}
	var x xmlMap
	dec := xml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&x); err != nil {
		return Map{}, fmt.Errorf("not a bmap XML document: %w", err)
	}
	if major, _, _ := strings.Cut(strings.TrimSpace(x.Version), "."); major != "2" {
		return Map{}, fmt.Errorf("bmap version %q: only version 2 (SHA-256) is read (make a new map with bmaptool create)", x.Version)
	}
	if ct := strings.TrimSpace(x.ChecksumType); ct != "sha256" {
		return Map{}, fmt.Errorf("ChecksumType %q: only sha256 is read (make a new map with bmaptool create)", ct)
	}
	if err := checkFileSum(data, x.BmapFileChecksum); err != nil {
		return Map{}, err
	}
	var m Map
	var err error
	if m.ImageSize, err = number("ImageSize", x.ImageSize, 0, maxImage); err != nil {
		return Map{}, err
	}
	if m.BlockSize, err = number("BlockSize", x.BlockSize, 512, 1<<24); err != nil {
		return Map{}, err
	}
	if m.BlockSize&(m.BlockSize-1) != 0 {
		return Map{}, fmt.Errorf("BlockSize %d is not a power of two", m.BlockSize)
	}
	blocks := (m.ImageSize + m.BlockSize - 1) / m.BlockSize
	if n, err := number("BlocksCount", x.BlocksCount, 0, maxImage); err != nil {
		return Map{}, err
	} else if n != blocks {
		return Map{}, fmt.Errorf("BlocksCount %d does not match ImageSize %d in blocks of %d (%d)", n, m.ImageSize, m.BlockSize, blocks)
	}
	mapped, err := number("MappedBlocksCount", x.MappedBlocksCount, 0, blocks)
	if err != nil {
		return Map{}, err
	}
	for i, xr := range x.Ranges {
		r, err := parseRange(xr)
		if err != nil {
			return Map{}, fmt.Errorf("range %d: %w", i+1, err)
		}
		if r.Last >= blocks {
			return Map{}, fmt.Errorf("range %d (%d-%d) ends beyond the image's %d blocks", i+1, r.First, r.Last, blocks)
		}
		if n := len(m.Ranges); n > 0 && r.First <= m.Ranges[n-1].Last {
			prev := m.Ranges[n-1]
			return Map{}, fmt.Errorf("range %d (%d-%d) overlaps or comes before range %d (%d-%d): ranges must be sorted and disjoint", i+1, r.First, r.Last, i, prev.First, prev.Last)
		}
		m.Ranges = append(m.Ranges, r)
	}
	if got := m.Mapped(); got != mapped {
		return Map{}, fmt.Errorf("MappedBlocksCount %d does not match the ranges' %d blocks", mapped, got)
	}
	return m, nil
}

// number parses an element's decimal content within [lo, hi].
func number(field, s string, lo, hi int64) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("%s is missing", field)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q is not a number from %d to %d", field, s, lo, hi)
	}
	return n, nil
}

// parseRange reads "<Range chksum="…"> FIRST-LAST </Range>" (or a single block).
func parseRange(xr xmlRange) (Range, error) {
	s := strings.TrimSpace(xr.Blocks)
	first, last, isRun := strings.Cut(s, "-")
	var r Range
	var err error
	if r.First, err = number("first block", first, 0, maxImage); err != nil {
		return Range{}, err
	}
	r.Last = r.First
	if isRun {
		if r.Last, err = number("last block", last, 0, maxImage); err != nil {
			return Range{}, err
		}
	}
	if r.Last < r.First {
		return Range{}, fmt.Errorf("%q ends before it starts", s)
	}
	sum := strings.TrimSpace(xr.Chksum)
	if err := checkHex(sum); err != nil {
		return Range{}, fmt.Errorf("blocks %s: chksum %w", s, err)
	}
	r.SHA256 = strings.ToLower(sum)
	return r, nil
}

// checkHex accepts a SHA-256 written in hexadecimal.
func checkHex(s string) error {
	if s == "" {
		return errors.New("is missing (every range needs its SHA-256)")
	}
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("%q is not a SHA-256 in hexadecimal (64 digits)", s)
	}
	return nil
}

// checkFileSum checks the map's own checksum: the SHA-256 of the file
// with the checksum's digits set to zeros, as bmaptool computes it.
func checkFileSum(data []byte, field string) error {
	want := strings.TrimSpace(field)
	if err := checkHex(want); err != nil {
		return fmt.Errorf("BmapFileChecksum %w", err)
	}
	const open, end = "<BmapFileChecksum>", "</BmapFileChecksum>"
	i := bytes.Index(data, []byte(open))
	j := bytes.Index(data, []byte(end))
	if i < 0 || j < i {
		return errors.New("BmapFileChecksum is not one plain element")
	}
	zeroed := bytes.Clone(data)
	body := zeroed[i+len(open) : j]
	k := bytes.Index(body, []byte(want))
	if k < 0 {
		return errors.New("BmapFileChecksum is not one plain element")
	}
	copy(body[k:], bytes.Repeat([]byte("0"), len(want)))
	sum := sha256.Sum256(zeroed)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, want) {
		return fmt.Errorf("the block map's checksum is %s, but it says %s: the file was changed or cut short (download it again, or make it with bmaptool create)", got, want)
	}
	return nil
}
