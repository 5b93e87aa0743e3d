//go:build faults

// Package faults is pyro's fault suite (`make faults`): it breaks real
// workspaces the ways a crash, a careless user or a hostile guest would, and
// prints one table: fault, expected, observed, verdict. Every row checks that
// no completed write was lost, that nothing leaked (processes, sockets,
// mounts, temp files: /proc and the state dir are scanned), that the
// workspace is usable or stopped with its data, that a failed call had a
// typed error, and that every call answered within its bound.
package faults_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// row is one line of the table.
type row struct{ fault, expected, observed, verdict string }

var (
	tableMu sync.Mutex
	table   []row
)

func TestMain(m *testing.M) {
	code := m.Run()
	printTable()
	os.Exit(code)
}

func printTable() {
	tableMu.Lock()
	defer tableMu.Unlock()
	if len(table) == 0 {
		return
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAULT\tEXPECTED\tOBSERVED\tVERDICT")
	pass := 0
	for _, r := range table {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.fault, r.expected, r.observed, r.verdict)
		if r.verdict == "PASS" {
			pass++
		}
	}
	tw.Flush()
	fmt.Printf("faults: %d passed, %d failed\n", pass, len(table)-pass)
}

// check collects what one row observed and what went wrong.
type check struct {
	notes    []string
	problems []string
}

func (c *check) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}
func (c *check) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// runRow runs one row as a subtest and records it in the table.
func runRow(t *testing.T, fault, expected string, fn func(t *testing.T, c *check)) {
	t.Helper()
	t.Run(strings.NewReplacer(" ", "_", "/", "-").Replace(fault), func(t *testing.T) {
		c := &check{}
		start := time.Now()
		func() {
			defer func() {
				if p := recover(); p != nil {
					c.fail("panic: %v", p)
				}
			}()
			fn(t, c)
		}()
		observed := strings.Join(c.notes, "; ")
		verdict := "PASS"
		if len(c.problems) > 0 {
			verdict = "FAIL"
			observed += "; PROBLEMS: " + strings.Join(c.problems, "; ")
			t.Errorf("%s: %s", fault, strings.Join(c.problems, "; "))
		}
		observed += fmt.Sprintf(" [%.0fs]", time.Since(start).Seconds())
		tableMu.Lock()
		table = append(table, row{fault, expected, observed, verdict})
		tableMu.Unlock()
	})
}

// suite is one state dir with its client and the workspaces the rows share.
type suite struct {
	t      *testing.T
	c      *pyro.Client
	bin    string
	state  string
	out    string // host directory for exports
	mounts []string
}

func newSuite(t *testing.T) *suite { return newSuiteIn(t, t.TempDir(), t.TempDir()) }

// newSuiteIn uses the given state and export dirs.
func newSuiteIn(t *testing.T, state, out string) *suite {
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	s := &suite{t: t, bin: bin, state: state, out: out}
	c, err := pyro.New(pyro.WithStateDir(s.state), pyro.WithAgentPath(bin+"/pyro-agent"), pyro.WithPyroBinary(bin+"/pyro"))
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	t.Cleanup(func() {
		ws, _ := c.ListWorkspaces(context.Background())
		for _, w := range ws {
			_, _ = c.DeleteWorkspace(context.Background(), w.WorkspaceID)
		}
		testutil.AssertNoLeaks(t, s.state)
	})
	return s
}

