package e2e_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// jsonOf runs a CLI command with --json and decodes its answer.
func jsonOf(t *testing.T, s string, v any, args ...string) result {
	t.Helper()
	r := runPyro(t, s, append(args, "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("%v: %v %+v", args, err, r)
	}
	return r
}

// The smaller findings, through the CLI on one workspace.
func TestCLIWorkspaceEdges(t *testing.T) {
	s := stateDir(t)
	id := createSeeded(t, s)
	exec := func(cmd string) {
		t.Helper()
		if r := runPyro(t, s, "workspace", "exec", id, "--", cmd); r.code != 0 {
			t.Fatalf("exec %q: %+v", cmd, r)
		}
	}

	t.Run("names", func(t *testing.T) {
		// A name that retitles the terminal (OSC 0) and one that clears it (C1 CSI).
		exec(`printf x > "$(printf '\033]0;PWNED\007')"; printf y > "$(printf 'csi\302\2332J')"`)
		for _, args := range [][]string{{"file", "list", id}, {"summary", id}, {"diff", id}} {
			r := runPyro(t, s, append([]string{"workspace"}, args...)...)
			// Go quoting on listings, git's octal quoting in the patch.
			quoted := strings.Contains(r.stdout, `\x1b]0;PWNED\a`) || strings.Contains(r.stdout, `\033]0;PWNED\a`)
			if r.code != 0 || strings.ContainsAny(r.stdout+r.stderr, "\x1b\x07\u009b") || !quoted {
				t.Errorf("%v printed raw escapes or lost the name: %q %q", args, r.stdout, r.stderr)
			}
		}
		var list struct {
			Entries []struct{ Path string } `json:"entries"`
		}
		jsonOf(t, s, &list, "workspace", "file", "list", id)
		names := map[string]bool{}
		for _, e := range list.Entries {
			names[e.Path] = true
		}
		if !names["\x1b]0;PWNED\a"] || !names["csi\u009b2J"] {
			t.Errorf("JSON names are not exact: %q", list.Entries)
		}
		exec(`rm -f -- "$(printf '\033]0;PWNED\007')" "$(printf 'csi\302\2332J')"`)
	})

	t.Run("writers", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make([]result, 4)
		for i := range results {
			wg.Go(func() {
				results[i] = runPyro(t, s, "workspace", "file", "write", id, "same.txt", "--text", strings.Repeat(fmt.Sprint(i), 50_000))
			})
		}
		wg.Wait()
		for i, r := range results {
			if r.code != 0 {
				t.Errorf("writer %d: %+v", i, r)
			}
		}
		var f struct{ Content string }
		jsonOf(t, s, &f, "workspace", "file", "read", id, "same.txt")
		if len(f.Content) != 50_000 || strings.Count(f.Content, f.Content[:1]) != 50_000 {
			t.Errorf("same.txt holds %d bytes of mixed writers", len(f.Content))
		}
	})

	t.Run("push", func(t *testing.T) {
		// The last entry is refused (a directory of that name holds files
		// in the guest): nothing the push made before it stays.
		exec("mkdir -p zz-clash/inner && echo keep > zz-clash/inner/f && echo old > hello2.txt")
		src := t.TempDir()
		os.MkdirAll(filepath.Join(src, "newdir", "sub"), 0o755)
		os.WriteFile(filepath.Join(src, "newdir", "sub", "f"), []byte("new"), 0o644)
		os.WriteFile(filepath.Join(src, "hello2.txt"), []byte("replaced"), 0o644)
		os.Symlink("newdir", filepath.Join(src, "ln"))
		os.WriteFile(filepath.Join(src, "zz-clash"), []byte("file"), 0o644)
		var e struct{ Error struct{ Code string } }
		if r := jsonOf(t, s, &e, "workspace", "sync", "push", id, src); r.code != 125 || e.Error.Code != "bad_archive" {
			t.Fatalf("push: %+v", r)
		}
		r := runPyro(t, s, "workspace", "exec", id, "--", "ls -A; cat hello2.txt zz-clash/inner/f")
		if strings.Contains(r.stdout, "newdir") || strings.Contains(r.stdout, "ln\n") || !strings.Contains(r.stdout, "old\nkeep\n") {
			t.Fatalf("after the failed push: %+v", r)
		}
	})

	t.Run("nospace", func(t *testing.T) {
		exec("fallocate -l $(( $(df --output=avail -B1 /workspace | tail -1) )) fill; dd if=/dev/zero of=fill2 bs=64k 2>/dev/null; true")
		big := filepath.Join(t.TempDir(), "big")
		os.WriteFile(big, make([]byte, 4<<20), 0o644)
		var e struct {
			Error struct{ Code, Message string }
		}
		r := jsonOf(t, s, &e, "workspace", "file", "write", id, "big", "--text-file", big)
		if r.code != 125 || e.Error.Code != "no_space" || !strings.Contains(e.Error.Message, "free space") {
			t.Fatalf("write to a full disk: %+v", r)
		}
		// The same through MCP.
		cs := mcpSession(t, s, "workspace-full")
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_file_write",
			Arguments: map[string]any{"workspace_id": id, "path": "big", "text": strings.Repeat("x", 4<<20)}})
		if err != nil || !res.IsError || !strings.HasPrefix(toolText(res), "no_space: ") {
			t.Fatalf("MCP write to a full disk: %v %+v", err, res)
		}
		exec("test ! -e big && rm fill fill2")
	})

	// Transfers write only to the workspace disk: a filesystem a command
	// mounted inside /workspace is refused before anything is written,
	// with what to do instead.
	t.Run("othermount", func(t *testing.T) {
		exec("mkdir -p tiny && mount -t tmpfs -o size=64k tmpfs tiny")
		var e struct {
			Error struct{ Code, Message string }
		}
		r := jsonOf(t, s, &e, "workspace", "file", "write", id, "tiny/f", "--text", "x")
		if r.code == 0 || e.Error.Code != "invalid_argument" || !strings.Contains(e.Error.Message, "copy it there with exec") {
			t.Fatalf("write into another mount: %+v", r)
		}
		exec("test ! -e tiny/f && umount tiny && rmdir tiny")
	})

	t.Run("special", func(t *testing.T) {
		exec("mkdir sp && mkfifo sp/pipe && echo one > sp/a && ln sp/a sp/b")
		type skipped struct {
			Skipped      int `json:"skipped"`
			SkippedFiles []struct {
				Path, Reason string
			} `json:"skipped_files"`
		}
		out := filepath.Join(t.TempDir(), "sp")
		var ex skipped
		if r := jsonOf(t, s, &ex, "workspace", "export", id, "sp", "--output", out); r.code != 0 || ex.Skipped != 1 ||
			len(ex.SkippedFiles) != 1 || ex.SkippedFiles[0].Path != "pipe" || !strings.Contains(ex.SkippedFiles[0].Reason, "fifo") {
			t.Fatalf("export: %+v", r)
		}
		a, _ := os.Stat(filepath.Join(out, "a"))
		b, _ := os.Stat(filepath.Join(out, "b"))
		if !os.SameFile(a, b) || a.Sys().(*syscall.Stat_t).Nlink != 2 {
			t.Errorf("the hard link was exported as a copy")
		}
		var sn, d skipped
		if r := jsonOf(t, s, &sn, "workspace", "snapshot", "create", id, "sp"); r.code != 0 || sn.Skipped != 1 || sn.SkippedFiles[0].Path != "sp/pipe" {
			t.Fatalf("snapshot: %+v", r)
		}
		if r := jsonOf(t, s, &d, "workspace", "diff", id); r.code != 0 || d.Skipped != 1 {
			t.Fatalf("diff: %+v", r)
		}
		if r := runPyro(t, s, "workspace", "diff", id); !strings.Contains(r.stderr, "not compared sp/pipe (fifo") {
			t.Errorf("diff on a terminal: %q", r.stderr)
		}
		var md skipped
		callTool(t, mcpSession(t, s, "workspace-full"), "workspace_diff", map[string]any{"workspace_id": id}, &md)
		if md.Skipped != 1 || len(md.SkippedFiles) != 1 || md.SkippedFiles[0].Path != "sp/pipe" {
			t.Errorf("MCP workspace_diff: %+v", md)
		}
	})
}
