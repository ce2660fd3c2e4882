package update

import (
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"time"

	"github.com/cairn-edge/cairn/agent/atomicfile"
	"github.com/cairn-edge/cairn/agent/contract"
	"github.com/cairn-edge/cairn/agent/update/artifact"
)

// Phase is where an upgrade attempt is. The record on CAIRN-DATA holds the
// phase last reached; docs/upgrades.md has the state machine.
type Phase string

// The phases, in the order an attempt goes through them.
const (
	// PhaseNone: no attempt on record.
	PhaseNone Phase = ""
	// PhaseBootFiles: writing the target slot's kernel and initramfs on
	// the ESP (which first makes the slot unbootable).
	PhaseBootFiles Phase = "boot files"
	// PhaseDownloading: streaming the slot image into its partition.
	PhaseDownloading Phase = "downloading"
	// PhaseVerifying: reading the partition back and hashing it.
	PhaseVerifying Phase = "verifying"
	// PhaseArmed: the trial boot is armed; the node reboots into it.
	PhaseArmed Phase = "armed"
	// PhaseTrial: the trial boot runs the health gate.
	PhaseTrial Phase = "trial"
	// PhaseGateFailed: the gate failed; the trial slot is marked bad and
	// the node reboots into the old slot.
	PhaseGateFailed Phase = "gate failed"
	// PhaseCommitted: the new slot is the default. An end state.
	PhaseCommitted Phase = "committed"
	// PhaseRolledBack: the node runs the old slot again. An end state.
	PhaseRolledBack Phase = "rolled back"
	// PhaseFailed: the attempt stopped before the reboot (a download that
	// gave up, a slot that did not verify); the running slot is the
	// default, as before. An end state.
	PhaseFailed Phase = "failed"
)

var phases = map[Phase]bool{PhaseNone: true, PhaseBootFiles: true, PhaseDownloading: true, PhaseVerifying: true,
	PhaseArmed: true, PhaseTrial: true, PhaseGateFailed: true, PhaseCommitted: true, PhaseRolledBack: true, PhaseFailed: true}

// Ended reports whether p is an end state (or no attempt).
func (p Phase) Ended() bool {
	return p == PhaseNone || p == PhaseCommitted || p == PhaseRolledBack || p == PhaseFailed
}

// staging reports whether p is before the reboot into the trial.
func (p Phase) staging() bool {
	return p == PhaseBootFiles || p == PhaseDownloading || p == PhaseVerifying
}

// Record is the upgrade's state on CAIRN-DATA (contract.UpdateRecord),
// replaced atomically at each phase: the current or last attempt, and what
// the node learned from earlier ones.
type Record struct {
	Phase Phase `json:"phase"`
	// Ref is the reference asked for; Repo the repository it names.
	Ref  string `json:"ref,omitempty"`
	Repo string `json:"repo,omitempty"`
	// Digest is the artifact's manifest digest.
	Digest string `json:"digest,omitempty"`
	// Version and Slot are the new release and the slot it goes to.
	Version string        `json:"version,omitempty"`
	Slot    contract.Slot `json:"slot,omitempty"`
	// FromVersion and FromSlot are the release that ran when it began.
	FromVersion string        `json:"fromVersion,omitempty"`
	FromSlot    contract.Slot `json:"fromSlot,omitempty"`
	// Reason says why an attempt failed or rolled back.
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Checkpoint is how far the slot download got, for a resume.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Rejected are artifact digests that rolled back: not tried again
	// unless forced.
	Rejected []string `json:"rejected,omitempty"`
}

// Checkpoint is a resumable point of a slot download: Written bytes of
// the blob Blob are in the partition of slot Slot, and Hash is the SHA-256
// state after them. A resume re-reads and re-hashes those bytes from the
// partition and goes on only if the state matches: the disk is verified,
// not trusted.
type Checkpoint struct {
	Blob    string        `json:"blob"`
	Slot    contract.Slot `json:"slot"`
	Written int64         `json:"written"`
	Hash    []byte        `json:"hash"`
}

// maxRecord bounds the record file.
const maxRecord = 256 << 10

// maxRejected bounds how many rolled-back digests are remembered.
const maxRejected = 64

// ParseRecord decodes and checks a record file. Its content comes from
// our own disk, but a cut or a bad sector can leave anything there.
func ParseRecord(b []byte) (*Record, error) {
	if len(b) > maxRecord {
		return nil, fmt.Errorf("upgrade record is %d bytes, more than %d", len(b), maxRecord)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("upgrade record is not JSON: %v", err)
	}
	if !phases[r.Phase] {
		return nil, fmt.Errorf("upgrade record has unknown phase %q", r.Phase)
	}
	for _, s := range []contract.Slot{r.Slot, r.FromSlot} {
		if s != "" {
			if _, err := contract.ParseSlot(string(s)); err != nil {
				return nil, fmt.Errorf("upgrade record: %v", err)
			}
		}
	}
	if r.Digest != "" && !artifact.ValidDigest(r.Digest) {
		return nil, fmt.Errorf("upgrade record: digest %q is not sha256:<hex>", r.Digest)
	}
	if !r.Phase.Ended() && (r.Digest == "" || r.Slot == "") {
		return nil, fmt.Errorf("upgrade record: phase %q without a digest and slot", r.Phase)
	}
	if len(r.Rejected) > maxRejected {
		r.Rejected = r.Rejected[len(r.Rejected)-maxRejected:]
	}
	if c := r.Checkpoint; c != nil {
		if !artifact.ValidDigest(c.Blob) || c.Written < 0 {
			return nil, fmt.Errorf("upgrade record: checkpoint of blob %q at %d is not valid", c.Blob, c.Written)
		}
		if _, err := contract.ParseSlot(string(c.Slot)); err != nil {
			return nil, fmt.Errorf("upgrade record: checkpoint: %v", err)
		}
		if _, err := resumeHash(c.Hash); err != nil {
			return nil, fmt.Errorf("upgrade record: checkpoint: %v", err)
		}
	}
	return &r, nil
}

// loadRecord reads the record at path; a missing file is no attempt, a
// damaged one is reported and treated as none (the boot loader's state,
// not this file, decides what boots).
func loadRecord(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Record{}, nil
	}
	if err != nil {
		return &Record{}, err
	}
	r, err := ParseRecord(b)
	if err != nil {
		return &Record{}, err
	}
	return r, nil
}

// save replaces the record at path, durably.
func (r *Record) save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the upgrade record %s: %w (is CAIRN-DATA full or read-only?)", path, err)
	}
	return nil
}

// rejected reports whether digest rolled back before.
func (r *Record) rejected(digest string) bool {
	for _, d := range r.Rejected {
		if d == digest {
			return true
		}
	}
	return false
}

// reject remembers digest as rolled back.
func (r *Record) reject(digest string) {
	if digest == "" || r.rejected(digest) {
		return
	}
	r.Rejected = append(r.Rejected, digest)
	if len(r.Rejected) > maxRejected {
		r.Rejected = r.Rejected[1:]
	}
}

// hashState is a SHA-256 state for a checkpoint.
func hashState(h hash.Hash) []byte {
	b, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	return b
}

// resumeHash is a SHA-256 hash continued from a checkpoint's state.
func resumeHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("hash state: %v", err)
	}
	return h, nil
}
