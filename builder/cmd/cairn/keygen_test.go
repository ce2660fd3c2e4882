package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-edge/cairn/agent/config"
	"github.com/cairn-edge/cairn/agent/update/sign"
)

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"keygen", "-o", dir}, &out, &out); err != nil {
		t.Fatal(err)
	}
	keyPath, pubPath := filepath.Join(dir, "cairn.key"), filepath.Join(dir, "cairn.pub")
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("cairn.key has mode %v, want 0600", st.Mode().Perm())
	}
	key, err := sign.LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := config.ParsePublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&key.PublicKey) {
		t.Fatal("cairn.pub is not cairn.key's public key")
	}
	if !strings.Contains(out.String(), sign.Fingerprint(pub)) {
		t.Fatalf("output %q does not show the key's fingerprint", out.String())
	}

	// A second run refuses and leaves the pair as it was.
	err = run(context.Background(), []string{"keygen", "-o", dir}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("second keygen = %v, want a refusal", err)
	}
	if again, _ := sign.LoadPrivateKey(keyPath); !again.Equal(key) {
		t.Fatal("second keygen changed cairn.key")
	}
	// A lone cairn.pub is not overwritten either, and no key is left behind.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "cairn.pub"), []byte("x"), 0o644)
	if err := run(context.Background(), []string{"keygen", "-o", dir2}, &out, &out); err == nil {
		t.Fatal("keygen overwrote a cairn.pub")
	}
	if _, err := os.Stat(filepath.Join(dir2, "cairn.key")); err == nil {
		t.Fatal("keygen left a cairn.key without its cairn.pub")
	}
}
