package datastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// PartSuffix ends the name of the copy Snapshot writes before it renames
// it into place: DST.part. A cut leaves it behind; the next Snapshot
// replaces it, and the node agent removes it with the snapshot
// (agent/kubeboot).
const PartSuffix = ".part"

// Snapshot writes a consistent copy of the SQLite database at src to dst
// while kine may be writing to it, so that a node can go back to the
// cluster as it was (the node agent takes one before an upgrade's trial
// boot and restores it on a rollback: agent/kubeboot).
//
// The copy is SQLite's VACUUM INTO, from a read-only connection: one read
// transaction, so it sees the database as of one commit; in WAL mode, as
// kine runs it, it blocks no writer. SQLite does not sync what VACUUM INTO
// writes, so the copy goes to dst+PartSuffix, is synced, passes PRAGMA
// quick_check, and only then is renamed over dst and its directory
// synced: dst is the old snapshot or the new one, never part of one.
// The copy is in rollback-journal mode (VACUUM INTO writes no log); kine
// turns WAL on again when it opens it. A missing src is an error that
// wraps os.ErrNotExist.
func Snapshot(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("snapshot: no database at %s (%w; give the datastore's path, dataDir/db/state.db)", src, os.ErrNotExist)
		}
		return fmt.Errorf("snapshot: %w", err)
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	part := dst + PartSuffix
	if err := removeDB(part); err != nil {
		return fmt.Errorf("snapshot: removing what a cut left: %w", err)
	}
	// VACUUM INTO takes an empty file: made here, it is 0600 as the
	// datastore is (it holds the cluster's secrets), not SQLite's 0644.
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	f.Close()
	done := false
	defer func() {
		if !done {
			removeDB(part)
		}
	}()

	if err := vacuumInto(ctx, src, part); err != nil {
		return fmt.Errorf("snapshot: copying %s: %w", src, err)
	}
	if err := syncFile(part); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := quickCheck(ctx, part); err != nil {
		return fmt.Errorf("snapshot: the copy of %s does not pass its check: %w (the live database is left as it is)", src, err)
	}
	// The check's read-only connection leaves no log files; should one
	// appear, it must not stay beside a name that is about to change.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(part + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	if err := os.Rename(part, dst); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// vacuumInto copies the database at src into the empty file dst.
func vacuumInto(ctx context.Context, src, dst string) error {
	// Read-only, as check: the copy never checkpoints or deletes the
	// live database's log, whether kine runs or not. The busy timeout is
	// kine's: a reader waits only while a connection recovers the log.
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro&_pragma=busy_timeout(30000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		return classify(src, err)
	}
	return db.Close()
}

// removeDB removes the database at path and its log files, if there.
func removeDB(path string) error {
	var errs []error
	for _, suffix := range []string{"-wal", "-shm", ""} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// syncFile makes the file at path durable.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes the names in directory dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
