package doccmd

import (
	"fmt"
	"slices"
	"strings"
)

// Run says where a documented command is run.
type Run struct {
	// Test is the test that runs or checks the command; "" when none does.
	Test string
	// How says what that test does with it, or why nothing runs it.
	How string
}

// The tests that run documented commands.
const (
	// DocsTest, TestDocs in qemu-tests, runs `cairn validate` and `cairn
	// build` on the real inputs, each build into a directory of its own.
	DocsTest = "TestDocs"
	// AgentAPITest, TestAgentAPI in qemu-tests, runs the node commands a
	// node with one service answers, against its guest.
	AgentAPITest = "TestAgentAPI"
	// KubernetesTest, TestKubernetes in qemu-tests, runs the node
	// commands that need a Kubernetes server node, against its guest.
	KubernetesTest = "TestKubernetes"
	// MakeTest, TestMakeTargets in this package, checks that `make -n`
	// accepts the targets and variables of a make command.
	MakeTest = "TestMakeTargets"
	// Allowed marks a command of the allow-list: How says why no test runs it.
	Allowed = "allowed"
)

// nodeTests is the test whose guest runs each `cairn node` command.
// reboot and shutdown are missing on purpose: the guests have other work
// after these steps, so the docs describe them without a command block.
var nodeTests = map[string]string{
	"status":          AgentAPITest,
	"services":        AgentAPITest,
	"logs":            AgentAPITest,
	"restart":         AgentAPITest,
	"metrics":         AgentAPITest,
	"kubeconfig":      KubernetesTest,
	"join-kubeconfig": KubernetesTest,
}

// allowList holds the commands no test runs as written, each with why.
// Keep it short: a command a test can run belongs to that test.
var allowList = []struct {
	words  []string
	reason string
}{
	{[]string{"bmaptool", "copy", "--bmap"}, "it writes a card; TestBuildChecksOut (builder/build) runs the same bmaptool copy --bmap into a file"},
	{[]string{"mcopy", "-i"}, "it writes onto an image's ESP; putOnESP (qemu-tests/agent_test.go) runs the same mcopy -i IMAGE@@1M for TestNodeFile"},
	{[]string{"bash", ".ci/run"}, "it is CI's entry point, which runs make test"},
	{[]string{"cairn", "flash"}, "it writes a card; TestFlashCommand (builder/cmd/cairn) runs the same flags onto loop devices, and builder/flash's tests every image format"},
	{[]string{"cairn", "serve"}, "it serves until stopped, on a site's network; TestPXE (qemu-tests) runs cairn serve --interface on a network of namespaces, and builder/serve's tests print the --dhcp-options"},
}

// Where says which test runs c, or why none does.
func Where(c Command) Run {
	a := c.Args
	switch {
	case len(a) >= 2 && a[0] == "cairn" && (a[1] == "validate" || a[1] == "build"):
		return Run{DocsTest, "runs it in the repository on the inputs of the QEMU tests"}
	case len(a) >= 2 && a[0] == "cairn" && a[1] == "provision":
		return Run{DocsTest, "runs it on a copy of the minimal image the QEMU tests built, with their PKI"}
	case len(a) >= 2 && a[0] == "cairn" && a[1] == "node":
		sub := NodeSubcommand(c)
		if t, ok := nodeTests[sub]; ok {
			return Run{t, "runs it against its guest, with the guest's --config and --server"}
		}
		return Run{"", fmt.Sprintf("no QEMU test runs `cairn node %s` (describe it in prose, or run it in a test and add it to nodeTests in qemu-tests/doccmd/where.go)", sub)}
	case len(a) >= 1 && a[0] == "make":
		return Run{MakeTest, "checks that make -n accepts it"}
	}
	for _, e := range allowList {
		if len(a) >= len(e.words) && slices.Equal(a[:len(e.words)], e.words) {
			return Run{Allowed, e.reason}
		}
	}
	return Run{"", "no test runs it (run it in a test and say so in qemu-tests/doccmd/where.go, or add it to allowList there with the reason)"}
}

// nodeValueFlags are the flags of `cairn node` that take a value.
var nodeValueFlags = []string{"config", "server", "tail", "kube-server", "node", "name", "wait"}

// NodeSubcommand is the subcommand of a `cairn node` command ("status",
// "logs", …), or "" if it has none.
func NodeSubcommand(c Command) string {
	a := c.Args[2:]
	for i := 0; i < len(a); i++ {
		name, hasValue, isFlag := flagName(a[i])
		switch {
		case !isFlag:
			return a[i]
		case !hasValue && slices.Contains(nodeValueFlags, name):
			i++
		}
	}
	return ""
}

// NodeArgs are the arguments to run c, a `cairn node` command, with: its
// --config and --server replaced by config and server, and the output
// redirection dropped (the caller gets the output).
func NodeArgs(c Command, config, server string) []string {
	args := []string{"node", "--config", config, "--server", server}
	a := c.Args[2:]
	for i := 0; i < len(a); i++ {
		name, hasValue, isFlag := flagName(a[i])
		switch {
		case a[i] == ">" || a[i] == ">>":
			i++
		case isFlag && (name == "config" || name == "server"):
			if !hasValue {
				i++
			}
		default:
			args = append(args, a[i])
		}
	}
	return args
}

// BuildDirs are the directories a documented build writes and reads
// instead of the ones it names or defaults to, so that it touches nothing
// of the user's.
type BuildDirs struct {
	Out, Bin, PKI, Cache string
}

// BuilderArgs are the arguments to run c, a `cairn validate` or `cairn
// build` command, with a build's -o, --bin-dir, --pki and --cache
// replaced by dirs.
func BuilderArgs(c Command, dirs BuildDirs) []string {
	if c.Args[1] != "build" {
		return c.Args[1:]
	}
	replaced := map[string]string{"o": dirs.Out, "bin-dir": dirs.Bin, "pki": dirs.PKI, "cache": dirs.Cache}
	args := []string{"build"}
	a := c.Args[2:]
	for i := 0; i < len(a); i++ {
		name, hasValue, isFlag := flagName(a[i])
		if _, ok := replaced[name]; isFlag && ok {
			if !hasValue {
				i++
			}
			continue
		}
		args = append(args, a[i])
	}
	for _, name := range []string{"o", "bin-dir", "pki", "cache"} {
		args = append(args, "-"+name, replaced[name])
	}
	return args
}

// ProvisionArgs are the arguments to run c, a `cairn provision` command,
// on disk with the PKI directory pki, writing the client config to out:
// its disk, --pki, -f and -o replaced.
func ProvisionArgs(c Command, disk, pki, out string) []string {
	args := []string{"provision"}
	a := c.Args[2:]
	for i := 0; i < len(a); i++ {
		name, hasValue, isFlag := flagName(a[i])
		switch {
		case a[i] == ">" || a[i] == ">>":
			i++
		case !isFlag:
			// the disk: replaced below
		case name == "pki" || name == "f" || name == "o":
			if !hasValue {
				i++
			}
		case name == "name" || name == "address":
			args = append(args, a[i])
			if !hasValue && i+1 < len(a) {
				i++
				args = append(args, a[i])
			}
		default:
			args = append(args, a[i])
		}
	}
	return append(args, "--pki", pki, "-o", out, disk)
}

// flagName reads a Go flag argument: -name, --name, -name=value.
func flagName(arg string) (name string, hasValue, isFlag bool) {
	if len(arg) < 2 || arg[0] != '-' {
		return "", false, false
	}
	name = strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	name, _, hasValue = strings.Cut(name, "=")
	return name, hasValue, true
}
