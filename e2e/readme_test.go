package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/pyrovm/pyro/internal/testutil"
)

// readmeBlock is one ```sh or ```bash block of a Markdown file and what the
// <!-- test: ... --> comments right above it say about it.
type readmeBlock struct {
	file   string   // relative to the repository
	line   int      // of the opening fence
	script string   // the block's lines, in order
	skip   string   // why the whole block is not run ("" = run it)
	expect []string // text its output must contain
	notRun []string // its lines a skip-line directive left out, with why
}

// readmeDirective is one `<!-- test: VERB ARG -->` line. Verbs:
//
//	skip REASON            the next block is not run
//	skip-line TEXT: REASON lines of the next block holding TEXT are not run
//	                       (each line alone: not for a line a backslash continues)
//	expect TEXT            the next block's stdout+stderr holds TEXT
var readmeDirectivePrefix = "<!-- test: "

// readmeBlocks reads the shell blocks of a Markdown file in order.
func readmeBlocks(t *testing.T, root, name string) []readmeBlock {
	t.Helper()
	f, err := os.Open(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks            []readmeBlock
		pending           []string // directives waiting for their block
		cur               *readmeBlock
		skipLines         map[string]string
		lineNo            int
		inOtherFence      bool
		sawDirectiveBlock bool
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil:
			if trimmed == "```" {
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			for text, reason := range skipLines {
				if strings.Contains(line, text) {
					cur.notRun = append(cur.notRun, fmt.Sprintf("%s:%d: line not run: %s (%s)", name, lineNo, strings.TrimSpace(line), reason))
					line = "# not run by TestReadme (" + reason + "): " + line
					break
				}
			}
			cur.script += line + "\n"
		case inOtherFence:
			inOtherFence = trimmed != "```"
		case trimmed == "```sh" || trimmed == "```bash":
			cur = &readmeBlock{file: name, line: lineNo}
			skipLines = map[string]string{}
			for _, d := range pending {
				verb, arg, _ := strings.Cut(d, " ")
				if strings.TrimSpace(arg) == "" {
					t.Fatalf("%s:%d: test directive %q needs its argument (a skip needs its reason)", name, lineNo, d)
				}
				switch verb {
				case "skip":
					cur.skip = arg
				case "skip-line":
					text, reason, ok := strings.Cut(arg, ": ")
					if !ok {
						t.Fatalf("%s:%d: skip-line needs TEXT: REASON, got %q", name, lineNo, arg)
					}
					skipLines[text] = reason
				case "expect":
					cur.expect = append(cur.expect, arg)
				default:
					t.Fatalf("%s:%d: unknown test directive %q", name, lineNo, d)
				}
			}
			pending, sawDirectiveBlock = nil, false
		case strings.HasPrefix(trimmed, "```"):
			inOtherFence = true
			pending = nil
		case strings.HasPrefix(trimmed, readmeDirectivePrefix):
			d := strings.TrimSuffix(strings.TrimPrefix(trimmed, readmeDirectivePrefix), " -->")
			pending = append(pending, strings.TrimSpace(d))
			sawDirectiveBlock = true
		case trimmed == "":
			// Directives may be separated from their block by blank lines.
		default:
			if sawDirectiveBlock {
				t.Fatalf("%s:%d: test directives %q are not followed by a sh/bash block", name, lineNo, pending)
			}
			pending = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: block never closed", name, cur.line)
	}
	return blocks
}

// readmeFixtures are the files the README's examples name as the reader's
// own: a project with a test target, a file, a patch, a directory, a token,
// a busybox image as an OCI layout (tag v1) and as a docker archive.
func readmeFixtures(t *testing.T, dir, home string) {
	t.Helper()
	files := map[string]string{
		"repo/Makefile":  "test:\n\tmkdir -p build/out\n\tpython3 -c 'print(6*7)' > build/out/answer.txt\n\t@echo tests passed\n",
		"repo/src/x.go":  "package x\n\nconst Answer = 41\n",
		"x.go":           "package x\n\nconst Answer = 41\n\nconst Question = \"?\"\n",
		"fix.diff":       "--- a/src/x.go\n+++ b/src/x.go\n@@ -1,5 +1,5 @@\n package x\n \n-const Answer = 41\n+const Answer = 42\n \n const Question = \"?\"\n",
		"more/notes.txt": "more files\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// docs/integrations.md grants these to an MCP server.
	for _, d := range []string{"src/app", "datasets", "out"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := testutil.Image(t, []string{"PATH=/bin"}, testutil.BusyboxLayer(t))
	p, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("example/img:1")
	if err := tarball.WriteToFile(filepath.Join(dir, "img.tar"), tag, img); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(home, ".config", "gh-token")
	if err := os.MkdirAll(filepath.Dir(tok), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tok, []byte("ghp_readme_test_token"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readmeFiles are the Markdown files whose blocks TestReadme runs, in order.
var readmeFiles = []string{"README.md", "docs/integrations.md", "docs/environments.md", "docs/secret-broker.md"}

// TestReadme pastes every sh/bash block of README.md and the docs meant to
// be pasted, in order, into bash -euo pipefail in a scratch HOME and directory with the built pyro on
// PATH, on real VMs: each must exit 0 and show what its expect directives
// name. Blocks or lines marked skip say why above the block.
func TestReadme(t *testing.T) {
	state := stateDir(t)
	bin := testutil.Binaries(t)
	root := testutil.RepoRoot()
	var blocks []readmeBlock
	for _, name := range readmeFiles {
		blocks = append(blocks, readmeBlocks(t, root, name)...)
	}
	if len(blocks) < 20 {
		t.Fatalf("found %d shell blocks in %v; the parser lost some", len(blocks), readmeFiles)
	}

	// The kernel and catalog come from the shared cache (hard links); what
	// the blocks pull or build stays in this test's own.
	cache := testutil.CacheWithEnvs(t, "debian:12", "debian:12-base", "debian:12-build")
	home, work := t.TempDir(), t.TempDir()
	readmeFixtures(t, work, home)
	env := []string{
		"HOME=" + home,
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		"PYRO_STATE_DIR=" + state,
		"PYRO_CACHE_DIR=" + cache,
		"TERM=dumb",
		"LANG=C.UTF-8",
	}
	// Whatever the blocks leave running goes before the leak check.
	t.Cleanup(func() { deleteAllWorkspaces(t, filepath.Join(bin, "pyro"), env, work) })

	ran := 0
	for _, b := range blocks {
		if b.skip != "" {
			t.Logf("%s:%d: not run: %s", b.file, b.line, b.skip)
			continue
		}
		ran++
		for _, l := range b.notRun {
			t.Log(l)
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-x", "-c", b.script)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s:%d: block failed after %s: %v\n--- block ---\n%s--- output (bash -x) ---\n%s",
				b.file, b.line, time.Since(start).Round(time.Millisecond), err, b.script, out)
		}
		for _, want := range b.expect {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s:%d: output lacks %q\n--- output ---\n%s", b.file, b.line, want, out)
			}
		}
		t.Logf("%s:%d: ok in %s", b.file, b.line, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("%d blocks run, %d skipped with a reason", ran, len(blocks)-ran)
}

func deleteAllWorkspaces(t *testing.T, pyro string, env []string, dir string) {
	cmd := exec.Command(pyro, "workspace", "list", "--json")
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	if err != nil {
		t.Errorf("workspace list: %v", err)
		return
	}
	var list struct {
		Workspaces []struct {
			ID string `json:"workspace_id"`
		} `json:"workspaces"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Errorf("workspace list --json: %v: %s", err, out)
		return
	}
	for _, w := range list.Workspaces {
		del := exec.Command(pyro, "workspace", "delete", w.ID)
		del.Dir, del.Env = dir, env
		if out, err := del.CombinedOutput(); err != nil {
			t.Errorf("workspace delete %s: %v: %s", w.ID, err, out)
		}
	}
}

// readmeGoBlocks returns the ```go blocks of a Markdown file in order.
func readmeGoBlocks(t *testing.T, root, name string) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```go":
			cur = &readmeBlock{file: name, line: i + 1}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.script += line + "\n"
		}
	}
	return blocks
}

// TestReadmeGo compiles every ```go block of README.md and the docs against
// the SDK as it is, each as the body of a function given ctx and a patch
// (the names the snippets use without declaring them): a renamed method,
// a changed signature or a field that is gone fails here. Variables a
// snippet declares only to show a result are not an error.
func TestReadmeGo(t *testing.T) {
	root := testutil.RepoRoot()
	var blocks []readmeBlock
	for _, name := range readmeFiles {
		blocks = append(blocks, readmeGoBlocks(t, root, name)...)
	}
	if len(blocks) < 2 {
		t.Fatalf("found %d go blocks in %v; the parser lost some", len(blocks), readmeFiles)
	}
	tmp := t.TempDir()
	pkg := filepath.Join(root, "internal", "readmegocheck") // exists only in the overlay
	replace := map[string]string{}
	for i, b := range blocks {
		src := fmt.Sprintf("package readmegocheck\n\nimport (\n\t\"context\"\n\t\"fmt\"\n\t\"os\"\n\n\t\"github.com/pyrovm/pyro\"\n)\n\n"+
			"var _, _ = fmt.Sprint, os.Stdout\n\n// %s:%d\nfunc snippet%d(ctx context.Context, patch string) {\n%s}\n", b.file, b.line, i, b.script)
		f := filepath.Join(tmp, fmt.Sprintf("snippet%d.go", i))
		if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		replace[filepath.Join(pkg, fmt.Sprintf("snippet%d.go", i))] = f
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": replace})
	ov := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-gcflags=-e", "-overlay", ov, "./internal/readmegocheck")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	var problems []string
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.Contains(line, "declared and not used") {
			continue
		}
		problems = append(problems, line)
	}
	if len(problems) > 0 || (err != nil && !strings.Contains(string(out), "declared and not used")) {
		var listing strings.Builder
		for i, b := range blocks {
			fmt.Fprintf(&listing, "snippet%d.go = %s:%d\n", i, b.file, b.line)
		}
		t.Fatalf("Go blocks do not compile against the SDK: %v\n%s\n%s", err, strings.Join(problems, "\n"), listing.String())
	}
	t.Logf("%d Go blocks compile against the SDK", len(blocks))
}
