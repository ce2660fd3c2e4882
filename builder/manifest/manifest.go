// Package manifest checks and gathers the Kubernetes manifests an image
// spec bakes into the slot (kubernetes.manifests): files, or directories of
// *.yaml, *.yml and *.json files, each a stream of YAML documents that are
// Kubernetes objects (an apiVersion and a kind). A node applies them in file
// name order, so Collect numbers them in a stable order.
//
// The files are untrusted input (anyone's YAML): Check parses them into
// yaml.v3 nodes without decoding into types or expanding aliases, and
// FuzzCheck keeps it from panicking.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Extensions are the file name endings Collect takes from a directory.
var Extensions = []string{".yaml", ".yml", ".json"}

// File is a manifest ready for the slot.
type File struct {
	// Name is the slot file name: NN-<basename>, NN giving the order.
	Name string
	// Source is the file it was read from.
	Source string
	// Data is its content, checked.
	Data []byte
}

// Collect reads the manifests named by paths (files, or directories whose
// *.yaml, *.yml and *.json files are taken in name order, not recursing),
// checks every document, and names them NN-<basename> in that order:
// paths in the order given. from names the setting for errors about a path
// itself (e.g. "images/k8s.yaml:12").
func Collect(paths []string, from func(i int) string) ([]File, error) {
	var sources []string
	for i, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: kubernetes.manifests entry %s cannot be read: %v (give a file or directory relative to the spec)", from(i), p, err)
		}
		if !st.IsDir() {
			sources = append(sources, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("%s: kubernetes.manifests directory %s: %v", from(i), p, err)
		}
		n := 0
		for _, e := range entries { // ReadDir sorts by name
			if e.Type().IsRegular() && slices.Contains(Extensions, strings.ToLower(filepath.Ext(e.Name()))) {
				sources = append(sources, filepath.Join(p, e.Name()))
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: kubernetes.manifests directory %s holds no %s files (put manifests there or drop the entry)", from(i), p, strings.Join(Extensions, ", "))
		}
	}
	width := max(2, len(strconv.Itoa(len(sources)-1)))
	files := make([]File, 0, len(sources))
	for i, src := range sources {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %v", src, err)
		}
		if err := Check(src, data); err != nil {
			return nil, err
		}
		files = append(files, File{Name: fmt.Sprintf("%0*d-%s", width, i, filepath.Base(src)), Source: src, Data: data})
	}
	return files, nil
}

// Check parses data as a stream of YAML (or JSON) documents and requires
// each non-empty one to be a mapping with string apiVersion and kind. Errors
// read "file:line: problem (the fix)". A file of only empty documents is an
// error too: it would deploy nothing.
func Check(file string, data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	objects := 0
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s:%s (fix the YAML syntax)", file, located(err))
		}
		if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
			continue // an empty document, e.g. after a trailing ---
		}
		root := n.Content[0]
		if root.Kind != yaml.MappingNode {
			return fmt.Errorf("%s:%d: document %d is not a mapping: every Kubernetes object is a mapping with apiVersion and kind", file, root.Line, doc)
		}
		for _, key := range []string{"apiVersion", "kind"} {
			v := value(root, key)
			if v == nil {
				return fmt.Errorf("%s:%d: document %d has no %s: every Kubernetes object needs apiVersion and kind (e.g. apiVersion: v1, kind: ConfigMap)", file, root.Line, doc, key)
			}
			if v.Kind != yaml.ScalarNode || v.Tag != "!!str" || strings.TrimSpace(v.Value) == "" {
				return fmt.Errorf("%s:%d: document %d: %s must be a non-empty string (e.g. apiVersion: apps/v1, kind: Deployment)", file, v.Line, doc, key)
			}
		}
		objects++
	}
	if objects == 0 {
		return fmt.Errorf("%s: holds no Kubernetes objects (add one, or drop the file)", file)
	}
	return nil
}

// value returns the value node of key in the mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). For them yaml.v3 v3.0.1 prints the 0-based line of the
// construct that failed; for scanner errors the 1-based line.
var parserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// located turns yaml.v3's "yaml: line 3: problem" into "3: problem", with
// the 1-based line. yaml.v3 leaves the line out when it is the first one.
func located(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		for _, p := range parserProblems {
			if strings.HasPrefix(msg, p) {
				line++
				break
			}
		}
	}
	return strconv.Itoa(line) + ": " + msg
}
