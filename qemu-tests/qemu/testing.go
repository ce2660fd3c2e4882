package qemu

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// logsEnv names the directory where StartT saves the console of failed tests.
const logsEnv = "CAIRN_TEST_LOGS"

// StartT starts a VM for test t, or fails the test. When the test ends QEMU
// is killed, and if the test failed the whole console is saved to
// $CAIRN_TEST_LOGS/<TestName>.log (by default qemu-tests/logs/ in the module)
// and the test log says where.
func StartT(t testing.TB, opts ...Option) *VM {
	t.Helper()
	v, err := Start(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("qemu: started %s guest under %s: %s", v.arch, v.accel, v.commandLine())
	t.Cleanup(func() {
		t.Helper()
		if err := v.Kill(); err != nil {
			t.Error(err)
		}
		if !t.Failed() {
			return
		}
		dir, err := logDir()
		var path string
		if err == nil {
			path, err = v.saveLog(dir, t.Name())
		}
		if err != nil {
			t.Logf("qemu: could not save the console log: %v", err)
			return
		}
		t.Logf("qemu: console log saved to %s", path)
	})
	return v
}

// CopyImage copies the disk image src into the test's temporary directory,
// keeping it sparse, and returns the copy's path: every VM must write to its
// own disk.
func CopyImage(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := CopySparse(dst, src); err != nil {
		t.Fatalf("copying disk image: %v", err)
	}
	return dst
}

// logNames counts the logs saved per test, so a test running several VMs
// keeps them all.
var logNames = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// saveLog writes the console, then how QEMU ran and ended, to a file in dir
// named after the test.
func (v *VM) saveLog(dir, testName string) (string, error) {
	name := unsafeChars.ReplaceAllString(testName, "_")
	logNames.Lock()
	logNames.n[name]++
	if n := logNames.n[name]; n > 1 {
		name = fmt.Sprintf("%s-vm%d", name, n)
	}
	logNames.Unlock()
	path := filepath.Join(dir, name+".log")

	var b strings.Builder
	b.WriteString(v.Console())
	fmt.Fprintf(&b, "\n--- qemu: %s\n--- qemu: ran %v under %s; exit: %v\n",
		v.commandLine(), v.ran.Round(time.Millisecond), v.accel, v.exitErr)
	if s := v.stderr.String(); s != "" {
		fmt.Fprintf(&b, "--- qemu stderr:\n%s", s)
	}
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// logDir returns $CAIRN_TEST_LOGS, else qemu-tests/logs in the module, else a
// directory under the system's temporary directory (not t.TempDir, which is
// removed when the test ends).
func logDir() (string, error) {
	dir := os.Getenv(logsEnv)
	if dir == "" {
		if root, ok := moduleRoot(); ok {
			dir = filepath.Join(root, "qemu-tests", "logs")
		} else {
			dir = filepath.Join(os.TempDir(), "cairn-test-logs")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Abs(dir)
}

// moduleRoot finds the directory of Cairn's go.mod above the working
// directory (go test runs in the package's directory).
func moduleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if isCairnModule(filepath.Join(dir, "go.mod")) {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func isCairnModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) == 2 && f[0] == "module" {
			return f[1] == "github.com/cairn-edge/cairn"
		}
	}
	return false
}
