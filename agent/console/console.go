// Package console prints the lines of the serial console contract
// (docs/node.md#console-lines: "cairn: init ok slot=a version=…", "cairn: agent ready", …)
// and gives the in-OS programs their console logger. Tests and operators
// rely on these lines: add new ones, never rename.
package console

import (
	"fmt"
	"log/slog"
	"os"
)

// Out receives the lines. cairn-init's stdout is /dev/console, and the
// programs it starts inherit it.
var Out = os.Stdout

// Say prints one contract line: "cairn: " and the formatted text.
func Say(format string, args ...any) {
	fmt.Fprintf(Out, "cairn: "+format+"\n", args...)
}

// Logger is a text logger on the console without timestamps (the kernel
// console has its own clock), for the details around the contract lines.
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(Out, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}
