package datastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// CorruptError says SQLite found the database damaged, or not a database
// at all: the file cannot be used, and nothing but moving it aside lets
// the cluster start.
type CorruptError struct {
	Path   string
	Reason string // SQLite's words, e.g. "file is not a database"
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s is corrupt: %s", e.Path, e.Reason)
}

// RecordSuffix ends the name of the record Start leaves beside a database
// it moved aside: <db>.corrupt-<UTC time>.txt, one line saying what
// happened. The node agent shows every such record in `cairn node status`
// until it is removed; agent/kube/README.md documents the contract.
const RecordSuffix = ".txt"

// corruptStamp is the UTC time in the names of moved-aside files.
const corruptStamp = "20060102T150405Z"

// check opens the SQLite database at path and runs PRAGMA quick_check
// (every page and index entry well formed; not the slower cross-check of
// indexes against tables). It returns nil for a sound database or one not
// made yet (missing or empty), a *CorruptError when SQLite says the file
// is damaged or not a database, and any other error (I/O, permissions, a
// full disk, a lock held by another process) as it is: those are not the
// file's fault, and must not cost the cluster its state.
func check(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && fi.Size() == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	return quickCheck(ctx, path)
}

// quickCheck runs PRAGMA quick_check on the database at path, with check's
// results: nil, a *CorruptError or another error.
func quickCheck(ctx context.Context, path string) error {
	// Read-only: it never creates the file, and never checkpoints or
	// deletes the write-ahead log on close (a read-write connection does),
	// so a corrupt database is moved aside with its log as it was. The
	// busy timeout waits out a process that still holds the database (a
	// cairn-kube that is stopping).
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return classify(path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return classify(path, err)
		}
		if line != "ok" && len(problems) < 3 {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return classify(path, err)
	}
	if len(problems) > 0 {
		return &CorruptError{Path: path, Reason: strings.Join(problems, "; ")}
	}
	return nil
}

// classify turns SQLite's "corrupt" and "not a database" errors into a
// *CorruptError and returns others as they are.
func classify(path string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary result code
		case sqlite3lib.SQLITE_CORRUPT, sqlite3lib.SQLITE_NOTADB:
			return &CorruptError{Path: path, Reason: strings.TrimSpace(trimCode(se.Error()))}
		}
	}
	return err
}

// trimCode drops the " (26)" modernc appends to SQLite's message.
func trimCode(msg string) string {
	if i := strings.LastIndex(msg, " ("); i > 0 && strings.HasSuffix(msg, ")") {
		return msg[:i]
	}
	return msg
}

// quarantine moves the corrupt database at path and its -wal and -shm
// files aside, as <path>.corrupt-<UTC time> (and -wal, -shm), so a new
// database can start in its place while the old one stays for whoever
// wants to look at it or salvage from it; then it writes the record
// <path>.corrupt-<time>.txt and returns its path.
func quarantine(path, reason string, now time.Time) (string, error) {
	base := path + ".corrupt-" + now.UTC().Format(corruptStamp)
	// The log files first: a crash half-way leaves at worst a database
	// without its log, never a new database beside an old log.
	for _, suffix := range []string{"-wal", "-shm", ""} {
		err := os.Rename(path+suffix, base+suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("moving %s aside: %w", path+suffix, err)
		}
	}
	record := base + RecordSuffix
	line := fmt.Sprintf("%s: %s was corrupt (%s); moved aside to %s, the cluster started with an empty datastore\n",
		now.UTC().Format(time.RFC3339), path, reason, filepath.Base(base))
	if err := os.WriteFile(record, []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("recording the move of %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // the renames and the record survive a power cut
		d.Close()
	}
	return record, nil
}
