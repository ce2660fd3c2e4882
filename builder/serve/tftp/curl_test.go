package tftp

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCurl fetches files with a real client, curl, in its default mode
// (tsize and blksize options), with a larger block and without options.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed: cannot test with a real TFTP client")
	}
	if out, err := exec.Command(curl, "--version").Output(); err != nil || !strings.Contains(string(out), "tftp") {
		t.Skipf("curl has no tftp support (curl --version: %s): cannot test with a real TFTP client", out)
	}
	dir := t.TempDir()
	want := writeFile(t, dir, "vmlinuz", 300_000)
	writeFile(t, dir, "exact", 4*512)
	ts := startServer(t, dir, nil)
	for _, tt := range []struct {
		name string
		file string
		args []string
	}{
		{"default", "vmlinuz", nil},
		{"blksize 1468", "vmlinuz", []string{"--tftp-blksize", "1468"}},
		{"blksize capped", "vmlinuz", []string{"--tftp-blksize", "8192"}},
		{"no options", "vmlinuz", []string{"--tftp-no-options"}},
		{"leading slash", "/vmlinuz", nil},
		{"multiple of the block size", "exact", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			// curl sends the URL's path without its first slash.
			url := fmt.Sprintf("tftp://%s/%s", ts.addr, tt.file)
			args := append([]string{"--silent", "--show-error", "--max-time", "30", "--output", out}, tt.args...)
			if b, err := exec.CommandContext(t.Context(), curl, append(args, url)...).CombinedOutput(); err != nil {
				t.Fatalf("curl %s: %v\n%s", url, err, b)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			wantFile := want
			if tt.file == "exact" {
				wantFile, _ = os.ReadFile(filepath.Join(dir, "exact"))
			}
			if sha256.Sum256(got) != sha256.Sum256(wantFile) {
				t.Errorf("curl got %d bytes, not the %d of %s", len(got), len(wantFile), tt.file)
			}
			tr := ts.next(t)
			if tr.Err != nil || tr.Bytes != int64(len(wantFile)) {
				t.Errorf("transfer %v", tr)
			}
			t.Logf("%v", tr)
		})
	}
	if t.Failed() {
		return
	}
	// curl reports a refusal as an error, and receives nothing.
	out := filepath.Join(t.TempDir(), "out")
	b, err := exec.CommandContext(t.Context(), curl, "--silent", "--show-error", "--max-time", "30", "--output", out,
		fmt.Sprintf("tftp://%s/missing", ts.addr)).CombinedOutput()
	// Exit status 68 is curl's "TFTP: file not found" (CURLE_TFTP_NOTFOUND).
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 68 {
		t.Errorf("curl on a missing file: %v, want exit status 68 (file not found)\n%s", err, b)
	}
	if fi, err := os.Stat(out); err == nil && fi.Size() > 0 {
		t.Errorf("curl wrote %d bytes for a missing file", fi.Size())
	}
	t.Logf("curl on a missing file: %s", b)
	if tr := ts.next(t); tr.Err == nil {
		t.Errorf("transfer of a missing file %v", tr)
	}
}
