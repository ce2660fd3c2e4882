package health

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Free space on CAIRN-DATA below which the disk part is degraded: 5 %
// (where the kubelet starts evicting pods, agent/kube/args) or
// LowSpaceMin on a small disk, whichever is more; it is OK again with 1 %
// (at least 16 MiB) more free, so the report does not flap at the edge.
const (
	LowSpacePercent = 5
	LowSpaceMin     = 64 << 20
)

// LowSpace reports whether free bytes of size are too little, given
// whether they already were (the hysteresis above).
func LowSpace(free, size uint64, was bool) bool {
	limit := max(size*LowSpacePercent/100, LowSpaceMin)
	if was {
		limit += max(size/100, 16<<20)
	}
	return free < limit
}

// DiskReading is one look at a file system's free space.
type DiskReading struct {
	// At is when it was taken; zero before the first look.
	At time.Time
	// Free is the bytes free for unprivileged use (as the kubelet
	// counts), Size the file system's size.
	Free, Size uint64
	// Low is LowSpace's verdict.
	Low bool
	// ReadOnly is set when the file system is mounted read-only: for
	// CAIRN-DATA, the kernel found it damaged (datafs.MountFlags).
	ReadOnly bool
	// Err is why the file system could not be read.
	Err error
}

// Disk watches the free space of the file system holding Path (CAIRN-DATA)
// for every node, and reports it as the "disk" part. Others that say it
// their way (Kubernetes, whose pods are evicted) follow its readings with
// Watch. Make one with NewDisk; set the fields before Run.
type Disk struct {
	// Path is a directory on the file system.
	Path string
	// Every is the time between looks (default 10 s).
	Every time.Duration
	// Statfs is the system call, a seam for tests (default unix.Statfs).
	Statfs func(path string, st *unix.Statfs_t) error
	// Log receives read errors (default slog.Default()).
	Log *slog.Logger

	part *Part

	mu      sync.Mutex
	last    DiskReading
	changed chan struct{}
}

// NewDisk returns a Disk for the file system holding path.
func NewDisk(path string) *Disk {
	return &Disk{Path: path, Every: 10 * time.Second, Statfs: unix.Statfs, Log: slog.Default(), part: NewPart("disk"), changed: make(chan struct{})}
}

// Part is the disk's part, to attach to the model.
func (d *Disk) Part() *Part { return d.part }

// Watch returns the latest reading and a channel closed at the next.
func (d *Disk) Watch() (DiskReading, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last, d.changed
}

// Run looks at the file system now and every d.Every until ctx ends.
func (d *Disk) Run(ctx context.Context) {
	for {
		d.look()
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.Every):
		}
	}
}

// look takes one reading, reports it on the part and wakes the watchers.
func (d *Disk) look() {
	var st unix.Statfs_t
	r := DiskReading{At: now()}
	d.mu.Lock()
	last := d.last
	d.mu.Unlock()
	if err := d.Statfs(d.Path, &st); err != nil {
		// One failed look proves nothing: the last figures stand.
		r.Free, r.Size, r.Low, r.Err = last.Free, last.Size, last.Low, err
		d.Log.Warn("free space", "path", d.Path, "err", err)
	} else {
		r.Free, r.Size = st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize)
		r.ReadOnly = st.Flags&unix.ST_RDONLY != 0
		r.Low = LowSpace(r.Free, r.Size, last.Low)
	}
	d.mu.Lock()
	d.last = r
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	d.part.Set(diskState(r))
}

// diskState is the part's verdict on a reading.
func diskState(r DiskReading) (State, string) {
	switch {
	case r.Err != nil && r.Size == 0:
		return Degraded, fmt.Sprintf("free space unknown: %v", r.Err)
	case r.ReadOnly:
		return Failed, "CAIRN-DATA is read-only: the kernel found its file system damaged and stopped writing to it (the console has its EXT4-fs error lines); reboot to mount it read-write again, or reflash the node"
	case r.Low:
		return Degraded, fmt.Sprintf("CAIRN-DATA is nearly full: %d MiB free of %d MiB: free space (delete unused images, volumes, logs) or give the node a bigger disk", r.Free>>20, r.Size>>20)
	}
	return OK, fmt.Sprintf("%d MiB free of %d MiB", r.Free>>20, r.Size>>20)
}
