package compress

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testImage is a little more than two blocks of an image: text-like
// data, random data and zeros, so frames differ and the last is short.
func testImage(t testing.TB) []byte {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 2*BlockSize+12345)
	for i := 0; i < BlockSize/2; i++ {
		b[i] = "cairn edge os\n"[i%14]
	}
	for i := BlockSize; i < BlockSize+1<<20; i++ {
		b[i] = byte(rnd.Uint32())
	}
	copy(b[len(b)-5:], "tail!")
	return b
}

// needTool returns the path of an independent checker, skipping the test
// without it unless under CI, where its absence is a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed (builder/scripts/deps.sh installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	img := testImage(t)
	for _, tc := range []struct {
		f    Format
		tool string
	}{{Zstd, "zstd"}, {Xz, "xz"}} {
		t.Run(string(tc.f), func(t *testing.T) {
			var one, four bytes.Buffer
			if err := Write(context.Background(), &one, bytes.NewReader(img), tc.f, 1, nil); err != nil {
				t.Fatal(err)
			}
			var seen int
			if err := Write(context.Background(), &four, bytes.NewReader(img), tc.f, 4, func(n int) { seen += n }); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(one.Bytes(), four.Bytes()) {
				t.Fatalf("1 worker wrote %d bytes, 4 workers %d, or other bytes: the output depends on the cores", one.Len(), four.Len())
			}
			if seen != len(img) {
				t.Errorf("progress saw %d bytes, want %d", seen, len(img))
			}
			r, err := NewReader(bytes.NewReader(one.Bytes()), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Fatalf("decompressed %d bytes, not the %d of the image", len(got), len(img))
			}
			// The independent check: the format's own tool tests and
			// decompresses the concatenated frames (streams) as one file.
			tool := needTool(t, tc.tool)
			file := filepath.Join(t.TempDir(), "disk.img"+tc.f.Ext())
			os.WriteFile(file, one.Bytes(), 0o644)
			if out, err := exec.Command(tool, "-t", file).CombinedOutput(); err != nil {
				t.Fatalf("%s -t: %v\n%s", tc.tool, err, out)
			}
			out, err := exec.Command(tool, "-dc", file).Output()
			if err != nil {
				t.Fatalf("%s -dc: %v", tc.tool, err)
			}
			if !bytes.Equal(out, img) {
				t.Fatalf("%s -dc gave %d bytes, not the image's %d", tc.tool, len(out), len(img))
			}
		})
	}
}

func TestFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(src, []byte("small image"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := src + Zstd.Ext()
	if err := File(context.Background(), src, dst, Zstd); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(dst)
	defer f.Close()
	r, err := NewReader(f, Detect(dst))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(r); string(got) != "small image" {
		t.Errorf("got %q", got)
	}
}

func TestParseDetect(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Format
		wantErr bool
	}{{"", None, false}, {"zstd", Zstd, false}, {"xz", Xz, false}, {"gzip", None, true}, {"ZSTD", None, true}} {
		got, err := Parse(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("Parse(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	for name, want := range map[string]Format{"a.img": None, "a.img.zst": Zstd, "a.img.xz": Xz, "a.bmap": None} {
		if got := Detect(name); got != want {
			t.Errorf("Detect(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestCorrupt(t *testing.T) {
	for _, f := range []Format{Zstd, Xz} {
		var b bytes.Buffer
		if err := Write(context.Background(), &b, bytes.NewReader(bytes.Repeat([]byte("abc"), 1000)), f, 2, nil); err != nil {
			t.Fatal(err)
		}
		bad := b.Bytes()
		bad[len(bad)/2] ^= 0xff
		r, err := NewReader(bytes.NewReader(bad), f)
		if err == nil {
			_, err = io.ReadAll(r)
		}
		if err == nil {
			t.Errorf("%s: a corrupted file decompressed without an error", f)
		}
	}
}
