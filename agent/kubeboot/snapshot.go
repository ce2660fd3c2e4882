package kubeboot

// The datastore across an upgrade's trial boot (issue 10, "Kubernetes-
// aware"): the agent wires these as agent/update's hooks.
//
//	BeforeTrial: Snapshot      the datastore, copied while cairn-kube runs
//	OnRollback:  Restore       back on the old slot, before cairn-kube starts
//	OnCommit:    DropSnapshot  the trial's state is the cluster's now
//
// A newer API server may write state an older one cannot read (a stored
// version it does not know, a field it drops): the old slot must never
// start on what the trial wrote. It starts on the snapshot instead, and
// what the cluster was told during the trial is lost (docs/kubernetes.md).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-edge/cairn/agent/atomicfile"

	"github.com/cairn-edge/cairn/agent/contract"
)

// The files, as variables so that tests point them at a temporary
// directory.
var (
	// datastorePath is a server's datastore; snapshotPath its copy from
	// before the trial, on the same file system (CAIRN-DATA).
	datastorePath = contract.KubeDatastore
	snapshotPath  = contract.KubeSnapshot
	// kubeBinary takes the snapshot: the running slot's cairn-kube, whose
	// SQLite wrote the database.
	kubeBinary = Binary
)

// snapshotPartSuffix ends the copy cairn-kube writes before renaming it
// to snapshotPath (agent/kube's datastore.PartSuffix).
const snapshotPartSuffix = ".part"

// snapshotTimeout bounds a snapshot: seconds for a large database on an
// SD card; a copy still running after this has met something else.
const snapshotTimeout = 10 * time.Minute

// SQLite's files beside a database: its write-ahead log and the log's
// index (WAL mode, as kine runs it), and a rollback journal (other modes).
var dbLogSuffixes = []string{"-wal", "-shm", "-journal"}

// Snapshot copies the datastore to the snapshot file with `cairn-kube
// snapshot` while cairn-kube runs (a consistent copy of one moment; kine
// goes on writing), before an upgrade's reboot into a trial. A node with
// no datastore (an agent-mode node, a cluster not started yet, or a slot
// without cairn-kube) has nothing to copy: it returns nil and leaves no
// snapshot. An error stops the upgrade before its trial is armed.
//
// Power cuts: the datastore is only read. cairn-kube writes the copy
// under another name and renames it in place once synced and checked, so
// the snapshot file is whole or absent; and the trial is armed only after
// Snapshot returned, so no rollback can look for a snapshot before that.
func Snapshot(ctx context.Context) error {
	log := slog.Default()
	// A snapshot of an earlier attempt that never reached its trial (its
	// arming failed) goes first: a rollback must never restore a state
	// older than the one this trial started from.
	if err := DropSnapshot(); err != nil {
		return err
	}
	fi, err := os.Stat(datastorePath)
	switch {
	case errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0:
		log.Info("kubernetes: no datastore to snapshot before the trial", "db", datastorePath)
		return nil
	case err != nil:
		return fmt.Errorf("kubernetes datastore snapshot: %w", err)
	}
	if _, err := os.Stat(kubeBinary); errors.Is(err, os.ErrNotExist) {
		// This slot runs no Kubernetes: nothing it boots reads the
		// database, so a rollback to it needs no copy.
		log.Info("kubernetes: no cairn-kube in this slot; its datastore is not snapshotted", "db", datastorePath, "binary", kubeBinary)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	began := time.Now()
	cmd := exec.CommandContext(ctx, kubeBinary, "snapshot", datastorePath, snapshotPath)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubernetes datastore snapshot into %s: %s (the upgrade stops before its trial, which a rollback could not undo without it: fix the cause, e.g. free space on CAIRN-DATA for a copy of the datastore)",
			snapshotPath, lastLine(out, err))
	}
	if fi, err = os.Stat(snapshotPath); err != nil {
		return fmt.Errorf("kubernetes datastore snapshot: %s snapshot exited without writing it: %w", kubeBinary, err)
	}
	log.Info("kubernetes: datastore snapshot taken before the trial", "db", datastorePath, "snapshot", snapshotPath,
		"bytes", fi.Size(), "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// lastLine is the last line of a failed command's output, its error, or
// how it failed (err) when it said nothing.
func lastLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return err.Error()
	}
	return s[strings.LastIndex(s, "\n")+1:]
}

