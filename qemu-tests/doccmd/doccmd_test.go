package doccmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// root is the repository: tests run in qemu-tests/doccmd.
var root, _ = filepath.Abs(filepath.Join("..", ".."))

// TestDocCommands fails for every documented command no test runs, and
// for every line of the docs a test could not run as written.
func TestDocCommands(t *testing.T) {
	found, err := Find(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range found.Problems {
		t.Error(p)
	}
	counts := map[string]int{}
	for _, c := range found.Commands {
		run := Where(c)
		if run.Test == "" {
			t.Errorf("%s: %s: %s", c.Pos(), c.Text, run.How)
		}
		counts[run.Test]++
	}
	t.Logf("documented commands by where they run: %v", counts)
	if counts[DocsTest] == 0 || counts[AgentAPITest] == 0 {
		t.Errorf("no builder or node command found in %s and docs/*.md: is the search broken?", filepath.Join(root, "README.md"))
	}
}

// TestMakeTargets checks that make knows the targets and variables of
// every documented make command (`make -n` prints the recipe and runs
// nothing). What the targets do is make test's own business.
func TestMakeTargets(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on this machine")
	}
	found, err := Find(root)
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]bool{}
	for _, c := range found.For(MakeTest) {
		// Inline code may name a variable's value as …; the target is
		// what must exist.
		args := slices.DeleteFunc(slices.Clone(c.Args[1:]), func(a string) bool { return strings.Contains(a, "…") })
		key := strings.Join(args, " ")
		if checked[key] {
			continue
		}
		checked[key] = true
		cmd := exec.Command("make", append([]string{"-n", "-C", root}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %s: make -n %s: %v (add the target to the Makefile, or fix the docs)\n%s", c.Pos(), c.Text, key, err, lastLines(string(out), 5))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func TestParse(t *testing.T) {
	doc := "# Title\n" +
		"Run `make run` or `make image SPEC=… BOARD=…`.\n" +
		"```sh\n" +
		"# a comment\n" +
		"cairn build -f images/minimal.yaml \\\n" +
		"    --board qemu-x86_64 -o out   # the image\n" +
		"\n" +
		"cairn node --config 'a b.yaml' logs hello\n" +
		"```\n" +
		"```yaml\n" +
		"cairn: not a command\n" +
		"```\n" +
		"```\n" +
		"untagged\n" +
		"```\n" +
		"```sh\n" +
		"cairn node --config … status\n" +
		"cairn node status | grep slot\n" +
		"```\n"
	f := &Found{}
	parse(f, "docs/x.md", doc)
	var got []string
	for _, c := range f.Commands {
		got = append(got, c.Pos()+" "+strings.Join(c.Args, "|"))
	}
	want := []string{
		"docs/x.md:2 make|run",
		"docs/x.md:2 make|image|SPEC=…|BOARD=…",
		"docs/x.md:5 cairn|build|-f|images/minimal.yaml|--board|qemu-x86_64|-o|out",
		"docs/x.md:8 cairn|node|--config|a b.yaml|logs|hello",
	}
	if !slices.Equal(got, want) {
		t.Errorf("commands:\ngot  %q\nwant %q", got, want)
	}
	wantProblems := []string{"docs/x.md:13:", "docs/x.md:17:", "docs/x.md:18:"}
	if len(f.Problems) != len(wantProblems) {
		t.Fatalf("problems = %q, want one at each of %q", f.Problems, wantProblems)
	}
	for i, p := range f.Problems {
		if !strings.HasPrefix(p, wantProblems[i]) {
			t.Errorf("problem %d = %q, want it at %s", i, p, wantProblems[i])
		}
	}
}

func TestWhere(t *testing.T) {
	for _, tc := range []struct {
		line, test string
	}{
		{"cairn validate -f images/minimal.yaml --board qemu-x86_64", DocsTest},
		{"cairn node --config x.yaml --server 192.0.2.10 status", AgentAPITest},
		{"cairn node --server=192.0.2.10 --tail 5 logs hello", AgentAPITest},
		{"cairn node --config x.yaml join-kubeconfig --node edge-2", KubernetesTest},
		{"cairn node --config x.yaml shutdown", ""},
		{"make test-full", MakeTest},
		{"mcopy -i edge-2.img@@1M edge-2.kubeconfig ::/cairn-kube-join.kubeconfig", Allowed},
		{"kubectl get nodes", ""},
	} {
		args, text, err := split(tc.line)
		if err != nil {
			t.Fatal(err)
		}
		if got := Where(Command{Text: text, Args: args}); got.Test != tc.test {
			t.Errorf("Where(%q) = %+v, want test %q", tc.line, got, tc.test)
		}
	}
}

func TestNodeArgs(t *testing.T) {
	args, _, _ := split("cairn node --config server.node.yaml --server 192.0.2.10 join-kubeconfig --node edge-2 > edge-2.kubeconfig")
	got := NodeArgs(Command{Args: args}, "/t/node.yaml", "127.0.0.1:1234")
	want := []string{"node", "--config", "/t/node.yaml", "--server", "127.0.0.1:1234", "join-kubeconfig", "--node", "edge-2"}
	if !slices.Equal(got, want) {
		t.Errorf("NodeArgs = %q, want %q", got, want)
	}
}

func TestBuilderArgs(t *testing.T) {
	args, _, _ := split("cairn build -f images/minimal.yaml --board qemu-x86_64 -o out --pki=p")
	got := BuilderArgs(Command{Args: args}, BuildDirs{Out: "O", Bin: "B", PKI: "P", Cache: "C"})
	want := []string{"build", "-f", "images/minimal.yaml", "--board", "qemu-x86_64", "-o", "O", "-bin-dir", "B", "-pki", "P", "-cache", "C"}
	if !slices.Equal(got, want) {
		t.Errorf("BuilderArgs = %q, want %q", got, want)
	}
}

// TestLinks checks that every relative link of README.md, docs/*.md and
// agent/kube/README.md names a file of the tree and, into a Markdown
// file, a heading that file has.
func TestProvisionArgs(t *testing.T) {
	args, _, _ := split("cairn provision -f images/minimal.yaml --name edge-1 --address=10.0.0.5 out/minimal-qemu-x86_64.img -o out/edge-1.node.yaml")
	got := ProvisionArgs(Command{Args: args}, "/t/disk.img", "/t/pki", "/t/node.yaml")
	want := []string{"provision", "--name", "edge-1", "--address=10.0.0.5", "--pki", "/t/pki", "-o", "/t/node.yaml", "/t/disk.img"}
	if !slices.Equal(got, want) {
		t.Errorf("ProvisionArgs = %q, want %q", got, want)
	}
}

func TestLinks(t *testing.T) {
	files, err := Files(root)
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "agent", "kube", "README.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		for n, line := range strings.Split(string(b), "\n") {
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target, anchor, _ := strings.Cut(m[1], "#")
				if strings.Contains(target, "://") {
					continue
				}
				path := file
				if target != "" {
					path = filepath.Join(filepath.Dir(file), target)
				}
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s:%d: link to %s: no such file", rel, n+1, m[1])
					continue
				}
				if anchor != "" && !slices.Contains(anchors(t, path), anchor) {
					t.Errorf("%s:%d: link to %s: no heading with that anchor in %s (have %v)", rel, n+1, m[1], target, anchors(t, path))
				}
			}
		}
	}
}

// anchors are the anchors GitHub gives the headings of a Markdown file:
// lowercase, punctuation dropped, spaces as dashes.
func anchors(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var as []string
	inFence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var slug strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				slug.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				slug.WriteRune(r)
			}
		}
		as = append(as, slug.String())
	}
	return as
}
