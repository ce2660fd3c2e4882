package build

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/builder/compress"
)

// TestBuildCompressed builds with --compress: the .img and .bmap stay,
// the compressed image is beside them, and bmaptool, which decompresses
// it with the format's own tool, flashes it to the raw image's bytes.
func TestBuildCompressed(t *testing.T) {
	f := newFixture(t)
	for _, c := range []compress.Format{compress.Zstd, compress.Xz} {
		t.Run(string(c), func(t *testing.T) {
			f.compress = c
			out := t.TempDir()
			res, err := f.build(t, out)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(out, "test-test-board.img"+c.Ext()); res.Compressed != want {
				t.Fatalf("Compressed = %q, want %s", res.Compressed, want)
			}
			for _, p := range []string{res.Image, res.Bmap, res.Compressed} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("the build left no %s: %v", p, err)
				}
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("the build left its work file %s", e.Name())
				}
			}
			if _, err := exec.LookPath("bmaptool"); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatal("bmaptool is not installed (builder/scripts/deps.sh installs it)")
				}
				t.Skip("bmaptool is not installed")
			}
			flashed := filepath.Join(t.TempDir(), "flashed.img")
			if b, err := exec.Command("bmaptool", "copy", "--bmap", res.Bmap, res.Compressed, flashed).CombinedOutput(); err != nil {
				t.Fatalf("bmaptool copy %s: %v\n%s", res.Compressed, err, b)
			}
			want, _ := os.ReadFile(res.Image)
			got, _ := os.ReadFile(flashed)
			if !bytes.Equal(got, want) {
				t.Errorf("bmaptool copy of %s differs from the raw image", filepath.Base(res.Compressed))
			}
		})
	}
}

func TestCheckCompress(t *testing.T) {
	for _, tc := range []struct {
		format  string
		c       compress.Format
		wantErr string
	}{
		{"raw", compress.None, ""},
		{"raw", compress.Zstd, ""},
		{"raw", compress.Xz, ""},
		{"oci", compress.None, ""},
		{"oci", compress.Zstd, "the oci format has none"},
		{"raw", "lz4", `compression "lz4" is not one Cairn writes`},
	} {
		err := CheckCompress(tc.format, tc.c)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("CheckCompress(%s, %q) = %v, want %q", tc.format, tc.c, err, tc.wantErr)
		}
	}
}
