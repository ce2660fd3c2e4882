// Command hello is the test system service. By default it says hello a
// few times and exits with status 3, so the agent has a crash to restart
// it from; with the argument "idle" it says hello once and then waits,
// as a well-behaved idle service does (for memory figures). For the
// Kubernetes tests, "serve" answers HTTP on :8080 and "fetch URL" gets URL
// (resolving its host through the cluster DNS), prints the answer and
// exits 0, retrying for a minute; "kill NAME" (in a pod sharing the host's
// PID namespace) sends SIGKILL to every process called NAME and waits
// until they are gone. For bad-input tests, in pods with a hostPath:
// "write PATH TEXT" writes a file (through a rename, as editors do);
// "fill PATH HOLD" takes every free block of PATH's file system with the
// file PATH, keeps it for HOLD (a Go duration) or until SIGTERM, then
// removes it; "corrupt PATH..." overwrites the first 64 KiB of each file
// that exists with 0xff bytes. Steps chain with "then": "kill cairn-kube
// then corrupt DB". "cat PATH" prints a file (in a pod sharing the host's
// PID namespace, /proc/1/net/tcp is the host's listening sockets).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if slices.Contains(os.Args, "then") || (len(os.Args) > 1 && slices.Contains([]string{"write", "fill", "corrupt", "cat"}, os.Args[1])) {
		os.Exit(steps(os.Args[1:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello from cairn") })
		fmt.Println("serving on :8080")
		fmt.Fprintln(os.Stderr, http.ListenAndServe(":8080", nil))
		os.Exit(1)
	}
	if len(os.Args) > 2 && os.Args[1] == "fetch" {
		os.Exit(fetch(os.Args[2]))
	}
	if len(os.Args) > 2 && os.Args[1] == "kill" {
		os.Exit(kill(os.Args[2]))
	}
	if len(os.Args) > 1 && os.Args[1] == "idle" {
		fmt.Println("hello from the test service, idling")
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		return
	}
	for i := 1; i <= 3; i++ {
		fmt.Printf("hello from the test service, line %d\n", i)
		time.Sleep(time.Second)
	}
	fmt.Fprintln(os.Stderr, "test service: exiting with status 3")
	os.Exit(3)
}

// fetch gets url until it answers, for up to a minute.
func fetch(url string) int {
	client := &http.Client{Timeout: 5 * time.Second}
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(2 * time.Second) {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Println("fetch:", err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("fetched %s: %s", url, body)
		return 0
	}
	return 1
}

// kill sends SIGKILL to the processes whose command name is name and
// waits until they are gone or zombies (they write nothing more).
func kill(name string) int {
	entries, _ := os.ReadDir("/proc")
	var killed []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			fmt.Printf("killed %s (pid %d)\n", name, pid)
			killed = append(killed, e.Name())
		}
	}
	if len(killed) == 0 {
		fmt.Println("no process called", name)
		return 1
	}
	for _, pid := range killed {
		for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
			stat, err := os.ReadFile("/proc/" + pid + "/stat") // "PID (COMM) STATE …"
			_, rest, _ := strings.Cut(string(stat), ") ")
			if err != nil || strings.HasPrefix(rest, "Z") {
				break
			}
		}
	}
	return 0
}

// steps runs the steps of args, separated by "then", until one fails.
func steps(args []string) int {
	for len(args) > 0 {
		step := args
		if i := slices.Index(args, "then"); i >= 0 {
			step, args = args[:i], args[i+1:]
		} else {
			args = nil
		}
		if code := run(step); code != 0 {
			return code
		}
	}
	return 0
}

// run runs one step.
func run(step []string) int {
	switch {
	case len(step) == 2 && step[0] == "kill":
		return kill(step[1])
	case len(step) == 2 && step[0] == "cat":
		b, err := os.ReadFile(step[1])
		os.Stdout.Write(b)
		if err != nil {
			fmt.Println("cat:", err)
			return 1
		}
		return 0
	case len(step) == 3 && step[0] == "write":
		return write(step[1], step[2])
	case len(step) == 3 && step[0] == "fill":
		hold, err := time.ParseDuration(step[2])
		if err != nil {
			fmt.Println("fill:", err)
			return 2
		}
		return fill(step[1], hold)
	case len(step) >= 2 && step[0] == "corrupt":
		return corrupt(step[1:])
	}
	fmt.Printf("unknown step %q\n", step)
	return 2
}

// write writes text to path through a temporary file and a rename.
func write(path, text string) int {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	err := os.MkdirAll(filepath.Dir(path), 0o755)
	if err == nil {
		err = os.WriteFile(tmp, []byte(text), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		fmt.Println("write:", err)
		return 1
	}
	fmt.Printf("wrote %s (%d bytes)\n", path, len(text))
	return 0
}

// fill takes the free space of path's file system with the file path:
// fallocate (no data written, so it takes a moment) in shrinking chunks,
// then plain writes until the disk says it is full.
func fill(path string, hold time.Duration) int {
	f, err := os.Create(path)
	if err != nil {
		fmt.Println("fill:", err)
		return 1
	}
	defer os.Remove(path)
	var size int64
	for chunk := int64(256 << 20); chunk >= 4096; chunk /= 4 {
		for syscall.Fallocate(int(f.Fd()), 0, size, chunk) == nil {
			size += chunk
		}
	}
	buf := make([]byte, 4096)
	for {
		n, err := f.WriteAt(buf, size)
		size += int64(n)
		if err != nil {
			break
		}
	}
	f.Sync()
	var st syscall.Statfs_t
	syscall.Statfs(filepath.Dir(path), &st)
	fmt.Printf("filled %s: %d MiB, %d KiB left; holding for %s\n", path, size>>20, st.Bavail*uint64(st.Bsize)>>10, hold)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case <-time.After(hold):
	}
	f.Close()
	if err := os.Remove(path); err != nil {
		fmt.Println("fill:", err)
		return 1
	}
	fmt.Println("removed", path)
	return 0
}

// corrupt overwrites the start of each file of paths that exists.
func corrupt(paths []string) int {
	junk := bytes.Repeat([]byte{0xff}, 64<<10)
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			fmt.Println("no", p)
			continue
		}
		if err == nil {
			_, err = f.WriteAt(junk, 0)
			if err == nil {
				err = f.Sync()
			}
			f.Close()
		}
		if err != nil {
			fmt.Println("corrupt:", err)
			return 1
		}
		fmt.Println("corrupted", p)
	}
	return 0
}
