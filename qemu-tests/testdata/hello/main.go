// Command hello is the test system service. By default it says hello a
// few times and exits with status 3, so the agent has a crash to restart
// it from; with the argument "idle" it says hello once and then waits,
// as a well-behaved idle service does (for memory figures).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
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
