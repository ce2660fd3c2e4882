package tftp

import (
	"reflect"
	"testing"
	"time"
)

func TestNegotiate(t *testing.T) {
	lim := limits{maxBlockSize: 1468, maxWindowSize: 16, timeout: time.Second}
	for _, tt := range []struct {
		name string
		opts []Option
		want params
	}{
		{"none", nil, params{blockSize: 512, windowSize: 1, timeout: time.Second}},
		{"tsize", []Option{{"tsize", "0"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, tsize: true, oack: []Option{{"tsize", "123456"}}}},
		{"tsize not 0", []Option{{"tsize", "7"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, tsize: true, oack: []Option{{"tsize", "123456"}}}},
		{"blksize", []Option{{"blksize", "1024"}},
			params{blockSize: 1024, windowSize: 1, timeout: time.Second, oack: []Option{{"blksize", "1024"}}}},
		{"blksize smallest", []Option{{"blksize", "8"}},
			params{blockSize: 8, windowSize: 1, timeout: time.Second, oack: []Option{{"blksize", "8"}}}},
		{"blksize capped", []Option{{"blksize", "65464"}},
			params{blockSize: 1468, windowSize: 1, timeout: time.Second, oack: []Option{{"blksize", "1468"}}}},
		{"blksize huge", []Option{{"blksize", "4294967295"}},
			params{blockSize: 1468, windowSize: 1, timeout: time.Second, oack: []Option{{"blksize", "1468"}}}},
		{"blksize leading zero", []Option{{"blksize", "01024"}},
			params{blockSize: 1024, windowSize: 1, timeout: time.Second, oack: []Option{{"blksize", "1024"}}}},
		{"blksize too small", []Option{{"blksize", "7"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"blksize=7"}}},
		{"blksize beyond 32 bits", []Option{{"blksize", "4294967296"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"blksize=4294967296"}}},
		{"blksize signed", []Option{{"blksize", "+1024"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"blksize=+1024"}}},
		{"blksize negative", []Option{{"blksize", "-1"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"blksize=-1"}}},
		{"blksize spaced", []Option{{"blksize", " 1024"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"blksize= 1024"}}},
		{"blksize empty", []Option{{"blksize", ""}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"blksize="}}},
		{"timeout", []Option{{"timeout", "255"}},
			params{blockSize: 512, windowSize: 1, timeout: 255 * time.Second, oack: []Option{{"timeout", "255"}}}},
		{"timeout 0", []Option{{"timeout", "0"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"timeout=0"}}},
		{"timeout 256", []Option{{"timeout", "256"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"timeout=256"}}},
		{"windowsize", []Option{{"windowsize", "8"}},
			params{blockSize: 512, windowSize: 8, timeout: time.Second, oack: []Option{{"windowsize", "8"}}}},
		{"windowsize capped", []Option{{"windowsize", "65535"}},
			params{blockSize: 512, windowSize: 16, timeout: time.Second, oack: []Option{{"windowsize", "16"}}}},
		{"windowsize 0", []Option{{"windowsize", "0"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"windowsize=0"}}},
		{"unknown", []Option{{"multicast", ""}, {"rollover", "0"}},
			params{blockSize: 512, windowSize: 1, timeout: time.Second, ignored: []string{"multicast=", "rollover=0"}}},
		{"all, in the client's order", []Option{{"windowsize", "4"}, {"tsize", "0"}, {"blksize", "1432"}, {"timeout", "3"}},
			params{blockSize: 1432, windowSize: 4, timeout: 3 * time.Second, tsize: true,
				oack: []Option{{"windowsize", "4"}, {"tsize", "123456"}, {"blksize", "1432"}, {"timeout", "3"}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := negotiate(tt.opts, 123456, lim); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("negotiate(%v) = %+v, want %+v", tt.opts, got, tt.want)
			}
		})
	}
}
