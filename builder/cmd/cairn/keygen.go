package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cairn-edge/cairn/agent/update/sign"
)

// cmdKeygen writes a signing key pair for update artifacts: cairn.key
// (PKCS#8 PEM, unencrypted, mode 0600) for cairn push --key, and cairn.pub
// for the spec's update.keys and for cosign verify --key.
func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", stderr)
	dir := fs.String("o", ".", "directory to write cairn.key and cairn.pub in")
	if err := parse(fs, args); err != nil {
		return err
	}
	keyPath, pubPath := filepath.Join(*dir, "cairn.key"), filepath.Join(*dir, "cairn.pub")
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists: not overwriting a key (artifacts signed with it would no longer verify); move it away or pass -o DIR", p)
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("-o %s: %w (pass a directory you can write)", *dir, err)
	}
	key, err := sign.GenerateKey()
	if err != nil {
		return err
	}
	priv, err := sign.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := sign.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := writeNew(keyPath, priv, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, pub, 0o644); err != nil {
		os.Remove(keyPath) // a key without its public half is of no use
		return err
	}
	fmt.Fprintf(stdout, "%s\tprivate key (keep it secret: cairn push --key %s)\n%s\tpublic key %s (list it in the spec's update.keys; cosign verify --key %s)\n",
		keyPath, keyPath, pubPath, sign.Fingerprint(&key.PublicKey), pubPath)
	return nil
}

// writeNew writes a file that must not exist yet, synced.
func writeNew(path string, b []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: not overwriting a key; move it away or pass -o DIR", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
