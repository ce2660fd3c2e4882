package services

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRing(t *testing.T) {
	for _, tt := range []struct {
		name   string
		size   int
		writes []string
		want   string
	}{
		{"empty", 8, nil, ""},
		{"fits", 8, []string{"abc", "de"}, "abcde"},
		{"exact", 4, []string{"ab", "cd"}, "abcd"},
		{"drops oldest", 4, []string{"abc", "def"}, "cdef"},
		{"big write", 4, []string{"a", "0123456789"}, "6789"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(tt.size)
			for _, w := range tt.writes {
				r.Write([]byte(w))
			}
			if got := string(r.Bytes()); got != tt.want {
				t.Errorf("Bytes = %q, want %q", got, tt.want)
			}
			b, err := io.ReadAll(r.NewReader(false, 0))
			if err != nil || string(b) != tt.want {
				t.Errorf("ReadAll = %q, %v; want %q", b, err, tt.want)
			}
		})
	}
}

func TestRingFollow(t *testing.T) {
	r := NewRing(16)
	r.Write([]byte("old\n"))
	rd := r.NewReader(true, 0)
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(rd)
		got <- string(b)
	}()
	for i := range 3 {
		time.Sleep(10 * time.Millisecond)
		fmt.Fprintf(r, "n%d\n", i)
	}
	time.Sleep(20 * time.Millisecond)
	rd.Close()
	select {
	case s := <-got:
		if s != "old\nn0\nn1\nn2\n" {
			t.Errorf("followed %q", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not end a following Read")
	}
}

func TestRingReaderFallsBehind(t *testing.T) {
	r := NewRing(4)
	rd := r.NewReader(true, 0)
	r.Write([]byte("abcdefgh")) // the reader's start is gone: it skips ahead
	buf := make([]byte, 16)
	n, _ := rd.Read(buf)
	if got := string(buf[:n]); got != "efgh" {
		t.Errorf("Read = %q, want %q", got, "efgh")
	}
}

func TestRotatingFile(t *testing.T) {
	for _, tt := range []struct {
		name   string
		keep   int
		writes []string
		want   map[string]string // file suffix -> content; absent files: ""
	}{
		{"no rotation", 2, []string{"aaaa", "bbbb"}, map[string]string{"": "aaaabbbb", ".1": ""}},
		{"rotates", 2, []string{"aaaa", "bbbb", "cc"}, map[string]string{"": "cc", ".1": "aaaabbbb"}},
		{"drops oldest", 2, []string{"aaaaaaaa", "bbbbbbbb", "cccc"}, map[string]string{"": "cccc", ".1": "bbbbbbbb", ".2": ""}},
		{"keeps three", 3, []string{"aaaaaaaa", "bbbbbbbb", "cccc"}, map[string]string{"": "cccc", ".1": "bbbbbbbb", ".2": "aaaaaaaa"}},
		{"keep one", 1, []string{"aaaaaaaa", "bb"}, map[string]string{"": "bb", ".1": ""}},
		{"oversize write", 2, []string{"a", "0123456789ab"}, map[string]string{"": "0123456789ab", ".1": "a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "logs", "svc.log")
			w := &RotatingFile{Path: path, MaxSize: 8, Keep: tt.keep}
			for _, s := range tt.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			for suffix, want := range tt.want {
				b, err := os.ReadFile(path + suffix)
				if want == "" {
					if err == nil {
						t.Errorf("%s exists (%q), want none", filepath.Base(path+suffix), b)
					}
					continue
				}
				if string(b) != want {
					t.Errorf("%s = %q, want %q", filepath.Base(path+suffix), b, want)
				}
			}
		})
	}
}

func TestRotatingFileAppendsAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.log")
	w := &RotatingFile{Path: path, MaxSize: 8, Keep: 2}
	w.Write([]byte("aaaaaa"))
	w.Close()
	w = &RotatingFile{Path: path, MaxSize: 8, Keep: 2}
	w.Write([]byte("bbb")) // 6+3 > 8: the size on disk counts
	w.Close()
	got, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if string(got) != "bbb" || string(old) != "aaaaaa" {
		t.Errorf("files %q and %q, want %q and %q", got, old, "bbb", "aaaaaa")
	}
}

func TestRingTail(t *testing.T) {
	for _, tt := range []struct {
		name string
		kept string
		tail int
		want string
	}{
		{"all", "a\nb\nc\n", 0, "a\nb\nc\n"},
		{"last two", "a\nb\nc\n", 2, "b\nc\n"},
		{"last one, no final newline", "a\nb\nc", 1, "c"},
		{"more than kept", "a\nb\n", 5, "a\nb\n"},
		{"one long line", "abc", 1, "abc"},
		{"empty lines count", "a\n\n\n", 2, "\n\n"},
		{"nothing kept", "", 3, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(64)
			r.Write([]byte(tt.kept))
			b, err := io.ReadAll(r.NewReader(false, tt.tail))
			if err != nil || string(b) != tt.want {
				t.Errorf("tail %d of %q = %q, %v; want %q", tt.tail, tt.kept, b, err, tt.want)
			}
		})
	}
}
