package plan

import (
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/sysctl"
	"github.com/cairn-edge/cairn/builder/fstree"
	"github.com/cairn-edge/cairn/builder/spec"
)

// planSysctl puts the spec's kernel settings into the slot as
// etc/cairn/sysctl.conf, for cairn-init to apply at boot; an image without
// settings has no file.
func planSysctl(t *fstree.Tree, img *spec.Image) error {
	if len(img.Spec.Sysctl) == 0 {
		return nil
	}
	return t.File(contract.SlotPath(contract.SysctlFile), 0o644, sysctl.Format(sysctl.FromMap(img.Spec.Sysctl)))
}
