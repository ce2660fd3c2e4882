package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-edge/cairn/builder/pki"
)

// TestCAStart: the CA's start, made on a workstation's real clock, is a
// floor for the node's clock when the image's epoch is the fixed default.
func TestCAStart(t *testing.T) {
	made := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ca, err := pki.NewCA("test CA", made, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(path, ca.CertPEM, 0o644)
	if got, err := caStart(path); err != nil || !got.Equal(made.Add(-time.Hour)) {
		t.Errorf("caStart = %v, %v; want %v", got, err, made.Add(-time.Hour))
	}
	os.WriteFile(path, []byte("not a certificate"), 0o644)
	if _, err := caStart(path); err == nil {
		t.Error("caStart of garbage: no error")
	}
}
