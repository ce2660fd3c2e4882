package spec

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// lines maps a dotted key path ("disk.slotSize", "kernel.modules[2]") to the
// line it stands on, so that validation errors can point at the file.
type lines map[string]int

// decodeStrict decodes one YAML document into v. Unknown and duplicate keys,
// wrong types and syntax errors are all reported as "file:line: problem".
func decodeStrict(file string, data []byte, v any) (lines, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, located(file, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty (see images/minimal.yaml or boards/qemu-x86_64.yaml for an example)", file)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the document must be a mapping of keys to values", file, root.Line)
	}
	ls := lines{"": root.Line}
	if err := checkKeys(file, root, reflect.TypeOf(v).Elem(), "", ls); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return nil, located(file, err)
	}
	return ls, nil
}

var lineRE = regexp.MustCompile(`line (\d+): `)

// located prefixes a yaml.v3 error with the file, as "file:line: problem".
func located(file string, err error) error {
	msg := yamlMessage(err)
	if msg != "" && msg[0] >= '0' && msg[0] <= '9' {
		return fmt.Errorf("%s:%s", file, msg)
	}
	return fmt.Errorf("%s: %s", file, msg)
}

// yamlMessage turns yaml.v3's "yaml: unmarshal errors:\n  line 3: x" into "3: x".
func yamlMessage(err error) string {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if loc := lineRE.FindStringSubmatchIndex(m); loc != nil {
			m = m[loc[2]:loc[3]] + ": " + m[:loc[0]] + m[loc[1]:]
		}
		msgs[i] = strings.ReplaceAll(m, "!!str", "a string")
	}
	return strings.Join(msgs, "; ")
}

// checkKeys walks a mapping node against the struct type t, rejecting keys
// that have no field and keys given twice, and records every key's line.
func checkKeys(file string, n *yaml.Node, t reflect.Type, path string, ls lines) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeOf(Size(0)) {
			return nil // the decoder reports the type mismatch
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("%s:%d: unknown key %q%s (known keys: %s)", file, k.Line, k.Value, inWhere(path), strings.Join(sortedKeys(fields), ", "))
			}
			if seen[k.Value] {
				return fmt.Errorf("%s:%d: key %q is given twice%s: keep one", file, k.Line, k.Value, inWhere(path))
			}
			seen[k.Value] = true
			ls[sub] = k.Line
			if err := checkKeys(file, val, f.Type, sub, ls); err != nil {
				return err
			}
		}
	case reflect.Map:
		// Free-form keys (sysctl): only their lines, for errors.
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			ls[join(path, n.Content[i].Value)] = n.Content[i].Line
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			sub := path + "[" + strconv.Itoa(i) + "]"
			ls[sub] = item.Line
			if err := checkKeys(file, item, t.Elem(), sub, ls); err != nil {
				return err
			}
		}
	}
	return nil
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = f
	}
	return out
}

func sortedKeys(m map[string]reflect.StructField) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func inWhere(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

// at returns "file:line" for a key path, falling back to the closest parent.
func (ls lines) at(file, path string) string {
	for p := path; ; {
		if l, ok := ls[p]; ok {
			return file + ":" + strconv.Itoa(l)
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			if l, ok := ls[""]; ok && p != "" {
				return file + ":" + strconv.Itoa(l)
			}
			return file
		}
		p = p[:i]
	}
}
