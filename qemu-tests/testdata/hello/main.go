// Command hello is the test system service. By default it says hello a
// few times and exits with status 3, so the agent has a crash to restart
// it from; with the argument "idle" it says hello once and then waits,
// as a well-behaved idle service does (for memory figures). For the
// Kubernetes tests, "serve" answers HTTP on :8080 and "fetch URL" gets URL
// (resolving its host through the cluster DNS), prints the answer and
// exits 0, retrying for a minute; "kill NAME" (in a pod sharing the host's
// PID namespace) sends SIGKILL to every process called NAME.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
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

// kill sends SIGKILL to the processes whose command name is name.
func kill(name string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
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
			n++
		}
	}
	if n == 0 {
		fmt.Println("no process called", name)
		return 1
	}
	return 0
}
