package bootloader

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// CheckFiles checks board files (BootFiles.Files) before an install
// writes any: each a relative slash-separated path, not dot-named (the
// boot media's temporary files are), not one of the names the loader
// writes itself (reserved, in lower case), with content, and no two of
// them one file on FAT, which ignores case. The error names the file.
func CheckFiles(files []File, reserved map[string]bool) error {
	byFATName := map[string]string{}
	for _, f := range files {
		fat := strings.ToLower(f.Name)
		problem := ""
		switch other, dup := byFATName[fat]; {
		case !fs.ValidPath(f.Name) || f.Name == ".":
			problem = "is not a relative slash-separated path"
		case strings.HasPrefix(path.Base(f.Name), "."):
			problem = "is dot-named, as the boot media's temporary files are"
		case reserved[fat]:
			problem = "is a file Install writes itself; leave it out"
		case dup:
			return fmt.Errorf("board files %q and %q are one file on FAT, which ignores case", other, f.Name)
		case f.Data == nil:
			problem = "has no content (set its Data)"
		}
		if problem != "" {
			return fmt.Errorf("board file %q %s", f.Name, problem)
		}
		byFATName[fat] = f.Name
	}
	return nil
}
