package sysctl

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCheckKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"vm.min_free_kbytes", true},
		{"net.ipv4.conf.all.rp_filter", true},
		{"net.bridge.bridge-nf-call-iptables", true},
		{"kernel.pid_max", true},
		{"vm", false},                     // a directory, not a setting
		{"vm..swappiness", false},         // empty part
		{"vm.swappiness.", false},         // empty part
		{"vm/swappiness", false},          // slashes: write it dotted
		{"vm.../../etc/passwd", false},    // out of /proc/sys
		{"proc.sys.vm.swappiness", false}, // not a /proc/sys directory
		{"vm.swap piness", false},
		{"", false},
	} {
		if err := CheckKey(tc.key); (err == nil) != tc.ok {
			t.Errorf("CheckKey(%q) = %v, want ok %v", tc.key, err, tc.ok)
		}
	}
}

func TestCheckValue(t *testing.T) {
	for _, tc := range []struct {
		value, wantErr string
	}{
		{"1", ""},
		{"4096 131072 6291456", ""},
		{"4096\t131072", ""},
		{"", "has no value"},
		{"  ", "has no value"},
		{"1\n2", "control character"},
		{strings.Repeat("9", maxValue+1), "at most"},
	} {
		err := CheckValue("vm.x", tc.value)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("CheckValue(%q) = %v, want %q", tc.value, err, tc.wantErr)
		}
	}
}

func TestFormatParse(t *testing.T) {
	settings := FromMap(map[string]string{"vm.swappiness": "10", "net.core.somaxconn": " 1024 ", "net.ipv4.tcp_rmem": "4096 131072 6291456"})
	want := []Setting{{"net.core.somaxconn", "1024"}, {"net.ipv4.tcp_rmem", "4096 131072 6291456"}, {"vm.swappiness", "10"}}
	if !reflect.DeepEqual(settings, want) {
		t.Fatalf("FromMap = %v, want %v (sorted, trimmed)", settings, want)
	}
	got, err := Parse(Format(settings))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Parse(Format(x)) = %v, %v; want %v", got, err, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"vm.swappiness 10\n", ":1: "},
		{"# c\n\nvm/swappiness = 10\n", ":3: sysctl key"},
		{"vm.swappiness =\n", "has no value"},
	} {
		if _, err := Parse([]byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
}

func TestApplyRead(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"vm/min_free_kbytes", "net/core/somaxconn"} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755)
		os.WriteFile(filepath.Join(root, f), []byte("0\n"), 0o644)
	}
	os.MkdirAll(filepath.Join(root, "vm", "ro"), 0o755) // a directory: writing fails
	err := Apply(root, []Setting{{"vm.min_free_kbytes", "8192"}, {"vm.nosuch", "1"}, {"net.core.somaxconn", "1024"}, {"vm.ro", "1"}})
	if err == nil || !strings.Contains(err.Error(), "vm.nosuch: this kernel has no such setting") || !strings.Contains(err.Error(), `vm.ro = "1"`) {
		t.Errorf("Apply = %v, want the missing and the unwritable key named", err)
	}
	for key, want := range map[string]string{"vm.min_free_kbytes": "8192", "net.core.somaxconn": "1024"} {
		if got, err := Read(root, key); err != nil || got != want {
			t.Errorf("Read(%s) = %q, %v; want %q (applied despite the failures)", key, got, err, want)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	s, err := Load(filepath.Join(t.TempDir(), "sysctl.conf"))
	if s != nil || err != nil {
		t.Errorf("Load(missing) = %v, %v; want no settings, no error", s, err)
	}
}
