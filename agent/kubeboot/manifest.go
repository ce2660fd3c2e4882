package kubeboot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// Object is one Kubernetes object of a manifest.
type Object struct {
	// APIVersion, Kind, Namespace and Name identify it.
	APIVersion, Kind, Namespace, Name string
	// Doc is the object as parsed, ready to be sent as JSON.
	Doc map[string]any
	// Line is where the object starts in its file.
	Line int
}

func (o Object) String() string {
	if o.Namespace != "" {
		return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Name)
}

// ParseManifest reads the objects of a manifest: YAML (or JSON) documents
// separated by ---, each an object with apiVersion, kind and metadata.name,
// or a kind List whose items are such objects. Empty documents are
// skipped. Errors name the line and what is missing.
func ParseManifest(data []byte) ([]Object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var objs []Object
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not YAML: %w", err)
		}
		if len(node.Content) == 0 || node.Content[0].Tag == "!!null" {
			continue
		}
		line := node.Content[0].Line
		var doc map[string]any
		if err := node.Decode(&doc); err != nil {
			return nil, fmt.Errorf("line %d: a manifest document must be a mapping (an object with apiVersion and kind)", line)
		}
		got, err := objects(doc, line)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
}

// objects checks one document and unpacks a List.
func objects(doc map[string]any, line int) ([]Object, error) {
	str := func(m map[string]any, key string) string {
		s, _ := m[key].(string)
		return s
	}
	apiVersion, kind := str(doc, "apiVersion"), str(doc, "kind")
	if apiVersion == "" || kind == "" {
		return nil, fmt.Errorf("line %d: document has no apiVersion or kind (every object needs both, e.g. apiVersion: v1, kind: ConfigMap)", line)
	}
	if strings.HasSuffix(kind, "List") {
		items, ok := doc["items"].([]any)
		if !ok {
			return nil, fmt.Errorf("line %d: %s has no items list", line, kind)
		}
		var objs []Object
		for _, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("line %d: an item of %s is not an object", line, kind)
			}
			got, err := objects(m, line)
			if err != nil {
				return nil, err
			}
			objs = append(objs, got...)
		}
		return objs, nil
	}
	meta, _ := doc["metadata"].(map[string]any)
	name := str(meta, "name")
	if name == "" {
		return nil, fmt.Errorf("line %d: %s has no metadata.name (generateName cannot be applied; give it a name)", line, kind)
	}
	return []Object{{APIVersion: apiVersion, Kind: kind, Namespace: str(meta, "namespace"), Name: name, Doc: doc, Line: line}}, nil
}