// ws is a workspace with the ledger of its completed writes: path under
// /workspace -> sha256 of the content the call that answered success wrote.
type ws struct {
	id   string
	want map[string]string
	base map[string]string // the baseline (what reset brings back)
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// create makes a workspace seeded from seed (a host dir).
func (s *suite) create(ctx context.Context, seed string) (*ws, error) {
	w, err := s.c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seed})
	if err != nil {
		return nil, err
	}
	base := map[string]string{}
	_ = filepath.WalkDir(seed, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(seed, p)
			base[rel] = sum(b)
		}
		return nil
	})
	return &ws{id: w.WorkspaceID, want: clone(base), base: base}, nil
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// seedDir makes a host dir with a small text file and a file of size bytes.
func seedDir(t *testing.T, size int) string {
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if size > 0 {
		if err := os.WriteFile(filepath.Join(d, "seed.bin"), randomBytes(size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// randomBytes is incompressible content (a counter through sha256).
func randomBytes(n int) []byte {
	out := make([]byte, 0, n+32)
	for i := 0; len(out) < n; i++ {
		h := sha256.Sum256([]byte(strconv.Itoa(i) + time.Now().String()))
		out = append(out, h[:]...)
	}
	return out[:n]
}

// exec runs a command; the bound is its timeout plus the host's grace.
func (s *suite) exec(ctx context.Context, id, command string, timeout int) (*pyro.WorkspaceExecResult, time.Duration, error) {
	start := time.Now()
	r, err := s.c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: command, TimeoutSeconds: timeout})
	return r, time.Since(start), err
}

// settle waits until a workspace is in one piece: running with its
// supervisor and QEMU and answering, or stopped with neither (a supervisor
// whose QEMU died, or that powers off for a stop whose caller died, takes a
// moment to go). It must within 20 s.
func (s *suite) settle(c *check, id string) string {
	start := time.Now()
	for {
		st, err := s.c.WorkspaceStatus(context.Background(), id)
		if err != nil {
			c.fail("status: %v", err)
			return ""
		}
		n := len(s.vmProcs()[id])
		if st.State == "stopped" && n == 0 {
			return st.State
		}
		if st.State == "running" && n == 2 {
			if _, _, err := s.exec(context.Background(), id, "true", 10); err == nil {
				return st.State
			}
		}
		if time.Since(start) > 20*time.Second {
			c.fail("not settled 20 s after the fault: %s with %d VM processes", st.State, n)
			return st.State
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// usable brings a workspace back if a fault stopped it (start must work and
// answer within its bound) and checks every completed write.
func (s *suite) usable(c *check, w *ws) {
	ctx := context.Background()
	if state := s.settle(c, w.id); state != "running" {
		start := time.Now()
		if _, err := s.c.StartWorkspace(ctx, w.id); err != nil {
			c.fail("start after the fault: %s: %v", pyro.ErrorCode(err), err)
			return
		}
		c.note("was %s, start took %.1fs", state, time.Since(start).Seconds())
		if d := time.Since(start); d > startBound {
			c.fail("start took %s (bound %s)", d, startBound)
		}
	}
	s.verify(c, w)
}

// verify checks the ledger in the guest: every completed write is there
// with its content, and no transfer is left in the agent's staging
// directory (the last one is removed just after its answer: a second
// look after 1 s), nor a `.pyro-undo-*` entry, as older agents made.
func (s *suite) verify(c *check, w *ws) {
	paths := make([]string, 0, len(w.want))
	for p := range w.want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = "'" + p + "'"
	}
	r, _, err := s.exec(context.Background(), w.id, "sha256sum -- "+strings.Join(quoted, " ")+"; find . -name '.pyro-undo-*'; l=$(ls -A "+stagingRoot+" 2>/dev/null); [ -z \"$l\" ] || sleep 1; ls -A "+stagingRoot+" 2>/dev/null | sed 's/^/staged: /'", 120)
	if err != nil {
		c.fail("checking the writes: %s: %v", pyro.ErrorCode(err), err)
		return
	}
	got := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 && len(f[0]) == 64 {
			got[f[1]] = f[0]
		} else if strings.Contains(line, ".pyro-undo-") {
			c.fail("undo entry left in the guest: %s", line)
		} else if strings.HasPrefix(line, "staged: ") {
			c.fail("transfer left in the guest's staging directory: %s", line)
		}
	}
	lost := 0
	for _, p := range paths {
		if got[p] != w.want[p] {
			lost++
			c.fail("completed write lost or changed: %s", p)
		}
	}
	c.note("%d/%d completed writes intact", len(paths)-lost, len(paths))
}

// stagingRoot is where the guest agent stages transfers
// (internal/agent.defaultStagingRoot).
const stagingRoot = "/var/lib/pyro-agent/staging"

var idInCmd = regexp.MustCompile(`workspaces/([0-9a-z]{12})`)

// vmProcs lists the QEMU and supervisor processes under the state dir by
// workspace id.
func (s *suite) vmProcs() map[string][]int {
	out := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s.state)) {
			continue
		}
		cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		if !strings.Contains(cmd, "qemu-system") && !strings.Contains(cmd, "__supervise") {
			continue
		}
		id := "?"
		if m := idInCmd.FindStringSubmatch(cmd); m != nil {
			id = m[1]
		} else if spec := supervisorSpecID(cmd); spec != "" {
			id = spec
		}
		out[id] = append(out[id], pid)
	}
	return out
}

