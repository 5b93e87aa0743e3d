package pyro_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/scanner"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
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
	// the wire protocol and a few small libraries, never from host code
	// (netutil: dependency-free net.Conn helpers the host's network shares).
	agentModules := []string{module + "/cmd/pyro-agent", module + "/internal/agent", module + "/internal/agentproto", module + "/internal/netutil"}
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

	// Every VMM backend stays behind internal/vmm: outside it, a package
	// reaches internal/vmm/qemu only through the chooser (backends), so
	// that adding a backend means adding one package under internal/vmm and
	// one entry in the chooser.
	vmmDir, chooser, qemuPkg := module+"/internal/vmm", module+"/internal/vmm/backends", module+"/internal/vmm/qemu"
	if !slices.Contains(pkgs[module].Deps, qemuPkg) {
		t.Fatalf("package pyro does not depend on %s at all: the checks below would prove nothing", qemuPkg)
	}
	for path := range pkgs {
		if strings.HasPrefix(path, vmmDir+"/") || path == vmmDir {
			continue
		}
		if via := reachesAvoiding(pkgs, path, qemuPkg, chooser); via != nil {
			t.Errorf("%s reaches %s not through %s: %s", path, qemuPkg, chooser, strings.Join(via, " -> "))
		}
	}
	for path, p := range pkgs {
		if slices.Contains(p.Imports, qemuPkg) && path != chooser && !strings.HasPrefix(path, qemuPkg) {
			t.Errorf("%s imports %s: only %s picks a backend", path, qemuPkg, chooser)
		}
	}
	// Nor does a backend's disk format leak out by name: outside
	// internal/vmm, "qcow2" appears in comments only (the disk's file name
	// is vmm.Disks.DiskFile).
	format := "qcow" + "2" // spelled so that this file passes its own check
	for _, f := range goFilesOutside(t, "internal/vmm") {
		for _, lit := range stringLiterals(t, f) {
			if strings.Contains(strings.ToLower(lit.value), format) {
				t.Errorf("%s: %s names the QEMU disk format: ask the backend (vmm.Disks)", lit.pos, lit.value)
			}
		}
	}

	// One-shot runs are internal/oneshot's (boot or restore, exec,
	// teardown, the snapshots they start from): package pyro reaches them
	// only through it, and nothing else uses it.
	oneshotPkg := module + "/internal/oneshot"
	if slices.Contains(pkgs[module].Imports, module+"/internal/snapshot") {
		t.Errorf("package pyro imports internal/snapshot: go through %s", oneshotPkg)
	}
	for path, p := range pkgs {
		if slices.Contains(p.Imports, oneshotPkg) && path != module {
			t.Errorf("%s imports %s: only package pyro runs one-shot VMs", path, oneshotPkg)
		}
	}

	// pyro-supervisor is small on purpose (every running workspace maps it):
	// a thin main over internal/supervisor that links none of the CLI, MCP,
	// environment builders or the SDK.
	supMain := module + "/cmd/pyro-supervisor"
	if got := pkgs[supMain].Imports; !slices.Contains(got, module+"/internal/supervisor") {
		t.Errorf("%s does not import internal/supervisor: %v", supMain, got)
	}
	for _, dep := range pkgs[supMain].Deps {
		for _, banned := range []string{module, module + "/internal/cli", module + "/internal/mcp", module + "/internal/env", module + "/internal/workspace", "github.com/spf13/cobra"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") && banned != module {
				t.Errorf("%s links %s", supMain, dep)
			}
		}
	}

	// The pyro binary is the CLI's fast front (internal/fastexec): it runs a
	// ready workspace's exec through the SDK's light layers (store, wire,
	// guestexec, cliexec) and hands everything else to pyro-full. Linking
	// any of the rest would bring back the start it exists to save.
	front := module + "/cmd/pyro"
	if got := pkgs[front].Imports; !slices.Contains(got, module+"/internal/fastexec") {
		t.Errorf("%s does not import internal/fastexec: %v", front, got)
	}
	for _, dep := range pkgs[front].Deps {
		for _, banned := range []string{module, module + "/internal/cli", module + "/internal/mcp", module + "/internal/env",
			module + "/internal/workspace", module + "/internal/supervisor", module + "/internal/network", module + "/internal/vm",
			module + "/internal/oneshot", "github.com/spf13/cobra", "gvisor.dev", "github.com/google/go-containerregistry",
			"github.com/modelcontextprotocol", "github.com/klauspost"} {
			light := slices.Contains([]string{module + "/internal/workspace/store", module + "/internal/supervisor/wire",
				module + "/internal/network/egress"}, dep)
			if !light && (dep == banned || strings.HasPrefix(dep, banned+"/") && banned != module) {
				t.Errorf("%s links %s", front, dep)
			}
		}
	}

	// The faces (CLI, MCP, the tools package) are thin over the SDK: they
	// never reach the runtime's internals themselves.
	faces := map[string][]string{
		module + "/internal/cli": {"errdefs", "hostcfg", "mcp", "bench", "supervisor", "cliexec"}, // supervisor: the hidden `__supervise` entry
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

// Every stable error code is a constant defined once, in internal/errdefs,
// and exported by package pyro under the same name; nothing else spells a
// code as a string literal (a typo there would be a new, undocumented code).
func TestErrorCodesDefinedOnce(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir("internal", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]string{} // code constant name in errdefs -> value
	exported := map[string]bool{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") || strings.HasPrefix(path, filepath.Join("internal", "agentproto")) || strings.HasPrefix(path, filepath.Join("internal", "agent")+string(filepath.Separator)) {
			continue // the guest's wire codes live in agentproto and are mapped at the border
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		inErrdefs := strings.HasPrefix(path, filepath.Join("internal", "errdefs"))
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, name := range n.Names {
					if !strings.HasPrefix(name.Name, "Code") || i >= len(n.Values) {
						continue
					}
					lit, isLit := n.Values[i].(*ast.BasicLit)
					switch {
					case isLit && inErrdefs:
						defined[name.Name] = lit.Value
					case isLit:
						t.Errorf("%s: %s = %s: define codes in internal/errdefs/codes.go", fset.Position(name.Pos()), name.Name, lit.Value)
					case path == "codes.go":
						exported[name.Name] = true
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "New" && sel.Sel.Name != "Wrap") {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "errdefs" {
					return true
				}
				at := 1 // New(class, code, ...); Wrap(cause, class, code, ...)
				if sel.Sel.Name == "Wrap" {
					at = 2
				}
				if len(n.Args) > at {
					if lit, ok := n.Args[at].(*ast.BasicLit); ok {
						t.Errorf("%s: errdefs.%s with the code %s: use its constant", fset.Position(lit.Pos()), sel.Sel.Name, lit.Value)
					}
				}
			}
			return true
		})
	}
	values := map[string]string{}
	for name, v := range defined {
		if other, dup := values[v]; dup {
			t.Errorf("code %s is defined twice: %s and %s", v, name, other)
		}
		values[v] = name
		if !exported[name] {
			t.Errorf("errdefs.%s is not exported by package pyro (codes.go)", name)
		}
	}
	if len(defined) < 50 {
		t.Fatalf("found only %d codes in internal/errdefs", len(defined))
	}
}

