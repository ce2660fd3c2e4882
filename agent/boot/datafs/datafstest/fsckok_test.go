package datafstest

import "testing"

// TestFsckOK: e2fsck's passes, summary and a clock skew of less than a
// day pass; anything else is a problem.
func TestFsckOK(t *testing.T) {
	for line, ok := range map[string]bool{
		"Pass 1: Checking inodes, blocks, and sizes":                                       true,
		"CAIRN-DATA: 11/139264 files (0.0% non-contiguous), 18055/556544 blocks":           true,
		"Superblock last write time is in the future.":                                     true,
		"\t(by less than a day, probably due to the hardware clock being incorrectly set)": true,
		"Superblock last write time (Tue Dec  1 19:31:40 2026,":                            false,
		"Warning: skipping journal recovery because doing a read-only filesystem check.":   false,
		"Inode bitmap differences:  -(12--13)":                                             false,
	} {
		if got := fsckOK.MatchString(line); got != ok {
			t.Errorf("fsckOK(%q) = %v, want %v", line, got, ok)
		}
	}
}
