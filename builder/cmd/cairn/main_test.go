package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunErrors(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"build"}, "no image spec: pass -f FILE"},
		{[]string{"build", "-f", "../../../images/minimal.yaml"}, "no board: pass --board NAME"},
		{[]string{"validate", "-f", "../../../images/minimal.yaml", "--board", "nosuch", "--boards", "../../../boards"}, `unknown board "nosuch"`},
		{[]string{"validate", "-f", "nosuch.yaml", "--board", "qemu-x86_64"}, "pass an existing file with -f"},
		{[]string{"validate", "-f", "../../../images/minimal.yaml", "--board", "qemu-x86_64", "--boards", "../../../boards", "extra"}, `unexpected argument "extra"`},
		{[]string{"input", "pack"}, "needs --dir, --arch, --layout and --tag"},
		{[]string{"input", "frob"}, "unknown input command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run(%v) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, board := range []string{"qemu-x86_64", "qemu-aarch64", "generic-x86_64", "generic-arm64"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"validate", "-f", "../../../images/minimal.yaml", "--board", board, "--boards", "../../../boards"}, &out, &out)
		if err != nil || !strings.Contains(out.String(), ": ok") {
			t.Errorf("validate on %s: %v\n%s", board, err, out.String())
		}
	}
}