// reachesAvoiding returns an import path from "from" to target that does
// not pass through avoid, or nil when there is none.
func reachesAvoiding(pkgs map[string]goPackage, from, target, avoid string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == target {
			var path []string
			for p := cur; p != ""; p = prev[p] {
				path = append([]string{p}, path...)
			}
			return path
		}
		if cur == avoid {
			continue
		}
		for _, imp := range pkgs[cur].Imports {
			if _, seen := prev[imp]; !seen && strings.HasPrefix(imp, module) {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

// goFilesOutside lists the module's Go files (tests included) that are not
// under dir.
func goFilesOutside(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (p == dir || d.Name() == "node_modules" || (strings.HasPrefix(d.Name(), ".") && p != ".")):
			return filepath.SkipDir
		case !d.IsDir() && strings.HasSuffix(p, ".go"):
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

type literal struct {
	pos   token.Position
	value string
}

// stringLiterals returns the string literals of a Go file (not its comments).
func stringLiterals(t *testing.T, path string) []literal {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var s scanner.Scanner
	s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
	var out []literal
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return out
		}
		if tok == token.STRING || tok == token.CHAR {
			out = append(out, literal{fset.Position(pos), lit})
		}
	}
}

// Every exec path (one-shot runs, workspace commands, low-level VMs, the
// workspace manager's scripts, the snapshot warm-up) sends the guest a
// shell command built by guestexec.Shell: no other host code fills in an
// agentproto.ExecRequest's Shell, and no other type spells out the exec
// result's fields (stdout_truncated) but the wire's and the public
// ExecOutput.
func TestOneExecPath(t *testing.T) {
	fset := token.NewFileSet()
	var files []string
	for _, root := range []string{".", "internal"} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && root == "." && p != ".":
				return filepath.SkipDir // internal/ is walked on its own; e2e, examples, tools are faces
			case d.IsDir() && (p == filepath.Join("internal", "agent") || p == filepath.Join("internal", "agentproto")):
				return filepath.SkipDir // the guest side
			case !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go"):
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	builders, results := 0, map[string]bool{}
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				sel, ok := n.Type.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "ExecRequest" {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "agentproto" {
					return true
				}
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Shell" {
							if filepath.Dir(path) != filepath.Join("internal", "guestexec") {
								t.Errorf("%s: a guest shell request built by hand: use guestexec.Shell", fset.Position(n.Pos()))
							}
							builders++
						}
					}
				}
			case *ast.TypeSpec:
				st, ok := n.Type.(*ast.StructType)
				if !ok {
					return true
				}
				for _, fld := range st.Fields.List {
					if fld.Tag != nil && strings.Contains(fld.Tag.Value, `json:"stdout_truncated"`) {
						results[path+": "+n.Name.Name] = true
					}
				}
			}
			return true
		})
	}
	if builders != 1 {
		t.Errorf("guestexec.Shell builds the request %d times, want once", builders)
	}
	if want := []string{"exec.go: ExecOutput"}; !slices.Equal(slices.Sorted(maps.Keys(results)), want) {
		t.Errorf("types spelling out an exec result: %v, want only %v (and the wire's agentproto.ExecResult)", slices.Sorted(maps.Keys(results)), want)
	}
}
