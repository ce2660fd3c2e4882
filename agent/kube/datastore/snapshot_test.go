package datastore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// kineDSN opens path as kine's SQLite driver (without cgo) does with
// sqliteParams: it turns the mattn-style parameters into modernc's pragmas.
func kineDSN(t *testing.T, path string) string {
	t.Helper()
	in, err := url.ParseQuery(sqliteParams)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for key, vals := range in {
		for _, v := range vals {
			switch key {
			case "_busy_timeout":
				out = append(out, "_pragma=busy_timeout("+v+")")
			case "_journal":
				out = append(out, "_pragma=journal_mode("+v+")")
			case "_synchronous":
				out = append(out, "_pragma=synchronous("+v+")")
			case "cache": // kine drops it: modernc has no shared cache
			default:
				out = append(out, key+"="+v)
			}
		}
	}
	return "file://" + path + "?" + strings.Join(out, "&")
}

// kineDB makes a database at path as kine runs it (WAL mode) with rows
// rows of 1 KiB in table kine, and count, in the same transactions,
// holding how many there are; it returns the open database.
func kineDB(t *testing.T, path string, rows int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", kineDSN(t, path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB); CREATE INDEX kine_name ON kine (name); CREATE TABLE count (n INTEGER); INSERT INTO count VALUES (0)"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for range rows {
		if err := insert(tx); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return db
}

// insert adds a row to kine and counts it, as one write of kine's does.
func insert(tx *sql.Tx) error {
	if _, err := tx.Exec("INSERT INTO kine (name, value) VALUES (?, ?)", fmt.Sprintf("/registry/configmaps/default/cm-%d", time.Now().UnixNano()), strings.Repeat("v", 1024)); err != nil {
		return err
	}
	_, err := tx.Exec("UPDATE count SET n = n + 1")
	return err
}

// rows reads the database at path as kine would open it, checking that
// the rows and their count agree (the copy is of one moment).
func rows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", kineDSN(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, counted int
	if err := db.QueryRow("SELECT COUNT(*) FROM kine").Scan(&n); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := db.QueryRow("SELECT n FROM count").Scan(&counted); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if n != counted {
		t.Errorf("%s: %d rows, counted %d: not one moment's copy", path, n, counted)
	}
	return n
}

