package chunk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// random returns n reproducible pseudo-random bytes.
func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// TestStable pins the gear table and the cut points. If it fails, the
// chunker changed: indexes already pushed would no longer line up with
// what agents compute, so bump Chunker instead of updating the figures.
func TestStable(t *testing.T) {
	if got, want := gear[0], uint64(0); got == want {
		t.Fatal("gear table not initialised")
	}
	ix, err := Build(bytes.NewReader(random(1, 4<<20)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ix.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	got := hex.EncodeToString(sum[:8]) + " " + hex.EncodeToString(func() []byte {
		x := gear[255]
		return []byte{byte(x >> 56), byte(x >> 48), byte(x >> 40), byte(x >> 32)}
	}())
	t.Logf("%d chunks; index %s", len(ix.Chunks), got)
	const want = "9e101bb1040987ea def37a77"
	if got != want {
		t.Errorf("chunker output = %s, want %s (the chunker changed: bump Chunker)", got, want)
	}
}

func TestBuildSizes(t *testing.T) {
	data := random(2, 16<<20)
	ix, err := Build(iotest.OneByteReader(bytes.NewReader(data[:1<<20])))
	if err != nil {
		t.Fatal(err)
	}
	ix2, _ := Build(bytes.NewReader(data[:1<<20]))
	if len(ix.Chunks) != len(ix2.Chunks) || ix.Chunks[len(ix.Chunks)-1] != ix2.Chunks[len(ix2.Chunks)-1] {
		t.Fatal("chunks depend on how the reader splits its reads")
	}
	ix, err = Build(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.check(-1); err != nil {
		t.Fatal(err)
	}
	for _, c := range ix.Chunks {
		if !bytes.Equal(sumOf(data[c.Offset:c.End()]), c.Sum[:]) {
			t.Fatalf("chunk at %d: wrong hash", c.Offset)
		}
	}
	mean := ix.Size / int64(len(ix.Chunks))
	t.Logf("%d chunks, mean %d bytes", len(ix.Chunks), mean)
	if mean < DefaultAvgSize/2 || mean > DefaultAvgSize*2 {
		t.Errorf("mean chunk size %d, want near %d", mean, DefaultAvgSize)
	}
	// Zeros never cut on content: every chunk is MaxSize.
	ix, _ = Build(bytes.NewReader(make([]byte, 3*DefaultMaxSize+5)))
	if len(ix.Chunks) != 4 || ix.Chunks[3].Length != 5 {
		t.Errorf("zeros: %+v", ix.Chunks)
	}
	for _, n := range []int{0, 1, DefaultMinSize, DefaultMinSize + 1} {
		ix, err := Build(bytes.NewReader(data[:n]))
		if err != nil || ix.Size != int64(n) || ix.check(int64(n)) != nil {
			t.Errorf("Build(%d bytes) = %+v, %v", n, ix, err)
		}
	}
}

func sumOf(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func TestMarshalParse(t *testing.T) {
	ix, _ := Build(bytes.NewReader(random(3, 1<<20)))
	b, err := ix.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n != len(ix.Chunks)+2 {
		t.Errorf("%d lines for %d chunks, want one a chunk", n, len(ix.Chunks))
	}
	got, err := Parse(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := got.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("Marshal(Parse(b)) != b")
	}
	if _, err := Parse(b, 1<<20-1); err == nil || !strings.Contains(err.Error(), "slot partition") {
		t.Errorf("size cap: %v", err)
	}
}

func TestParseHostile(t *testing.T) {
	const h = `"0000000000000000000000000000000000000000000000000000000000000000"`
	head := `{"chunker":"gear-v1","size":%s,"minSize":16384,"avgSize":65536,"maxSize":262144,"chunks":[%s]}`
	c := func(off, n string) string { return `{"off":` + off + `,"len":` + n + `,"sha256":` + h + `}` }
	for _, tc := range []struct {
		name, size, chunks, want string
	}{
		{"valid", "20000", c("0", "20000"), ""},
		{"empty", "0", "", ""},
		{"gap", "40000", c("0", "20000") + "," + c("20001", "19999"), "contiguous"},
		{"not from 0", "20000", c("1", "20000"), "contiguous"},
		{"short middle", "30000", c("0", "10000") + "," + c("10000", "20000"), "outside"},
		{"too long", "300000", c("0", "300000"), "outside"},
		{"zero last", "20000", c("0", "20000") + "," + c("20000", "0"), "outside"},
		{"negative", "20000", c("0", "-5"), "outside"},
		{"sum short", "20001", c("0", "20000"), "add up"},
		{"size over cap", "2000000", c("0", "20000"), "slot partition"},
		{"negative size", "-1", "", "negative"},
		{"bad hash", "20000", strings.Replace(c("0", "20000"), "0000\"", "000G\"", 1), "hex"},
		{"upper hash", "20000", strings.Replace(c("0", "20000"), "0000\"", "000A\"", 1), "hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(strings.Replace(head, "%s", tc.size, 1), "%s", tc.chunks, 1)), 1<<20)
			if tc.want == "" && err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Parse = %v, want an error with %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, body, want string }{
		{"other chunker", `{"chunker":"fastcdc","size":0,"minSize":16384,"avgSize":65536,"maxSize":262144,"chunks":[]}`, "not supported"},
		{"avg not power of two", `{"chunker":"gear-v1","size":0,"minSize":16384,"avgSize":65535,"maxSize":262144,"chunks":[]}`, "power of two"},
		{"huge max", `{"chunker":"gear-v1","size":0,"minSize":16384,"avgSize":65536,"maxSize":1073741824,"chunks":[]}`, "outside"},
		{"unknown field", `{"chunker":"gear-v1","size":0,"minSize":16384,"avgSize":65536,"maxSize":262144,"chunks":[],"x":1}`, "unknown field"},
		{"trailing", `{"chunker":"gear-v1","size":0,"minSize":16384,"avgSize":65536,"maxSize":262144,"chunks":[]} {}`, "after"},
		{"not json", `slot`, "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.body), 1<<20); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	ix, _ := BuildWith(bytes.NewReader(random(4, 64<<10)), Params{MinSize: 1 << 10, AvgSize: 4 << 10, MaxSize: 16 << 10})
	b, _ := ix.Marshal()
	f.Add(b)
	f.Add([]byte(`{"chunker":"gear-v1","size":0,"minSize":16384,"avgSize":65536,"maxSize":262144,"chunks":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := Parse(b, 1<<30)
		if err != nil {
			return
		}
		if err := ix.check(1 << 30); err != nil {
			t.Fatalf("Parse accepted an index that fails its check: %v", err)
		}
		out, err := ix.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed index: %v", err)
		}
		if _, err := Parse(out, 1<<30); err != nil {
			t.Fatalf("Parse(Marshal(ix)): %v", err)
		}
	})
}
