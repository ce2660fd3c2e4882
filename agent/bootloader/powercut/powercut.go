// Package powercut cuts the power under a boot-loader implementation in
// tests: FS wraps a bootloader.FS, counts the mutations made through it
// (with those of every other FS on the same Power) and, from the cut on,
// fails each with ErrCut and changes nothing.
//
//	p := &powercut.Power{Left: k} // cut after k mutations
//	esp := &powercut.FS{Inner: mem, Power: p, TornRename: true}
//	err := loader(esp).ArmTrial(slot) // errors.Is(err, powercut.ErrCut) once cut
//	// then boot what mem holds, and check it is a slot that was good
//
// A WriteFile, Remove or Overwrite is done whole or not at all, as the FS
// and Overwriter contracts say, except that TornRename makes a WriteFile
// over an existing file two mutations, a removal and a write, as a FAT
// rename is not atomic.
package powercut

import (
	"errors"
	"fmt"
	"io"

	"github.com/cairn-edge/cairn/agent/bootloader"
)

// ErrCut is the power going off.
var ErrCut = errors.New("power cut")

// Power is the supply of one or more FSes.
type Power struct {
	// Left is how many mutations are done before the cut; below 0, none
	// is cut.
	Left int
	// Log lists the mutations done, "write NAME", "remove NAME",
	// "overwrite NAME", with the FS's Label.
	Log []string
}

func (p *Power) use(op, label, name string) error {
	if p.Left == 0 {
		return ErrCut
	}
	p.Left--
	p.Log = append(p.Log, op+" "+label+name)
	return nil
}

// FS is Inner behind Power.
type FS struct {
	Inner bootloader.FS
	Power *Power
	// Label prefixes the names in Power.Log ("BOOT-A/"), for a Power
	// behind several FSes.
	Label string
	// TornRename makes a WriteFile over an existing file a removal and a
	// write.
	TornRename bool
	// OnOverwrite, if set, sees each overwrite's old and new content
	// before it is done or cut.
	OnOverwrite func(name string, old, new []byte)
}

// ReadDir implements bootloader.FS.
func (f *FS) ReadDir(dir string) ([]string, error) { return f.Inner.ReadDir(dir) }

// ReadFile implements bootloader.FS.
func (f *FS) ReadFile(name string) ([]byte, error) { return f.Inner.ReadFile(name) }

// WriteFile implements bootloader.FS.
func (f *FS) WriteFile(name string, r io.Reader) error {
	if _, err := f.Inner.ReadFile(name); err == nil && f.TornRename {
		if err := f.Remove(name); err != nil {
			return err
		}
	}
	if err := f.Power.use("write", f.Label, name); err != nil {
		return err
	}
	return f.Inner.WriteFile(name, r)
}

// Remove implements bootloader.FS; removing a missing file changes
// nothing, so it is no mutation.
func (f *FS) Remove(name string) error {
	if _, err := f.Inner.ReadFile(name); err != nil {
		return f.Inner.Remove(name)
	}
	if err := f.Power.use("remove", f.Label, name); err != nil {
		return err
	}
	return f.Inner.Remove(name)
}

// Overwrite implements bootloader.Overwriter, if Inner does.
func (f *FS) Overwrite(name string, data []byte) error {
	o, ok := f.Inner.(bootloader.Overwriter)
	if !ok {
		return fmt.Errorf("overwriting %s: %T cannot overwrite in place", name, f.Inner)
	}
	if old, err := f.Inner.ReadFile(name); err == nil && f.OnOverwrite != nil {
		f.OnOverwrite(name, old, data)
	}
	if err := f.Power.use("overwrite", f.Label, name); err != nil {
		return err
	}
	return o.Overwrite(name, data)
}
