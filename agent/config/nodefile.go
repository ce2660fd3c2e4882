package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"gopkg.in/yaml.v3"
)

// maxNodeFile bounds what ParseNodeFile reads; the file is a few lines.
const maxNodeFile = 64 << 10

// ParseNodeFile decodes a per-node override file: the fields of [Network]
// (hostname, interfaces, dns), strictly (unknown keys are errors, so a
// typo does not silently fall back to the image's settings), and
// validates it. The file is untrusted input (anyone with the SD card
// writes it): ParseNodeFile never panics. A UTF-8 byte order mark and
// CRLF line ends, as Windows editors write them, are accepted.
func ParseNodeFile(data []byte) (Network, error) {
	var c Network
	if len(data) > maxNodeFile {
		return Network{}, fmt.Errorf("%d bytes, more than the %d accepted", len(data), maxNodeFile)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); errors.Is(err, io.EOF) {
		return Network{}, nil // comments only
	} else if err != nil {
		return Network{}, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Network{}, errors.New("more than one YAML document (remove the '---' separator)")
	}
	if err := c.Validate(); err != nil {
		return Network{}, err
	}
	return c, nil
}

// MergeNode returns base with the fields set in node put over it: hostname
// and dns replace the image's when given; an interface entry replaces the
// image's entry of the same name, and entries with new names come first,
// so a node's "eth0" wins over the image's "eth*". When base lists no
// interfaces (DHCP on every ethernet link) and node lists some, node's
// list is the whole list.
func MergeNode(base, node Network) Network {
	out := base
	if node.Hostname != "" {
		out.Hostname = node.Hostname
	}
	if len(node.DNS) > 0 {
		out.DNS = append([]string(nil), node.DNS...)
	}
	if len(node.Interfaces) > 0 {
		var ifs []Interface
		replaced := map[string]bool{}
		for _, in := range node.Interfaces {
			replaced[in.Name] = true
		}
		var added []Interface
		for _, in := range node.Interfaces {
			if !hasName(base.Interfaces, in.Name) {
				added = append(added, in)
			}
		}
		ifs = append(ifs, added...)
		for _, in := range base.Interfaces {
			if replaced[in.Name] {
				in = nodeEntry(node.Interfaces, in.Name)
			}
			ifs = append(ifs, in)
		}
		out.Interfaces = ifs
	}
	return out
}

func hasName(ifs []Interface, name string) bool {
	for _, in := range ifs {
		if in.Name == name {
			return true
		}
	}
	return false
}

func nodeEntry(ifs []Interface, name string) Interface {
	for _, in := range ifs {
		if in.Name == name {
			return in
		}
	}
	return Interface{}
}

// readFile is the seam tests use instead of the boot partition.
var readFile = os.ReadFile

// ApplyNodeFile reads the per-node override at path and merges it over
// base. A missing file is not an error: base is returned. A file that
// cannot be read, does not parse, or makes the merged configuration
// invalid is ignored: base is returned with an error for the console
// (print it as "cairn: warning: <err>"), and one line is logged.
func ApplyNodeFile(base Network, path string, log *slog.Logger) (Network, error) {
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return base, nil
	}
	if err == nil {
		var node Network
		node, err = ParseNodeFile(data)
		if err == nil {
			merged := MergeNode(base, node)
			if err = merged.Validate(); err == nil {
				return merged, nil
			}
		}
	}
	cause := flatten(err)
	if log != nil {
		log.Warn("node file ignored, using the image's network settings", "path", path, "err", cause)
	}
	return base, fmt.Errorf("node file %s ignored, using the image's network settings: %w", path, cause)
}

// flatten puts errors.Join's lines on one line, for the console contract.
func flatten(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(string(bytes.ReplaceAll([]byte(err.Error()), []byte("\n"), []byte("; "))))
}
