package kubeboot

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sort"
)

// Auto-deploy: the built-in manifests (the cluster DNS, …), the baked ones
// (ManifestsDir) and the user's drop-ins (UserManifestsDir), applied with
// server-side apply, in that order.
//
// watch calls deploy on every poll while the cluster is ready (every 15
// s): a file dropped in, or changed, is applied on the next poll; one
// unchanged since it was applied without error is not sent again. When the
// cluster may have lost what was applied (the first time, ready again
// after it was not, cairn-kube restarted: its datastore may have been
// found corrupt and started empty) everything is applied again; server-side
// apply makes that harmless. A removed file's objects stay in the cluster.
//
// A file that does not parse or apply is a condition naming it, shown
// until it is fixed or removed; the others are applied all the same. One
// that failed to apply is tried again on every poll.

// manifestDirs are read for manifests, in order (a seam for tests).
var manifestDirs = []string{ManifestsDir, UserManifestsDir}

// manifest is an auto-deploy manifest and where it came from.
type manifest struct {
	name string // a path, or "coredns (built in)"
	data []byte
	err  error // reading it failed
}

// deployer remembers what was applied, for watch's goroutine.
type deployer struct {
	n *Node
	// applied is the SHA-256 of each manifest as last applied without
	// error, or found malformed (reported, not parsed again until it
	// changes).
	applied map[string][sha256.Size]byte
	// forward is whether the applied cluster DNS forwards to the node's
	// resolvers (it cannot when there are none).
	forward bool
}

// manifests gathers the manifests in the order they are applied.
func (d *deployer) manifests() []manifest {
	forward := hasResolvers()
	if forward != d.forward && d.applied != nil {
		d.n.opts.Log.Info("node resolvers changed; cluster DNS follows", "forward", forward)
	}
	d.forward = forward
	out := []manifest{{name: "coredns (built in)", data: CoreDNS(d.n.opts.Config, forward)}, {name: "node-proxier (built in)", data: NodeProxier}}
	for _, dir := range manifestDirs {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				names = append(names, filepath.Join(dir, e.Name()))
			}
		}
		sort.Strings(names)
		for _, p := range names {
			data, err := os.ReadFile(p)
			out = append(out, manifest{name: p, data: data, err: err})
		}
	}
	return out
}

// deploy applies the manifests new or changed since they were applied, or
// all of them when all is set.
func (d *deployer) deploy(ctx context.Context, all bool) {
	if all || d.applied == nil {
		d.applied = map[string][sha256.Size]byte{}
	}
	n := d.n
	files := d.manifests()
	seen := map[string]bool{}
	applied, failed := 0, 0
	for _, f := range files {
		key := "manifest " + f.name
		seen[key] = true
		if f.err != nil {
			n.setCondition(key, "manifest %s: %v", f.name, f.err)
			failed++
			continue
		}
		sum := sha256.Sum256(f.data)
		if prev, ok := d.applied[f.name]; ok && prev == sum {
			continue
		}
		objs, err := ParseManifest(f.data)
		if err != nil {
			n.setCondition(key, "manifest %s: %v (fix the file; the other manifests are applied)", f.name, err)
			d.applied[f.name] = sum
			failed++
			continue
		}
		if errs := n.kube.ApplyAll(ctx, objs); len(errs) > 0 {
			n.setCondition(key, "manifest %s: %v (tried again every 15 s)", f.name, errors.Join(errs...))
			delete(d.applied, f.name)
			failed++
			continue
		}
		d.applied[f.name] = sum
		n.clearCondition(key)
		applied++
	}
	for _, key := range n.health.cond.keys("manifest ") {
		if !seen[key] {
			n.clearCondition(key) // the file is gone
		}
	}
	if applied+failed > 0 {
		n.opts.Log.Info("manifests applied", "applied", applied, "failed", failed, "all", all)
	}
}
