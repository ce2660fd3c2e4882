// Package doccmd finds the commands README.md and docs/*.md show, and says
// which test runs each one, so that no command in the documentation goes
// stale.
//
// A command is a line of a ```sh block; a trailing backslash continues it
// on the next line and # starts a comment. Inline code that starts with
// `make ` counts too (its targets must exist). Every other fenced block
// must name its language (text, yaml, …) so that no command hides in it.
//
//	found, err := doccmd.Find(root)
//	for _, c := range found.For(doccmd.AgentAPITest) {
//		args := doccmd.NodeArgs(c, config, server) // run cairn with these
//	}
//
// Where says where each command is run: the builder's commands by TestDocs
// (qemu-tests), `cairn node` by the QEMU test whose guest fits it, make
// targets by this package's own test (make -n), and the few others are in
// an allow-list with the reason.
package doccmd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Command is one command line of the documentation.
type Command struct {
	// File is the Markdown file, relative to the repository.
	File string
	// Line is the 1-based line the command starts on.
	Line int
	// Text is the command as written, continuation lines joined, without
	// its comment.
	Text string
	// Args is Text split into words as sh does (quotes removed, nothing
	// expanded).
	Args []string
	// Inline is set for a command in inline code rather than a sh block.
	Inline bool
}

// Pos is the command's place, file:line.
func (c Command) Pos() string { return fmt.Sprintf("%s:%d", c.File, c.Line) }

// Found is what Find read.
type Found struct {
	// Commands are the documented commands in file and line order.
	Commands []Command
	// Problems are lines no test could run as they are, each
	// "file:line: problem (fix)".
	Problems []string
}

// For returns the commands Where assigns to test, each command shown in
// several places once (at its first place).
func (f *Found) For(test string) []Command {
	var cmds []Command
	seen := map[string]bool{}
	for _, c := range f.Commands {
		key := strings.Join(c.Args, "\x00")
		if Where(c).Test == test && !seen[key] {
			seen[key] = true
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// Files are the Markdown files Find reads: README.md and docs/*.md.
func Files(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	sort.Strings(docs)
	return append([]string{filepath.Join(root, "README.md")}, docs...), nil
}

// Find reads the commands of README.md and docs/*.md under root.
func Find(root string) (*Found, error) {
	files, err := Files(root)
	if err != nil {
		return nil, err
	}
	found := &Found{}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, path)
		parse(found, rel, string(b))
	}
	return found, nil
}

// inlineMake is inline code that runs make.
var inlineMake = regexp.MustCompile("`(make [^`]+)`")

// parse adds the commands and problems of one Markdown file.
func parse(found *Found, file, text string) {
	problem := func(line int, format string, args ...any) {
		found.Problems = append(found.Problems, fmt.Sprintf("%s:%d: ", file, line)+fmt.Sprintf(format, args...))
	}
	var (
		fence     string // the open fence's language, "" outside a block
		fenceLine int
		pending   string // a command continued with a backslash
		start     int
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			switch {
			case fence == "":
				fence, fenceLine = strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), n
				switch fence {
				case "":
					problem(n, "a code block without a language (write ```sh for commands, which tests run, or ```text, ```yaml, … for anything else)")
					fence = "text"
				case "bash", "shell", "console", "shell-session", "zsh":
					problem(n, "a ```%s block (write ```sh, so the commands in it are found and run)", fence)
				}
			default:
				if pending != "" {
					problem(start, "the last line of the block ends with a backslash (join the command or drop the backslash)")
					pending = ""
				}
				fence = ""
			}
			continue
		}
		if fence == "" {
			for _, m := range inlineMake.FindAllStringSubmatch(line, -1) {
				found.Commands = append(found.Commands, Command{File: file, Line: n, Text: m[1], Args: strings.Fields(m[1]), Inline: true})
			}
			continue
		}
		if fence != "sh" {
			continue
		}
		if pending == "" {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			pending += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		full := strings.TrimSpace(pending + trimmed)
		pending = ""
		args, text, err := split(full)
		switch {
		case err != nil:
			problem(start, "%v in %q", err, full)
		case len(args) == 0: // blank or a comment
		case strings.Contains(text, "…"):
			problem(start, "%q has a placeholder … (show a real example: a test runs it)", text)
		default:
			found.Commands = append(found.Commands, Command{File: file, Line: start, Text: text, Args: args})
		}
	}
	if fence != "" {
		problem(fenceLine, "a code block that is never closed (end it with ```)")
	}
}

// split splits a command line into words as sh does, without expanding
// anything, and returns the line without its comment. It refuses more
// than one command on a line: each must be found and run on its own.
func split(line string) (args []string, text string, err error) {
	var (
		word    strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	end := len(line)
	for i, r := range line {
		switch {
		case escaped:
			word.WriteRune(r)
			escaped = false
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				word.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				args = append(args, word.String())
				word.Reset()
				inWord = false
			}
		case r == '#' && !inWord:
			end = i
		default:
			word.WriteRune(r)
			inWord = true
		}
		if end != len(line) {
			break
		}
	}
	if quote != 0 {
		return nil, "", fmt.Errorf("an unclosed %c quote", quote)
	}
	if inWord {
		args = append(args, word.String())
	}
	for _, a := range args {
		if slices.Contains([]string{"|", "||", "&&", ";", "&"}, a) {
			return nil, "", fmt.Errorf("%q joins two commands (one command per line, so each is found and run)", a)
		}
	}
	return args, strings.TrimSpace(line[:end]), nil
}
