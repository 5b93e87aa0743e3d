package e2e_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// hostLayout is a host as a hostile model would probe it: a project the
// operator granted (with symlinks pointing out of it), a canary directory
// nobody granted, an exports directory holding a symlink that points out,
// and an alias (symlink) of the project.
type hostLayout struct {
	base, project, outside, exports, alias string
}

func newHostLayout(t *testing.T) hostLayout {
	t.Helper()
	base := t.TempDir()
	h := hostLayout{base: base, project: filepath.Join(base, "project"), outside: filepath.Join(base, "outside"),
		exports: filepath.Join(base, "exports"), alias: filepath.Join(base, "alias")}
	for _, d := range []string{h.project + "/sub", h.outside, h.exports} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(h.outside, "canary"), []byte("CANARY-TOKEN\n"), 0o600)
	os.WriteFile(filepath.Join(h.project, "a.txt"), []byte("from the project\n"), 0o644)
	os.WriteFile(filepath.Join(h.project, "sub", "b.txt"), []byte("pushed later\n"), 0o644)
	os.Symlink("/etc", filepath.Join(h.project, "etc-link"))
	os.Symlink("../outside", filepath.Join(h.project, "out-link"))
	os.Symlink(h.outside, filepath.Join(h.exports, "escape"))
	os.Symlink(h.project, h.alias)
	return h
}

func (h hostLayout) serverFlags() []string {
	return []string{"--project-path", h.project, "--exports-dir", h.exports}
}

// A model over MCP (stdio and HTTP, the official Go client) reads and
// creates host files only under the granted roots: every escape is refused
// with host_path_denied and leaves nothing read or written outside, while the
// same operations inside the roots work.
func TestMCPHostPathConfinement(t *testing.T) {
	s := stateDir(t)
	h := newHostLayout(t)
	t.Run("stdio", func(t *testing.T) { hostPathConfinement(t, h, mcpSession(t, s, "workspace-core", h.serverFlags()...)) })
	t.Run("http", func(t *testing.T) {
		endpoint := startHTTPServer(t, s, "paths-token", append([]string{"--profile", "workspace-core"}, h.serverFlags()...)...)
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "pyro-e2e-http", Version: "1"}, nil).Connect(t.Context(),
			&mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{"paths-token", http.DefaultTransport}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		hostPathConfinement(t, h, cs)
	})
}

func hostPathConfinement(t *testing.T, h hostLayout, cs *mcp.ClientSession) {
	denied := func(name string, args map[string]any) {
		t.Helper()
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if text := toolText(res); !res.IsError || !strings.HasPrefix(text, "host_path_denied:") || !strings.Contains(text, h.exports) {
			t.Errorf("%s %v: not denied: %q", name, args, text)
		}
	}
	for _, seed := range []string{h.outside, "/etc", filepath.Join(h.project, "etc-link"), filepath.Join(h.project, "out-link"),
		filepath.Join(h.project, "../outside"), h.alias} {
		denied("workspace_create", map[string]any{"seed_path": seed})
	}

	var w struct {
		WorkspaceID string `json:"workspace_id"`
	}
	callTool(t, cs, "workspace_create", map[string]any{"seed_path": h.project}, &w)
	id := w.WorkspaceID
	defer cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "workspace_delete", Arguments: map[string]any{"workspace_id": id}})

	for _, src := range []string{"/etc", filepath.Join(h.project, "etc-link"), filepath.Join(h.exports, "escape"), "out-link/canary"} {
		denied("workspace_sync_push", map[string]any{"workspace_id": id, "source_path": src, "dest": "/workspace/host"})
	}
	for _, out := range []string{"/tmp/pyro-e2e-denied-x", filepath.Join(h.outside, "x"), filepath.Join(h.exports, "escape/x"),
		filepath.Join(h.project, "x"), filepath.Join(h.exports, "../outside/y")} {
		denied("workspace_export", map[string]any{"workspace_id": id, "path": "a.txt", "output_path": out})
	}
	// Nothing outside the roots was read into the guest or created on the host.
	var ls struct {
		Entries []struct{ Path string } `json:"entries"`
	}
	callTool(t, cs, "workspace_file_list", map[string]any{"workspace_id": id, "recursive": true}, &ls)
	for _, e := range ls.Entries {
		if strings.HasPrefix(e.Path, "host") || strings.Contains(e.Path, "canary") {
			t.Errorf("host file reached the guest: %s", e.Path)
		}
	}
	if entries, _ := os.ReadDir(h.outside); len(entries) != 1 {
		t.Errorf("the canary directory now holds %d entries", len(entries))
	}
	if _, err := os.Lstat("/tmp/pyro-e2e-denied-x"); err == nil {
		t.Error("/tmp/pyro-e2e-denied-x was created")
	}

	// Inside the roots: the seed arrived, a sync push and exports work.
	var f struct{ Content string }
	callTool(t, cs, "workspace_file_read", map[string]any{"workspace_id": id, "path": "a.txt"}, &f)
	if f.Content != "from the project\n" {
		t.Errorf("seeded a.txt: %q", f.Content)
	}
	var tr struct {
		HostPath string `json:"host_path"`
	}
	callTool(t, cs, "workspace_sync_push", map[string]any{"workspace_id": id, "source_path": "sub", "dest": "/workspace/later"}, &tr)
	callTool(t, cs, "workspace_file_read", map[string]any{"workspace_id": id, "path": "later/b.txt"}, &f)
	if f.Content != "pushed later\n" {
		t.Errorf("synced b.txt: %q", f.Content)
	}
	name := "notes-" + filepath.Base(t.Name()) + ".txt"
	callTool(t, cs, "workspace_export", map[string]any{"workspace_id": id, "path": "a.txt", "output_path": name}, &tr)
	if b, err := os.ReadFile(filepath.Join(h.exports, name)); err != nil || string(b) != "from the project\n" || tr.HostPath != filepath.Join(h.exports, name) {
		t.Errorf("export into the exports dir: %q %v, host_path %s", b, err, tr.HostPath)
	}
}

// The CLI's caller is the operator: it seeds from and exports to any path,
// and a seed path that is a symlink is followed.
func TestCLIHostPathsUnconfined(t *testing.T) {
	s := stateDir(t)
	h := newHostLayout(t)
	r := runPyro(t, s, "workspace", "create", "debian:12", "--seed-path", h.alias, "--id-only")
	if r.code != 0 {
		t.Fatalf("create from a symlinked seed: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	defer runPyro(t, s, "workspace", "delete", id)
	if r := runPyro(t, s, "workspace", "sync", "push", id, h.outside, "--dest", "/workspace/o"); r.code != 0 {
		t.Fatalf("sync push: %+v", r)
	}
	out := filepath.Join(h.outside, "exported")
	if r := runPyro(t, s, "workspace", "export", id, "o/canary", "--output", out); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	if b, _ := os.ReadFile(out); string(b) != "CANARY-TOKEN\n" {
		t.Errorf("exported %q", b)
	}
	if r := runPyro(t, s, "workspace", "file", "read", id, "a.txt", "--content-only"); r.stdout != "from the project\n" {
		t.Errorf("seeded through the symlink: %+v", r)
	}
}
