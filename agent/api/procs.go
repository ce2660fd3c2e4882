package api

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Process is one userspace process and its memory: what the OS itself
// costs, process by process.
type Process struct {
	PID  int    `json:"pid"`
	Name string `json:"name"` // from /proc/PID/comm
	// RSSBytes counts every resident page the process maps, shared or not;
	// PSSBytes divides each shared page among the processes that map it,
	// so PSS adds up across processes and RSS does not.
	RSSBytes uint64 `json:"rssBytes"`
	PSSBytes uint64 `json:"pssBytes"`
	// AnonBytes is the resident memory no file backs (heap, stacks): what
	// the kernel cannot drop under pressure; the rest of RSS is mostly the
	// program's own text, which it can re-read from the slot.
	AnonBytes uint64 `json:"anonBytes"`
}

// readProcesses lists the userspace processes (kernel threads map no
// memory and are left out) with their RSS and PSS from smaps_rollup.
func readProcesses() ([]Process, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		rollup, err := os.ReadFile(filepath.Join(dir, "smaps_rollup"))
		if err != nil || len(rollup) == 0 {
			continue // a kernel thread, or gone
		}
		comm, _ := os.ReadFile(filepath.Join(dir, "comm"))
		p := Process{PID: pid, Name: strings.TrimSpace(string(comm))}
		p.RSSBytes, p.PSSBytes, p.AnonBytes = parseRollup(rollup)
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// parseRollup reads the Rss:, Pss: and Anonymous: lines (in kB) of smaps_rollup.
func parseRollup(b []byte) (rss, pss, anon uint64) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			rss = n << 10
		case "Pss:":
			pss = n << 10
		case "Anonymous:":
			anon = n << 10
		}
	}
	return rss, pss, anon
}
