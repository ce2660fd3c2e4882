package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/sysctl"
)

// fakeSysctl points the seams at a temporary /proc/sys holding files and
// a settings file with conf, and captures console lines.
func fakeSysctl(t *testing.T, conf string, files ...string) (root string, said *[]string) {
	t.Helper()
	root = t.TempDir()
	for _, f := range files {
		p := sysctl.File(root, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("0\n"), 0o644)
	}
	confPath := filepath.Join(t.TempDir(), "sysctl.conf")
	if conf != "" {
		os.WriteFile(confPath, []byte(conf), 0o644)
	}
	oldConf, oldProc, oldSay := sysctlConf, procSys, say
	t.Cleanup(func() { sysctlConf, procSys, say = oldConf, oldProc, oldSay })
	sysctlConf, procSys = confPath, root
	var lines []string
	say = func(format string, args ...any) {
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	return root, &lines
}

func TestApplySysctl(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       map[string]string // values read back afterwards
		warn       []string          // console warnings, in order
	}{
		{
			name: "no file",
			want: map[string]string{"vm.min_free_kbytes": "0"},
		},
		{
			name: "applied",
			conf: "vm.min_free_kbytes = 8192\nnet.core.somaxconn = 1024\n",
			want: map[string]string{"vm.min_free_kbytes": "8192", "net.core.somaxconn": "1024"},
		},
		{
			name: "a missing key does not stop the others",
			conf: "net.bridge.bridge-nf-call-iptables = 1\nvm.min_free_kbytes = 8192\n",
			want: map[string]string{"vm.min_free_kbytes": "8192"},
			warn: []string{"warning: sysctl net.bridge.bridge-nf-call-iptables: this kernel has no such setting"},
		},
		{
			name: "a damaged file applies nothing",
			conf: "vm.min_free_kbytes = 8192\nvm/swappiness = 1\n",
			want: map[string]string{"vm.min_free_kbytes": "0"},
			warn: []string{"warning: sysctl: /etc/cairn/sysctl.conf:2: sysctl key"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, said := fakeSysctl(t, tc.conf, "vm.min_free_kbytes", "net.core.somaxconn")
			applySysctl()
			for key, want := range tc.want {
				if got, _ := sysctl.Read(root, key); got != want {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
			if len(*said) != len(tc.warn) {
				t.Fatalf("console = %q, want %d warnings like %q", *said, len(tc.warn), tc.warn)
			}
			for i, w := range tc.warn {
				if !strings.HasPrefix((*said)[i], w) {
					t.Errorf("console line %d = %q, want it to start with %q", i, (*said)[i], w)
				}
			}
		})
	}
}
