// Command cairn-pause is the pod sandbox ("pause") process CRI starts first
// in every pod: it holds the pod's namespaces open and does nothing else. It
// sleeps until SIGINT or SIGTERM, then exits 0. When the pod shares its PID
// namespace, it is PID 1 there and reaps the zombies of the pod's orphans,
// as a PID 1 must, so they do not fill the process table.
//
// It stands in for Kubernetes' C pause: Cairn builds its images from Go
// modules alone and ships no C toolchain output it does not have to.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		// Like the C pause, take no arguments; "-v" asks who we are.
		os.Stderr.WriteString("cairn-pause: holds a pod's namespaces; takes no arguments\n")
		if os.Args[1] == "-v" {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if os.Getpid() != 1 {
		// Not fatal: containerd may start us without a PID namespace.
		os.Stderr.WriteString("cairn-pause: warning: not PID 1, orphans are reaped by the real PID 1\n")
	}
	// A handler (not the default action) is what lets a PID 1 in a PID
	// namespace receive SIGTERM from inside it at all.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every child that has exited. Signals coalesce, so one
// SIGCHLD may stand for many children: wait until none is left.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
