package datastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goodDB writes a sound database of a few hundred pages at path, as kine
// leaves it (WAL mode, checkpointed on close).
func goodDB(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB); CREATE INDEX kine_name ON kine (name)"); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if _, err := db.Exec("INSERT INTO kine (name, value) VALUES (?, ?)", fmt.Sprintf("/registry/configmaps/default/cm-%d", i), strings.Repeat("x", 400)); err != nil {
			t.Fatal(err)
		}
	}
}

// hotDB writes a database at path as a process killed mid-work leaves
// it: the newest pages only in its write-ahead log.
func hotDB(t *testing.T, path string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "live.db")
	db, err := sql.Open("sqlite", src+"?_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE kine (id INTEGER PRIMARY KEY, value BLOB)"); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		if _, err := db.Exec("INSERT INTO kine (value) VALUES (?)", strings.Repeat("y", 300)); err != nil {
			t.Fatal(err)
		}
	}
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(src + suffix)
		if err != nil || (suffix == "-wal" && len(data) == 0) {
			t.Fatalf("%s: %d bytes, %v", src+suffix, len(data), err)
		}
		if err := os.WriteFile(path+suffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// overwrite writes n bytes of b at off in path.
func overwrite(t *testing.T, path string, off int64, b byte, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat(string(b), n)), off); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	const sound, anyReason = "sound", ""
	for _, tt := range []struct {
		name string
		make func(t *testing.T, path string)
		// want is sound, or a part of the corruption's reason (anyReason
		// for any).
		want string
	}{
		{"good", goodDB, sound},
		{"good with a hot log", hotDB, sound},
		{"missing", func(*testing.T, string) {}, sound},
		{"empty", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) }, sound},
		{"garbage", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(strings.Repeat("this is no database ", 1000)), 0o600)
		}, "not a database"},
		{"header overwritten", func(t *testing.T, path string) {
			goodDB(t, path)
			overwrite(t, path, 0, 0xff, 4096)
		}, "not a database"},
		// SQLite takes page 1 from the log, where it is newer: sound.
		{"header overwritten, hot log", func(t *testing.T, path string) {
			hotDB(t, path)
			overwrite(t, path, 0, 0xff, 4096)
		}, sound},
		{"header and log overwritten", func(t *testing.T, path string) {
			hotDB(t, path)
			overwrite(t, path, 0, 0xff, 4096)
			overwrite(t, path+"-wal", 0, 0xff, 4096)
		}, "not a database"},
		{"truncated", func(t *testing.T, path string) {
			goodDB(t, path)
			fi, _ := os.Stat(path)
			os.Truncate(path, fi.Size()/2)
		}, "malformed"},
		{"page overwritten", func(t *testing.T, path string) {
			goodDB(t, path)
			overwrite(t, path, 40*4096, 0x07, 4096)
		}, anyReason},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			tt.make(t, path)
			err := check(context.Background(), path)
			var ce *CorruptError
			if tt.want == sound {
				if err != nil {
					t.Fatalf("check = %v, want nil", err)
				}
				return
			}
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, tt.want) {
				t.Fatalf("check = %v, want a *CorruptError saying %q", err, tt.want)
			}
			t.Logf("reason: %s", ce.Reason)
		})
	}
}

// TestCheckOtherErrors: a file SQLite cannot open is not called corrupt,
// so it is never moved aside.
func TestCheckOtherErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state.db") // a directory where the file should be
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	err := check(context.Background(), dir)
	var ce *CorruptError
	if err == nil || errors.As(err, &ce) {
		t.Fatalf("check(a directory) = %v, want an error that is not a *CorruptError", err)
	}
}

func TestCheckOrMoveAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	os.WriteFile(path, []byte(strings.Repeat("garbage ", 2000)), 0o600)
	os.WriteFile(path+"-wal", []byte("old log"), 0o600)
	os.WriteFile(path+"-shm", []byte("old shm"), 0o600)
	if err := checkOrMoveAside(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there (%v), want it moved aside", path+suffix, err)
		}
	}
	moved, _ := filepath.Glob(path + ".corrupt-*")
	var names []string
	for _, m := range moved {
		names = append(names, strings.TrimPrefix(m, path))
	}
	if len(names) != 4 {
		t.Fatalf("moved aside: %q, want .corrupt-<time> with -wal, -shm and .txt", names)
	}
	stamp := strings.TrimPrefix(names[0], ".corrupt-")
	if _, err := time.Parse(corruptStamp, stamp); err != nil {
		t.Errorf("moved-aside name %q: %v", names[0], err)
	}
	records, _ := filepath.Glob(path + ".corrupt-*" + RecordSuffix)
	if len(records) != 1 {
		t.Fatalf("records %q, want one", records)
	}
	rec, _ := os.ReadFile(records[0])
	if !strings.Contains(string(rec), "not a database") || !strings.Contains(string(rec), "empty datastore") {
		t.Errorf("record says %q, want the reason and what happened", rec)
	}
	// The next start finds no database and leaves the records alone.
	if err := checkOrMoveAside(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	if again, _ := filepath.Glob(path + ".corrupt-*"); len(again) != 4 {
		t.Errorf("after a second start: %q", again)
	}
}
