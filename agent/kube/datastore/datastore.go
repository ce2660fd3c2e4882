// Package datastore runs kine on SQLite in this process: the API server's
// etcd, answering the etcd v3 gRPC API on a unix socket that only root can
// open.
//
// It wires kine's SQLite driver and its etcd bridge itself rather than
// calling kine's endpoint package, which links every driver kine has (NATS
// server, Postgres, MySQL, T4 with its S3 client) into the binary.
//
// The SQLite is modernc.org/sqlite, a translation of SQLite's C to Go, that
// kine uses in builds without cgo: cairn-kube is then a static binary
// without a C toolchain per architecture.
//
//	endpoint, err := datastore.Start(ctx, "/var/lib/cairn/kube/db/state.db", "/var/lib/cairn/kube/kine.sock")
//	// --etcd-servers=endpoint
//
// Snapshot copies the database while kine runs (`cairn-kube snapshot`,
// taken before an upgrade's trial boot).
package datastore

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/k3s-io/kine/pkg/drivers"
	_ "github.com/k3s-io/kine/pkg/drivers/sqlite" // registers the sqlite:// scheme
	"github.com/k3s-io/kine/pkg/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Settings kine's own command uses by default.
const (
	// notifyInterval is how often watchers get progress notifications.
	notifyInterval = 5 * time.Second
	// etcdVersion is the etcd version kine claims; the API server turns
	// features on by it (consistent reads from its cache need >= 3.5.13).
	etcdVersion = "3.6.11"
	// maxRequestBytes is etcd's default request size limit (1.5 MiB) plus
	// gRPC framing.
	maxRequestBytes = 1536*1024 + 512*1024
)

// sqliteParams are the DSN parameters: write-ahead log, wait for locks
// instead of failing, take the write lock at the start of a transaction.
const sqliteParams = "_journal=WAL&cache=shared&_busy_timeout=30000&_txlock=immediate&_synchronous=NORMAL"

// Start opens (creating it if missing) the SQLite database at dbPath,
// serves it on the unix socket sock and returns the etcd endpoint to give
// the API server. It serves until ctx ends.
//
// A database SQLite finds corrupt is moved aside first (see
// checkOrMoveAside): the cluster then starts empty rather than not at all.
func Start(ctx context.Context, dbPath, sock string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return "", fmt.Errorf("datastore: %w", err)
	}
	if err := checkOrMoveAside(ctx, dbPath); err != nil {
		return "", err
	}
	cfg := &drivers.Config{
		Endpoint:         "sqlite://" + dbPath + "?" + sqliteParams,
		CompactTimeout:   5 * time.Second,
		CompactMinRetain: 1000,
		CompactBatchSize: 1000,
		PollBatchSize:    500,
		// CompactInterval 0: kine compacts when the API server asks it to
		// (every 5 minutes), as kine's own command does by default.
	}
	var wg sync.WaitGroup
	_, backend, err := drivers.New(ctx, &wg, cfg)
	if err != nil {
		return "", fmt.Errorf("datastore: opening %s: %w", dbPath, err)
	}
	if err := backend.Start(ctx); err != nil {
		return "", fmt.Errorf("datastore: starting kine on %s: %w", dbPath, err)
	}
	srv := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}),
		grpc.MaxRecvMsgSize(maxRequestBytes),
	)
	server.New(backend, "unix", notifyInterval, etcdVersion).Register(srv)

	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("datastore: removing the old socket: %w", err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return "", fmt.Errorf("datastore: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		lis.Close()
		return "", fmt.Errorf("datastore: %w", err)
	}
	go func() {
		<-ctx.Done()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			srv.Stop()
		}
	}()
	go srv.Serve(lis) //nolint:errcheck // Serve returns when ctx stops the server
	return "unix://" + sock, nil
}

// checkOrMoveAside checks the database at dbPath (check) and moves a
// corrupt one aside with a record of why (quarantine): a node whose
// database broke (a power cut on a card that lies about flushes, a full
// disk at the wrong moment) comes back as an empty cluster the node agent
// fills again with its manifests, and says so, instead of failing to
// start forever. Any other error is returned: the database stays.
func checkOrMoveAside(ctx context.Context, dbPath string) error {
	began := time.Now()
	err := check(ctx, dbPath)
	var corrupt *CorruptError
	if !errors.As(err, &corrupt) {
		if err != nil {
			return fmt.Errorf("datastore: checking %s: %w (the database is left as it is; fix the cause, e.g. free space on its disk)", dbPath, err)
		}
		log.Printf("cairn-kube: datastore %s checked in %s", dbPath, time.Since(began).Round(time.Millisecond))
		return nil
	}
	record, err := quarantine(dbPath, corrupt.Reason, time.Now())
	if err != nil {
		return fmt.Errorf("datastore: %s is corrupt (%s) and could not be moved aside: %w (move or delete it to start an empty cluster)", dbPath, corrupt.Reason, err)
	}
	log.Printf("cairn-kube: ERROR: datastore %s is corrupt (%s): moved aside (see %s); starting with an empty datastore", dbPath, corrupt.Reason, record)
	return nil
}
