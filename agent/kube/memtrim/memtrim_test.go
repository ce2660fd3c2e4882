package memtrim

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	const maps = `00400000-04067000 r-xp 00000000 fe:00 11207480                           /usr/bin/cairn-kube
04067000-082b1000 r--p 03c67000 fe:00 11207480                           /usr/bin/cairn-kube
082b1000-083bd000 rw-p 07eb1000 fe:00 11207480                           /usr/bin/cairn-kube
083bd000-0a41c000 rw-p 00000000 00:00 0
7fb28f4f0000-7fb28f760000 r--p 00000000 00:00 0                          /usr/bin/cairn-kube-other
7ffd1000-7ffd2000 r-xp 00000000 00:00 0                                  [vdso]
`
	for _, tc := range []struct {
		name, path string
		want       []mapping
	}{
		{"code and read-only data", "/usr/bin/cairn-kube", []mapping{{0x400000, 0x4067000}, {0x4067000, 0x82b1000}}},
		{"another file", "/usr/bin/containerd", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readOnlyMappings(bufio.NewScanner(strings.NewReader(maps)), tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
	if _, err := readOnlyMappings(bufio.NewScanner(strings.NewReader("zz-01 r-xp 0 0:0 1 /x\n")), "/x"); err == nil {
		t.Error("a malformed range is not an error")
	}
}

// TestReleaseStartupPages runs on the test binary itself: the call must
// succeed (the machines we build on run Linux 5.4 or later) and the
// program must go on running the code it gave back.
func TestReleaseStartupPages(t *testing.T) {
	n, err := ReleaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no mapping of the executable found")
	}
	if got := strings.Repeat("ok", 2); got != "okok" { // code paged back in
		t.Fatal(got)
	}
}
