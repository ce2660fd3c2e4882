package api

import "testing"

func TestParseRollup(t *testing.T) {
	tests := []struct {
		in             string
		rss, pss, anon uint64
	}{
		{"55d0c0000000-7ffd0 ---p 00000000 00:00 0   [rollup]\nRss:               12288 kB\nPss:                8000 kB\nPss_Anon:  1 kB\nAnonymous:  4096 kB\n", 12288 << 10, 8000 << 10, 4096 << 10},
		{"Rss: x kB\n", 0, 0, 0},
		{"", 0, 0, 0},
	}
	for _, tt := range tests {
		rss, pss, anon := parseRollup([]byte(tt.in))
		if rss != tt.rss || pss != tt.pss || anon != tt.anon {
			t.Errorf("parseRollup(%q) = %d, %d, %d; want %d, %d, %d", tt.in, rss, pss, anon, tt.rss, tt.pss, tt.anon)
		}
	}
}
