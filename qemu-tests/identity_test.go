package qemutests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/builder/disk"
)

// pemKeyMarkers are what a private key in PEM looks like, whatever its kind.
var pemKeyMarkers = [][]byte{[]byte("-----BEGIN PRIVATE KEY-----"), []byte("-----BEGIN EC PRIVATE KEY-----"), []byte("-----BEGIN RSA PRIVATE KEY-----")}

// TestImageHoldsNoKey unpacks slot A and the ESP of the images the run
// built and looks for a private key in every file: the built images must
// have none; a provisioned one only its own node key, on its ESP.
func TestImageHoldsNoKey(t *testing.T) {
	share(t, 1)
	if _, err := exec.LookPath("unsquashfs"); err != nil {
		t.Skip("no unsquashfs (apt-get install squashfs-tools)")
	}
	check := func(t *testing.T, img string, wantESPKeys []string) {
		for _, part := range []string{disk.LabelA, disk.LabelESP} {
			tree := unpackPartition(t, img, part)
			var found []string
			filepath.WalkDir(tree, func(path string, d os.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				for _, m := range pemKeyMarkers {
					if bytes.Contains(b, m) {
						rel, _ := filepath.Rel(tree, path)
						found = append(found, rel)
						break
					}
				}
				return nil
			})
			want := []string(nil)
			if part == disk.LabelESP {
				want = wantESPKeys
			}
			if !slices.EqualFunc(found, want, strings.EqualFold) {
				t.Errorf("%s of %s: private keys in %v, want %v", part, filepath.Base(img), found, want)
			}
		}
	}
	t.Run("built", func(t *testing.T) { check(t, images["qemu-x86_64"], nil) })
	if servicesImage != nil {
		t.Run("provisioned", func(t *testing.T) { check(t, servicesImage.Image, []string{contract.NodeKeyFileName}) })
	}
}

// unpackPartition copies the files of the partition labelled label of img
// into a directory and returns it: unsquashfs for a slot, mtools for the ESP.
func unpackPartition(t *testing.T, img, label string) string {
	t.Helper()
	start := partitionStart(t, img, label)
	dir := filepath.Join(t.TempDir(), label)
	var cmd *exec.Cmd
	if label == disk.LabelESP {
		os.MkdirAll(dir, 0o755)
		cmd = exec.Command("mcopy", "-s", "-n", "-i", img+"@@"+strconv.FormatInt(start, 10), "::/", dir)
	} else {
		cmd = exec.Command("unsquashfs", "-no-progress", "-quiet", "-o", strconv.FormatInt(start, 10), "-d", dir, img)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return dir
}
