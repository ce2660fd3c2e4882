// Command hello is the test system service: it says hello a few times and
// then exits with status 3, so the agent has a crash to restart it from.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	for i := 1; i <= 3; i++ {
		fmt.Printf("hello from the test service, line %d\n", i)
		time.Sleep(time.Second)
	}
	fmt.Fprintln(os.Stderr, "test service: exiting with status 3")
	os.Exit(3)
}