// supervisorSpecID finds the workspace of a supervisor whose argv names
// only its spec file.
func supervisorSpecID(cmd string) string {
	f := strings.Fields(cmd)
	for i, a := range f {
		if a == "__supervise" && i+1 < len(f) {
			b, _ := os.ReadFile(f[i+1])
			if m := idInCmd.FindStringSubmatch(string(b)); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// pidOf finds a process of workspace id (any id not in known when id is "")
// whose command line contains what ("qemu-system" or "__supervise").
func (s *suite) pidOf(id, what string, known map[string]bool) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s.state)) || !bytes.Contains(b, []byte(what)) {
			continue
		}
		cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		got := ""
		if m := idInCmd.FindStringSubmatch(cmd); m != nil {
			got = m[1]
		} else {
			got = supervisorSpecID(cmd)
		}
		if got == id || (id == "" && got != "" && !known[got]) {
			return pid
		}
	}
	return 0
}

// leaks scans /proc, the mount table and the state and export dirs for what
// a fault may leave behind: VM processes of workspaces that are not
// running (or two of one), mounts under the state dir, temp files, and the
// sockets and run dirs of stopped workspaces.
func (s *suite) leaks(c *check) {
	ctx := context.Background()
	running := map[string]bool{}
	known := map[string]bool{}
	list, err := s.c.ListWorkspaces(ctx) // also runs the reaper of dead callers' leftovers
	if err != nil {
		c.fail("list: %v", err)
	}
	for _, w := range list {
		known[w.WorkspaceID] = true
		if w.State == "running" {
			running[w.WorkspaceID] = true
		}
	}
	// Processes die and their files go a moment after their owner.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		found := s.leaked(running, known)
		if len(found) == 0 || time.Now().After(deadline) {
			if len(found) > 0 {
				c.fail("leaked: %s", strings.Join(found, ", "))
			} else {
				c.note("no leaks")
			}
			return
		}
	}
}

func (s *suite) leaked(running, known map[string]bool) []string {
	var found []string
	for id, pids := range s.vmProcs() {
		if !running[id] || len(pids) > 2 {
			found = append(found, fmt.Sprintf("process %v of workspace %s", pids, id))
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], s.state) && !contains(s.mounts, f[4]) {
			found = append(found, "mount "+f[4])
		}
	}
	tempName := regexp.MustCompile(`(\.tmp$|\.tar\.tmp|\.tmp\.|^\.pyro-|\.clone-|^disk\.pre-reset|\.d$)`)
	for _, root := range []string{s.state, s.out} {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return nil
			}
			rel, _ := filepath.Rel(s.state, p)
			parts := strings.Split(rel, string(filepath.Separator))
			if root == s.state && len(parts) >= 2 && parts[0] == "workspaces" {
				id := parts[1]
				if len(parts) == 2 && !known[id] {
					found = append(found, "dir of unknown workspace "+id)
					return filepath.SkipDir
				}
				if len(parts) == 3 && !running[id] && (parts[2] == "supervisor.sock" || parts[2] == "supervisor.json" || parts[2] == "run") {
					found = append(found, "stopped workspace's "+rel)
				}
			}
			if root == s.state && len(parts) == 2 && parts[0] == "vms" {
				found = append(found, "VM dir "+rel)
			}
			if tempName.MatchString(d.Name()) {
				found = append(found, "temp "+p)
			}
			if d.Type()&fs.ModeSocket != 0 && !running[idOfPath(rel)] {
				found = append(found, "socket "+rel)
			}
			return nil
		})
	}
	return found
}

func idOfPath(rel string) string {
	if m := idInCmd.FindStringSubmatch(rel); m != nil {
		return m[1]
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// typed checks that a failed call carried a stable code other than internal.
func typed(c *check, what string, err error) {
	if err == nil {
		return
	}
	code := pyro.ErrorCode(err)
	c.note("%s failed: %s", what, code)
	if code == "" || code == "internal" {
		c.fail("%s failed without a typed error: %v", what, err)
	}
}

// within checks a call's duration against its bound.
func within(c *check, what string, d, bound time.Duration) {
	if d > bound {
		c.fail("%s answered after %.1fs (bound %s)", what, d.Seconds(), bound)
	}
}

// Bounds: a call's own timeout plus the host's grace (agentclient.Grace,
// 30 s) and room for a loaded 2-core TCG host.
const (
	startBound    = 180 * time.Second
	transferBound = 240 * time.Second
	execGrace     = 30 * time.Second
)

// kill -9s pid and waits for it to be gone (a zombie counts as gone).
func kill9(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cli starts the pyro CLI on the suite's state dir.
func (s *suite) cli(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, "pyro"), args...)
	cmd.Env = append(os.Environ(), "PYRO_STATE_DIR="+s.state)
	return cmd
}
