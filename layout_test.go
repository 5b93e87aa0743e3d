package pyro_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The package borders docs/architecture.md describes, checked on the real
// import graph (`go list`), so that a change that crosses one fails here
// rather than in review.

const module = "github.com/pyrovm/pyro"

type goPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func goList(t *testing.T, args ...string) map[string]goPackage {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	pkgs := map[string]goPackage{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func TestLayout(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	pkgs := goList(t, "./...")

	// The guest agent runs as PID 1 of every guest: it is built from itself,
	// the wire protocol and a few small libraries, never from host code.
	agentModules := []string{module + "/cmd/pyro-agent", module + "/internal/agent", module + "/internal/agentproto"}
	agentThirdParty := []string{"github.com/creack/pty", "github.com/hashicorp/yamux", "golang.org/x/sys", "github.com/vishvananda/netlink", "github.com/vishvananda/netns"}
	for _, dep := range pkgs[module+"/cmd/pyro-agent"].Deps {
		first, _, _ := strings.Cut(dep, "/")
		switch {
		case strings.HasPrefix(dep, module):
			if !slices.Contains(agentModules, dep) {
				t.Errorf("the guest agent depends on host package %s", dep)
			}
		case strings.Contains(first, ".") && !slices.ContainsFunc(agentThirdParty, func(p string) bool { return strings.HasPrefix(dep, p) }):
			t.Errorf("the guest agent depends on %s, which is not on its list", dep)
		}
	}

	// QEMU stays behind internal/vmm. The packages listed here still reach
	// into it and are to move behind the backend seam (issue 15); the list
	// may only shrink.
	qemuPkg := module + "/internal/vmm/qemu"
	stillReaching := []string{module, module + "/internal/bench", module + "/internal/vm"}
	for path, p := range pkgs {
		if slices.Contains(p.Imports, qemuPkg) && !strings.HasPrefix(path, module+"/internal/vmm") && !slices.Contains(stillReaching, path) {
			t.Errorf("%s imports %s: go through internal/vmm", path, qemuPkg)
		}
	}

	// The faces (CLI, MCP, the tools package) are thin over the SDK: they
	// never reach the runtime's internals themselves.
	faces := map[string][]string{
		module + "/internal/cli": {"errdefs", "hostcfg", "mcp", "bench", "supervisor", "vmm"}, // supervisor: the hidden `__supervise` entry
		module + "/internal/mcp": {"errdefs", "fsutil"},
		module + "/tools":        {"errdefs", "mcp"},
	}
	for face, allowed := range faces {
		for _, imp := range pkgs[face].Imports {
			rest, ok := strings.CutPrefix(imp, module+"/internal/")
			if ok && !slices.Contains(allowed, rest) {
				t.Errorf("%s imports %s: faces call the SDK (package pyro)", face, imp)
			}
		}
	}
}