func TestSnapshot(t *testing.T) {
	for _, tt := range []struct {
		name string
		// make makes the database at src (and anything at dst); it
		// returns the database open for writing while the snapshot is
		// taken, or nil.
		make func(t *testing.T, src, dst string) *sql.DB
		// rows is how many rows the copy has; -1: as many as the
		// writer had written at some moment during the snapshot.
		rows int
		// err is part of the error; "" for none.
		err string
		// hotLog: src has a log, which the snapshot must leave as it is.
		hotLog bool
		// notExist: the error wraps os.ErrNotExist.
		notExist bool
	}{
		{name: "idle", rows: 3000, make: func(t *testing.T, src, dst string) *sql.DB {
			kineDB(t, src, 3000).Close()
			return nil
		}},
		{name: "while kine writes", rows: -1, make: func(t *testing.T, src, dst string) *sql.DB {
			return kineDB(t, src, 5000)
		}},
		// A kine killed mid-work leaves the newest pages in its log: the
		// copy has them, and the log stays as it was.
		{name: "hot log", rows: 500, hotLog: true, make: func(t *testing.T, src, dst string) *sql.DB {
			db, err := sql.Open("sqlite", kineDSN(t, src)+"&_pragma=wal_autocheckpoint(0)")
			if err != nil {
				t.Fatal(err)
			}
			db.SetMaxOpenConns(1)
			if _, err := db.Exec("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB); CREATE TABLE count (n INTEGER); INSERT INTO count VALUES (0)"); err != nil {
				t.Fatal(err)
			}
			for range 500 {
				tx, _ := db.Begin()
				if err := insert(tx); err != nil {
					t.Fatal(err)
				}
				tx.Commit()
			}
			// Copy the files as they are, the writer still open: no
			// checkpoint on close reaches the copy.
			for _, suffix := range []string{"", "-wal"} {
				data, err := os.ReadFile(src + suffix)
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(src+".hot"+suffix, data, 0o600)
			}
			db.Close()
			for _, suffix := range []string{"", "-wal"} {
				os.Rename(src+".hot"+suffix, src+suffix)
			}
			os.Remove(src + "-shm")
			return nil
		}},
		{name: "over an old snapshot and a cut's part", rows: 100, make: func(t *testing.T, src, dst string) *sql.DB {
			kineDB(t, src, 100).Close()
			os.MkdirAll(filepath.Dir(dst), 0o700)
			os.WriteFile(dst, []byte("the old snapshot"), 0o600)
			os.WriteFile(dst+PartSuffix, []byte("half a copy"), 0o600)
			os.WriteFile(dst+PartSuffix+"-wal", []byte("its log"), 0o600)
			return nil
		}},
		{name: "missing", err: "no database at", notExist: true, make: func(t *testing.T, src, dst string) *sql.DB {
			return nil
		}},
		{name: "not a database", err: "not a database", make: func(t *testing.T, src, dst string) *sql.DB {
			os.WriteFile(src, []byte(strings.Repeat("this is no database ", 1000)), 0o600)
			os.MkdirAll(filepath.Dir(dst), 0o700)
			os.WriteFile(dst, []byte("the old snapshot"), 0o600)
			return nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "db", "state.db")
			dst := filepath.Join(dir, "update", "kube-state.db")
			os.MkdirAll(filepath.Dir(src), 0o700)
			writer := tt.make(t, src, dst)
			var walBefore []byte
			if tt.hotLog {
				if walBefore, _ = os.ReadFile(src + "-wal"); len(walBefore) == 0 {
					t.Fatalf("%s has no log to keep", src)
				}
			}
			oldDst, _ := os.ReadFile(dst)

			// The writer writes one row per transaction until the
			// snapshot is done; before and after are its counts then.
			var (
				wg            sync.WaitGroup
				stop          = make(chan struct{})
				mu            sync.Mutex
				written       int
				writeErr      error
				before, after int
			)
			count := func() int { mu.Lock(); defer mu.Unlock(); return written }
			if writer != nil {
				written = 5000
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						tx, err := writer.Begin()
						if err == nil {
							if err = insert(tx); err == nil {
								err = tx.Commit()
							} else {
								tx.Rollback()
							}
						}
						mu.Lock()
						if err != nil {
							writeErr = err
						} else {
							written++
						}
						mu.Unlock()
						if err != nil {
							return
						}
					}
				}()
				for count() < 5050 { // writing for sure
					time.Sleep(time.Millisecond)
				}
			}
			before = count()
			began := time.Now()
			err := Snapshot(context.Background(), src, dst)
			took := time.Since(began)
			after = count()
			close(stop)
			wg.Wait()

			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Snapshot = %v, want an error saying %q", err, tt.err)
				}
				t.Logf("error: %v", err)
				if tt.notExist && !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the error does not wrap os.ErrNotExist")
				}
				if got, _ := os.ReadFile(dst); string(got) != string(oldDst) {
					t.Errorf("%s is now %q, want it as it was (%q)", dst, got, oldDst)
				}
				if _, err := os.Stat(dst + PartSuffix); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind (%v)", dst+PartSuffix, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Snapshot = %v", err)
			}
			if writeErr != nil {
				t.Errorf("a write during the snapshot failed: %v", writeErr)
			}
			got := rows(t, dst)
			switch {
			case tt.rows >= 0 && got != tt.rows:
				t.Errorf("the copy has %d rows, want %d", got, tt.rows)
			case tt.rows < 0 && (got < before || got > after):
				t.Errorf("the copy has %d rows, want between %d and %d (written before and after it)", got, before, after)
			}
			fi, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", dst, fi.Mode().Perm())
			}
			left, _ := filepath.Glob(dst + PartSuffix + "*")
			if len(left) > 0 {
				t.Errorf("left behind: %q", left)
			}
			if walBefore != nil {
				if walAfter, _ := os.ReadFile(src + "-wal"); string(walAfter) != string(walBefore) {
					t.Errorf("the live database's log changed (%d bytes, was %d): the snapshot must only read", len(walAfter), len(walBefore))
				}
			}
			t.Logf("%d rows, %d KiB, in %s", got, fi.Size()>>10, took.Round(time.Millisecond))
			if writer != nil {
				t.Logf("the writer had written %d rows when the snapshot began, %d when it ended", before, after)
			}
		})
	}
}
