// Command testsvc is the system service the integration tests run in a
// container: it logs, optionally listens on TCP, tells sd_notify it is ready,
// and then runs until killed, or exits at once with EXIT_CODE.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	fmt.Printf("testsvc %s starting pid=%d\n", os.Getenv("SVC"), os.Getpid())
	if code := os.Getenv("EXIT_CODE"); code != "" {
		fmt.Fprintln(os.Stderr, "testsvc: exiting with", code)
		n, _ := strconv.Atoi(code)
		os.Exit(n)
	}
	if port := os.Getenv("LISTEN"); port != "" {
		// Listen only after a delay, so a TCP probe has to wait.
		time.Sleep(500 * time.Millisecond)
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsvc:", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		fmt.Println("listening on", l.Addr())
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		time.Sleep(300 * time.Millisecond)
		sent, err := daemon.SdNotify(false, daemon.SdNotifyReady)
		fmt.Printf("sd_notify READY=1 sent=%v err=%v\n", sent, err)
	}
	for i := 0; ; i++ {
		fmt.Printf("tick %d\n", i)
		time.Sleep(200 * time.Millisecond)
	}
}