// Restore puts the snapshot in the datastore's place, if there is one,
// and reports whether it did. It must run before cairn-kube starts (call
// it before Start): on a rollback, so that the old slot's API server
// starts on the state it left, never on what the trial's newer one wrote.
// Only a rollback may call it: a snapshot is dropped at commit, but one
// whose trial was never armed lingers until the next attempt replaces it.
//
// Power cuts: until the snapshot has durably become the datastore, the
// snapshot file stays whole, and a cut at any step is repaired by the
// same call on the next boot (agent/update runs its rollback hook again
// until the rollback is recorded):
//
//  1. the trial's log files are removed and the removal synced: a cut
//     leaves the trial's database without its log (possibly unreadable,
//     but it is about to be replaced) and the snapshot;
//  2. the snapshot is renamed over the datastore (one rename on one
//     file system, ext4 journals it whole): a cut leaves the trial's
//     database and the snapshot, or the snapshot as the datastore and
//     no snapshot file (then Restore finds nothing to do);
//  3. both directories are synced: the rename is durable.
//
// Step 1 must be durable before step 2: a log of the trial's beside the
// snapshot would be replayed into it (SQLite takes a log's frames as
// newer than its database), and the result is neither state.
func Restore() (bool, error) {
	log := slog.Default()
	fi, err := os.Stat(snapshotPath)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kubernetes datastore restore: %w", err)
	}
	dir := filepath.Dir(datastorePath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("kubernetes datastore restore: %w", err)
	}
	for _, suffix := range dbLogSuffixes {
		if err := os.Remove(datastorePath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("kubernetes datastore restore: removing the trial's log: %w (the snapshot %s is kept)", err, snapshotPath)
		}
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return false, fmt.Errorf("kubernetes datastore restore: %w (the snapshot %s is kept)", err, snapshotPath)
	}
	if err := os.Rename(snapshotPath, datastorePath); err != nil {
		return false, fmt.Errorf("kubernetes datastore restore: %w (the snapshot %s is kept)", err, snapshotPath)
	}
	for _, d := range []string{dir, filepath.Dir(snapshotPath)} {
		if err := atomicfile.SyncDir(d); err != nil {
			return true, fmt.Errorf("kubernetes datastore restore: %w", err)
		}
	}
	log.Info("kubernetes: datastore restored from the snapshot taken before the trial", "db", datastorePath, "bytes", fi.Size(), "taken", fi.ModTime().UTC())
	return true, nil
}

// DropSnapshot removes the snapshot and any part of one a cut left: at
// commit, the trial's state is the cluster's. Nothing to remove is no
// error.
func DropSnapshot() error {
	var removed bool
	for _, p := range []string{snapshotPath, snapshotPath + snapshotPartSuffix} {
		for _, suffix := range append([]string{""}, dbLogSuffixes...) {
			err := os.Remove(p + suffix)
			switch {
			case err == nil:
				removed = true
			case !errors.Is(err, os.ErrNotExist):
				return fmt.Errorf("kubernetes datastore snapshot: removing it: %w", err)
			}
		}
	}
	if !removed {
		return nil
	}
	// A removal a cut undoes is harmless (only a rollback restores, and
	// only after a trial, whose Snapshot drops it first); synced all the
	// same, so its space on CAIRN-DATA is free for good.
	if err := atomicfile.SyncDir(filepath.Dir(snapshotPath)); err != nil {
		return fmt.Errorf("kubernetes datastore snapshot: %w", err)
	}
	return nil
}
