package kubeboot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fake cairn-kubes: each notes its arguments in the file calls beside it.
const (
	// kubeCopies copies SRC to DST as `cairn-kube snapshot` does: under
	// another name, then renamed.
	kubeCopies = `[ "$1" = snapshot ] && [ $# = 3 ] || exit 2
cp "$2" "$3.part" && mv "$3.part" "$3"`
	kubeFails  = `echo "cairn-kube snapshot: copying $2: database or disk is full (13)" >&2; exit 1`
	kubeSilent = `exit 0`
	noKube     = ""
)

// snapshotFiles points the datastore, its snapshot and cairn-kube into a
// temporary directory, cairn-kube being a shell script (noKube: none).
func snapshotFiles(t *testing.T, script string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	old := []string{datastorePath, snapshotPath, kubeBinary}
	t.Cleanup(func() { datastorePath, snapshotPath, kubeBinary = old[0], old[1], old[2] })
	datastorePath = filepath.Join(dir, "kube", "db", "state.db")
	snapshotPath = filepath.Join(dir, "update", "kube-state.db")
	kubeBinary = filepath.Join(dir, "cairn-kube")
	for _, d := range []string{filepath.Dir(datastorePath), filepath.Dir(snapshotPath)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if script != noKube {
		calls := filepath.Join(dir, "calls")
		script = "#!/bin/sh\necho \"$@\" >> " + calls + "\n" + script + "\n"
		if err := os.WriteFile(kubeBinary, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// files is what a test puts in place or expects: path to content, ""
// for a file that must not exist, empty for a file of no bytes.
type files map[string]string

const empty = "(empty)"

func (f files) write(t *testing.T) {
	t.Helper()
	for p, content := range f {
		if content == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if content == empty {
			content = ""
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (f files) check(t *testing.T) {
	t.Helper()
	for p, want := range f {
		got, err := os.ReadFile(p)
		if err == nil && len(got) == 0 {
			got = []byte(empty)
		}
		switch {
		case want == "" && !errors.Is(err, os.ErrNotExist):
			t.Errorf("%s: %q (%v), want no such file", p, got, err)
		case want != "" && string(got) != want:
			t.Errorf("%s: %q (%v), want %q", p, got, err, want)
		}
	}
}

func calls(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "calls"))
	return strings.TrimSpace(string(b))
}

func TestSnapshot(t *testing.T) {
	for _, tt := range []struct {
		name   string
		script string
		// before and after are the files (db, snapshot and the part a
		// cut leaves, by name) before and after Snapshot.
		before, after map[string]string
		// ran is whether cairn-kube ran; err part of the error.
		ran bool
		err string
	}{
		{name: "copies the datastore", script: kubeCopies, ran: true,
			before: map[string]string{"db": "state", "db-wal": "log"},
			after:  map[string]string{"db": "state", "db-wal": "log", "snap": "state"}},
		{name: "over an old attempt's snapshot and a cut's part", script: kubeCopies, ran: true,
			before: map[string]string{"db": "state", "snap": "older", "part": "half"},
			after:  map[string]string{"db": "state", "snap": "state", "part": ""}},
		// An agent-mode node, or a cluster not started yet.
		{name: "no datastore", script: kubeCopies,
			before: map[string]string{"snap": "older"},
			after:  map[string]string{"db": "", "snap": ""}},
		{name: "an empty datastore", script: kubeCopies,
			before: map[string]string{"db": empty},
			after:  map[string]string{"db": empty, "snap": ""}},
		{name: "no cairn-kube in the slot", script: noKube,
			before: map[string]string{"db": "state"},
			after:  map[string]string{"db": "state", "snap": ""}},
		{name: "cairn-kube fails", script: kubeFails, ran: true, err: "database or disk is full",
			before: map[string]string{"db": "state"},
			after:  map[string]string{"db": "state", "snap": ""}},
		{name: "cairn-kube writes nothing", script: kubeSilent, ran: true, err: "exited without writing it",
			before: map[string]string{"db": "state"},
			after:  map[string]string{"db": "state", "snap": ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := snapshotFiles(t, tt.script)
			named := func(m map[string]string) files {
				f := files{}
				for name, content := range m {
					f[map[string]string{
						"db": datastorePath, "db-wal": datastorePath + "-wal",
						"snap": snapshotPath, "part": snapshotPath + snapshotPartSuffix,
					}[name]] = content
				}
				return f
			}
			named(tt.before).write(t)

			err := Snapshot(context.Background())
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("Snapshot = %v, want error %q", err, tt.err)
			}
			if err != nil {
				t.Logf("error: %v", err)
			}
			named(tt.after).check(t)
			want := ""
			if tt.ran {
				want = "snapshot " + datastorePath + " " + snapshotPath
			}
			if got := calls(dir); got != want {
				t.Errorf("cairn-kube ran with %q, want %q", got, want)
			}
		})
	}
}

// TestRestore starts from each state a rollback's restore can find, a
// power cut at each of its steps included, and ends with the snapshot as
// the datastore, without the trial's log.
func TestRestore(t *testing.T) {
	const trial, snap = "the trial's state", "the state before the trial"
	for _, tt := range []struct {
		name string
		// before: the datastore, its log files and the snapshot.
		db, wal, shm, journal, snapshot string
		// noDir: not even the datastore's directory.
		noDir, restored bool
	}{
		{name: "after a trial", db: trial, wal: "trial log", shm: "trial index", snapshot: snap, restored: true},
		{name: "a rollback journal", db: trial, journal: "trial journal", snapshot: snap, restored: true},
		{name: "cut after the logs were removed", db: trial, snapshot: snap, restored: true},
		{name: "cut after the rename", db: snap},
		{name: "no datastore", snapshot: snap, noDir: true, restored: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snapshotFiles(t, noKube)
			if tt.noDir {
				os.RemoveAll(filepath.Dir(datastorePath))
			}
			files{datastorePath: tt.db, datastorePath + "-wal": tt.wal, datastorePath + "-shm": tt.shm,
				datastorePath + "-journal": tt.journal, snapshotPath: tt.snapshot}.write(t)

			restored, err := Restore()
			if err != nil {
				t.Fatal(err)
			}
			if restored != tt.restored {
				t.Errorf("Restore = %v, want %v", restored, tt.restored)
			}
			files{datastorePath: snap, datastorePath + "-wal": "", datastorePath + "-shm": "",
				datastorePath + "-journal": "", snapshotPath: ""}.check(t)
			if again, err := Restore(); again || err != nil {
				t.Errorf("Restore again = %v, %v, want false, nil", again, err)
			}
		})
	}
}

// TestRestoreNothing: without a snapshot the datastore stays as it is,
// log and all (a boot that is no rollback, or a node without one).
func TestRestoreNothing(t *testing.T) {
	snapshotFiles(t, noKube)
	f := files{datastorePath: "state", datastorePath + "-wal": "log", datastorePath + "-shm": "index"}
	f.write(t)
	if restored, err := Restore(); restored || err != nil {
		t.Fatalf("Restore = %v, %v, want false, nil", restored, err)
	}
	f.check(t)
}

func TestDropSnapshot(t *testing.T) {
	for _, tt := range []struct {
		name   string
		before files
	}{
		{"nothing", files{}},
		{"a snapshot", files{"snap": "s"}},
		{"a cut's part and its log", files{"part": "p", "part-wal": "w"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snapshotFiles(t, noKube)
			paths := map[string]string{"snap": snapshotPath, "part": snapshotPath + snapshotPartSuffix, "part-wal": snapshotPath + snapshotPartSuffix + "-wal"}
			before := files{datastorePath: "state"}
			for name, content := range tt.before {
				before[paths[name]] = content
			}
			before.write(t)
			if err := DropSnapshot(); err != nil {
				t.Fatal(err)
			}
			after := files{datastorePath: "state"}
			for _, p := range paths {
				after[p] = ""
			}
			after.check(t)
		})
	}
}

// TestTrial follows the datastore through an upgrade: snapshot while the
// old slot runs, the trial boot writes, then a rollback or a commit.
func TestTrial(t *testing.T) {
	for _, tt := range []struct {
		name     string
		rollback bool
		want     string
	}{
		{"rolled back", true, "before"},
		{"committed", false, "the trial's"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			snapshotFiles(t, kubeCopies)
			files{datastorePath: "before"}.write(t)
			if err := Snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			// The trial boot's cairn-kube writes.
			files{datastorePath: "the trial's", datastorePath + "-wal": "the trial's log"}.write(t)
			if tt.rollback {
				if restored, err := Restore(); !restored || err != nil {
					t.Fatalf("Restore = %v, %v", restored, err)
				}
			} else if err := DropSnapshot(); err != nil {
				t.Fatal(err)
			}
			files{datastorePath: tt.want, snapshotPath: ""}.check(t)
		})
	}
}
