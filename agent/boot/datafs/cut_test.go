package datafs

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"testing"
)

// errCut is what a write or sync returns once the power is gone.
var errCut = errors.New("power cut")

// cutFile is a partition that loses power: the first budget bytes written
// reach it (the write that crosses the budget lands torn) and everything
// after fails. With a cache it also loses writes at the cut: of the writes
// since the last Sync, a random subset lands, as a disk with a volatile
// write cache may do.
type cutFile struct {
	*os.File
	budget int64
	cache  *rand.Rand // nil: each write lands as it is made
	dirty  []dirtyWrite
	cut    bool
	writes []int64 // the length of each write, cut or not
}

// dirtyWrite is a write since the last Sync and what it overwrote.
type dirtyWrite struct {
	off      int64
	old, new []byte
}

func (c *cutFile) WriteAt(p []byte, off int64) (int, error) {
	if c.cut {
		return 0, errCut
	}
	c.writes = append(c.writes, int64(len(p)))
	n := min(int64(len(p)), c.budget)
	if c.cache != nil {
		old := make([]byte, n)
		if m, err := c.File.ReadAt(old, off); err != nil {
			clear(old[m:]) // past the end of the file
		}
		c.dirty = append(c.dirty, dirtyWrite{off, old, append([]byte(nil), p[:n]...)})
	}
	if _, err := c.File.WriteAt(p[:n], off); err != nil {
		return 0, err
	}
	c.budget -= n
	if n < int64(len(p)) {
		c.powerOff()
		return int(n), errCut
	}
	return len(p), nil
}

func (c *cutFile) Sync() error {
	if c.cut {
		return errCut
	}
	c.dirty = nil
	return nil
}

// powerOff cuts the power: with a cache, the unsynced writes are undone
// and a random subset of them done again, in their order.
func (c *cutFile) powerOff() {
	c.cut = true
	if c.cache == nil {
		return
	}
	for i := len(c.dirty) - 1; i >= 0; i-- {
		_, _ = c.File.WriteAt(c.dirty[i].old, c.dirty[i].off)
	}
	for _, w := range c.dirty {
		if c.cache.Intn(2) == 0 {
			_, _ = c.File.WriteAt(w.new, w.off)
		}
	}
}

// cutFormat runs Format on img until the power goes after budget bytes.
func cutFormat(t *testing.T, img string, size, budget int64, cache *rand.Rand) *cutFile {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &cutFile{File: f, budget: budget, cache: cache}
	if err := format(c, img, size); err != nil && !c.cut {
		t.Fatalf("Format without a cut: %v", err)
	}
	return c
}

// TestFormatCut cuts the power while Format runs, after every write and in
// the middle of each (and with a write cache that loses unsynced writes,
// and twice in a row), then boots again: Probe must say Blank, Unfinished
// or Ext4 (never Unknown, which would leave /var on a tmpfs for good),
// Format must finish what was left, and e2fsck and the kernel must find
// the result clean.
func TestFormatCut(t *testing.T) {
	t.Parallel()
	const size = 136 << 20 // two block groups, a backup superblock in the second
	// A run without a cut tells how many bytes each write has.
	dry := cutFormat(t, sparseFile(t, size), size, math.MaxInt64, nil)
	var at []int64 // the byte offset in the run where each write starts
	var total int64
	for _, n := range dry.writes {
		at = append(at, total)
		total += n
	}
	type cut struct {
		budget int64
		cache  bool
	}
	// Every write is cut before it and in its middle; make test-full also
	// cuts after each with a cache, and twice, which make test does for
	// every third.
	every := 3
	if os.Getenv("CAIRN_TEST_FULL") != "" {
		every = 1
	}
	var cases [][]cut
	for i, start := range at {
		cases = append(cases, []cut{{budget: start}}, []cut{{budget: start + dry.writes[i]/2}})
		if i%every == 0 {
			cases = append(cases,
				[]cut{{budget: start + dry.writes[i], cache: true}},
				// Cut again while the next boot formats.
				[]cut{{budget: start + dry.writes[i]/2}, {budget: at[(i*7+3)%len(at)]}},
			)
		}
	}
	t.Logf("%d writes, %d bytes; %d cuts", len(at), total, len(cases))
	for i, cuts := range cases {
		t.Run(fmt.Sprint(cuts), func(t *testing.T) {
			t.Parallel()
			img := sparseFile(t, size)
			for _, c := range cuts {
				var cache *rand.Rand
				if c.cache {
					cache = rand.New(rand.NewSource(int64(i)))
				}
				cutFormat(t, img, size, c.budget, cache)
			}
			k, err := Probe(img)
			if err != nil {
				t.Fatal(err)
			}
			switch k {
			case Blank, Unfinished:
				if err := Format(img, size); err != nil {
					t.Fatalf("Format after a cut (%v): %v", k, err)
				}
			case Ext4:
				if cuts[len(cuts)-1].budget < total {
					t.Fatalf("cut after %d of %d bytes: Probe says %v before Format finished", cuts[len(cuts)-1].budget, total, k)
				}
			default:
				t.Fatalf("cut after %v bytes: Probe says %v: the partition would never be formatted", cuts, k)
			}
			if k, err := Probe(img); err != nil || k != Ext4 {
				t.Fatalf("Probe after Format = %v, %v", k, err)
			}
			checkClean(t, img)
			if i%8 == 0 { // the kernel takes longest; e2fsck judges every case
				mountCheck(t, img, nil)
			}
		})
	}
}
