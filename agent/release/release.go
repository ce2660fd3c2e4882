// Package release reads /etc/cairn/release, the identity of a slot image
// written by the builder: one KEY=value per line.
//
//	NAME=minimal
//	VERSION=0.1.0
//	BOARD=qemu-x86_64
//	ARCH=amd64
package release

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cairn-edge/cairn/agent/contract"
)

// Path is where the release file lives in a slot image.
const Path = contract.ReleaseFile

// Release is the identity of the running slot image.
type Release struct {
	Name    string // image name from images/<name>.yaml
	Version string // image version, printed on the console
	Board   string // board the image was built for
	Arch    string // GOARCH of the image
}

// maxSize bounds what Parse reads; a real file is under 100 bytes.
const maxSize = 64 << 10

// Parse reads a release file. Blank lines and lines starting with '#' are
// skipped, values may be wrapped in double quotes, unknown keys are
// ignored so newer builders can add fields. NAME and VERSION are required.
func Parse(r io.Reader) (Release, error) {
	var rel Release
	sc := bufio.NewScanner(io.LimitReader(r, maxSize))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return Release{}, fmt.Errorf("release line %d: %q is not KEY=value", n, trunc(line))
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		switch strings.TrimSpace(key) {
		case "NAME":
			rel.Name = val
		case "VERSION":
			rel.Version = val
		case "BOARD":
			rel.Board = val
		case "ARCH":
			rel.Arch = val
		}
	}
	if err := sc.Err(); err != nil {
		return Release{}, fmt.Errorf("reading release: %w", err)
	}
	if rel.Name == "" || rel.Version == "" {
		return Release{}, fmt.Errorf("release has no NAME= or VERSION= line (the slot image is incomplete; rebuild it)")
	}
	if strings.ContainsAny(rel.Version, " \t") {
		return Release{}, fmt.Errorf("release VERSION=%q contains whitespace (rebuild the image with a plain version)", trunc(rel.Version))
	}
	return rel, nil
}

// Read parses the release file at path.
func Read(path string) (Release, error) {
	f, err := os.Open(path)
	if err != nil {
		return Release{}, err
	}
	defer f.Close()
	rel, err := Parse(f)
	if err != nil {
		return Release{}, fmt.Errorf("%s: %w", path, err)
	}
	return rel, nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
