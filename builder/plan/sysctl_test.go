package plan

import (
	"io"
	"testing"

	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/spec"
)

func TestPlanSysctl(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     string // the file, or "" for none
	}{
		{"none", nil, ""},
		{"sorted", map[string]string{"vm.swappiness": "10", "net.core.somaxconn": "1024"},
			"# Kernel settings of this image (the spec's sysctl section); cairn-init applies them at boot.\nnet.core.somaxconn = 1024\nvm.swappiness = 10\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := fstree.New()
			if err := planSysctl(tree, &spec.Image{Spec: &spec.Spec{Sysctl: tc.settings}}); err != nil {
				t.Fatal(err)
			}
			e, ok := tree.Get("etc/cairn/sysctl.conf")
			if tc.want == "" {
				if ok {
					t.Error("an image without settings got etc/cairn/sysctl.conf")
				}
				return
			}
			if !ok {
				t.Fatal("no etc/cairn/sysctl.conf")
			}
			r, err := e.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, _ := io.ReadAll(r)
			if string(got) != tc.want {
				t.Errorf("sysctl.conf =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
