package pyro_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/bench"
	"github.com/pyrovm/pyro/internal/testutil"
)

// loginView prints what a command sees: its environment (sorted, without
// the shell's own bookkeeping), umask, cwd and $PWD.
const loginView = `env | grep -v -E '^(_|SHLVL|OLDPWD)=' | sort; umask; pwd; echo "PWD=$PWD"`

// A workspace command sees what `/bin/sh -lc` shows it (login environment,
// cwd, umask), with --env, --workdir and secrets applied as before, on the
// agent's fast path (cached login environment, program started directly)
// as on its slow one; exit codes and output streams are the command's.
func TestExecSeesLoginShell(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspaceWith(t, c, pyro.CreateWorkspaceRequest{Environment: "debian:12",
		Secrets: []pyro.WorkspaceSecret{{Name: "TOKEN", Value: "s3cret-value-9"}}})
	id := w.WorkspaceID
	mustExec(t, c, id, "mkdir -p sub/dir")
	exec := func(req pyro.WorkspaceExecRequest) *pyro.WorkspaceExecResult {
		t.Helper()
		req.Workspace, req.TimeoutSeconds = id, 60
		r, err := c.ExecWorkspace(ctx, req)
		if err != nil {
			t.Fatalf("%q: %v", req.Command, err)
		}
		return r
	}
	// The reference: a request with a variable of its own, which the agent
	// runs the slow way, `/bin/sh -lc` with the profile run for it.
	for _, cwd := range []string{"", "sub/dir"} {
		want := exec(pyro.WorkspaceExecRequest{Command: loginView, Cwd: cwd, Env: map[string]string{"PYRO_REF": "1"}})
		want.Stdout = strings.Replace(want.Stdout, "PYRO_REF=1\n", "", 1)
		got := exec(pyro.WorkspaceExecRequest{Command: loginView, Cwd: cwd})
		if got.Stdout != want.Stdout || got.ExitCode != 0 || got.Stderr != "" {
			t.Errorf("cwd %q:\nlogin shell:\n%s\nexec:\n%s%s", cwd, want.Stdout, got.Stdout, got.Stderr)
		}
		if !strings.Contains(got.Stdout, "\n0022\n"+pwdOf(cwd)+"\nPWD="+pwdOf(cwd)+"\n") {
			t.Errorf("cwd %q: umask and cwd in %q", cwd, got.Stdout)
		}
	}
	// A program started directly sees the same environment as one under a shell.
	direct := exec(pyro.WorkspaceExecRequest{Command: "env"})
	shell := exec(pyro.WorkspaceExecRequest{Command: "env | cat"})
	if sortedEnv(direct.Stdout) != sortedEnv(shell.Stdout) {
		t.Errorf("direct program:\n%s\nunder the shell:\n%s", direct.Stdout, shell.Stdout)
	}
	// --env and secrets: set for this call only, secret values redacted.
	r := exec(pyro.WorkspaceExecRequest{Command: `printf '%s|%s|%s\n' "$FOO" "$TOKEN" "$PATH"`,
		Env: map[string]string{"FOO": "bar baz"}, SecretEnv: map[string]string{"TOKEN": ""}})
	if !strings.HasPrefix(r.Stdout, "bar baz|[REDACTED]|") || !strings.Contains(r.Stdout, "/usr/bin") {
		t.Errorf("env and secret: %q", r.Stdout)
	}
	if r := exec(pyro.WorkspaceExecRequest{Command: `printf '%s|%s' "$FOO" "$TOKEN"`}); r.Stdout != "|" {
		t.Errorf("variables of an earlier call leaked: %q", r.Stdout)
	}
	// Exit codes, signals and streams.
	if r := exec(pyro.WorkspaceExecRequest{Command: "echo out; echo err >&2; exit 7"}); r.ExitCode != 7 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("exit 7: %+v", r)
	}
	if r := exec(pyro.WorkspaceExecRequest{Command: "false"}); r.ExitCode != 1 {
		t.Errorf("false: %+v", r)
	}
	if r := exec(pyro.WorkspaceExecRequest{Command: "nosuchprogram-pyro"}); r.ExitCode != 127 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("missing program: %+v", r)
	}
	if r := exec(pyro.WorkspaceExecRequest{Command: "kill -TERM $$"}); r.Signal != "TERM" || r.ExitCode != 143 {
		t.Errorf("killed by TERM: %+v", r)
	}
}

// The agent's kept login environment follows the profile: a file added to,
// rewritten in or removed from /etc/profile.d, or a changed ~/.profile, is
// seen by the very next command, on the fast path as under a login shell.
func TestExecFollowsProfile(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	id := createWorkspace(t, c, "debian:12").WorkspaceID
	seen := func(name string) string {
		t.Helper()
		for _, l := range strings.Split(mustExec(t, c, id, "env").Stdout, "\n") {
			if v, ok := strings.CutPrefix(l, name+"="); ok {
				return v
			}
		}
		return ""
	}
	mustExec(t, c, id, "true") // the cache is taken
	// The agent learns of changes by inotify (without it, by stamps on every exec).
	if r := mustExec(t, c, id, "cat /proc/sys/fs/inotify/max_user_watches"); strings.TrimSpace(r.Stdout) == "" {
		t.Errorf("no inotify in the guest kernel: %q", r.Stderr)
	}
	steps := []struct{ change, name, want string }{
		{"echo 'export PYRO_T=1' > /etc/profile.d/zz-pyro.sh", "PYRO_T", "1"},
		{"echo 'export PYRO_T=2' > /etc/profile.d/zz-pyro.sh", "PYRO_T", "2"}, // same size, same inode
		{"rm /etc/profile.d/zz-pyro.sh", "PYRO_T", ""},
		{"echo 'export PYRO_HOME_T=yes' >> $HOME/.profile", "PYRO_HOME_T", "yes"},
	}
	for _, st := range steps {
		mustExec(t, c, id, st.change)
		if got := seen(st.name); got != st.want {
			t.Errorf("after %q: %s=%q, want %q", st.change, st.name, got, st.want)
		}
	}
	// Programs on PATH: the agent remembers where it found one, and a
	// program added, shadowed (/usr/local/bin comes before /usr/bin) or
	// removed is seen by the very next command.
	tool := "#!/bin/sh\necho pyro-$0\n"
	for _, st := range []struct{ change, cmd, want string }{
		{"true", "pyro-tool", ""},
		{"printf '" + tool + "' > /usr/local/bin/pyro-tool && chmod +x /usr/local/bin/pyro-tool", "pyro-tool", "pyro-/usr/local/bin/pyro-tool"},
		{"true", "whoami", "root"},
		{"printf '" + tool + "' > /usr/local/bin/whoami && chmod +x /usr/local/bin/whoami", "whoami", "pyro-/usr/local/bin/whoami"},
		{"chmod -x /usr/local/bin/whoami", "whoami", "root"},
		{"rm /usr/local/bin/pyro-tool /usr/local/bin/whoami", "pyro-tool", ""},
	} {
		mustExec(t, c, id, st.change)
		r, err := c.ExecWorkspace(t.Context(), pyro.WorkspaceExecRequest{Workspace: id, Command: st.cmd})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(r.Stdout); got != st.want || (st.want == "") != (r.ExitCode == 127) {
			t.Errorf("after %q: %s printed %q (exit %d), want %q", st.change, st.cmd, got, r.ExitCode, st.want)
		}
	}
}

func pwdOf(cwd string) string {
	if cwd == "" {
		return "/workspace"
	}
	return "/workspace/" + cwd
}

func sortedEnv(out string) string {
	lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(out), "\n"), func(l string) bool {
		return strings.HasPrefix(l, "_=") || strings.HasPrefix(l, "SHLVL=") || strings.HasPrefix(l, "OLDPWD=")
	})
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// Commands reuse the cgroup of an earlier command once it is empty (the
// fast path; the agent's own group is another), never one whose processes live on; a reused group keeps its
// pids limit. Under TCG commands run without address randomisation.
func TestExecGroupsReused(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	id := createWorkspace(t, c, "debian:12").WorkspaceID
	group := func() string {
		t.Helper()
		return strings.TrimSpace(mustExec(t, c, id, "cat /proc/self/cgroup").Stdout)
	}
	first := group()
	if !strings.HasPrefix(first, "0::/pyro-commands/c") {
		t.Fatalf("command's cgroup: %q", first)
	}
	// The agent has a group of its own, the heaviest CPU peer.
	if r := mustExec(t, c, id, "cat /proc/1/cgroup /sys/fs/cgroup/pyro-agent/cpu.weight").Stdout; r != "0::/pyro-agent\n10000\n" {
		t.Errorf("the agent's cgroup and weight: %q", r)
	}
	// The agent's threads run SCHED_BATCH (3), commands SCHED_OTHER (0) as
	// always: field 41 of stat.
	if r := mustExec(t, c, id, "cut -d' ' -f41 /proc/self/stat; cut -d' ' -f41 /proc/1/task/*/stat | sort -u").Stdout; r != "0\n3\n" {
		t.Errorf("policies of a command, then of the agent's threads: %q", r)
	}
	if again := group(); again != first {
		t.Errorf("an empty group was not reused: %q then %q", first, again)
	}
	// A background job keeps its group: the next command gets another.
	mustExec(t, c, id, "sh -c 'cat /proc/self/cgroup > /tmp/bg.cgroup; exec sleep 300' >/dev/null 2>&1 &")
	busy := strings.TrimSpace(mustExec(t, c, id, "sleep 0.5; cat /tmp/bg.cgroup").Stdout)
	next := group()
	if next == busy {
		t.Errorf("a group with a live process was reused: %q", busy)
	}
	dir := "/sys/fs/cgroup" + strings.TrimPrefix(next, "0::")
	r := mustExec(t, c, id, "cat "+dir+"/pids.max "+"/sys/fs/cgroup"+strings.TrimPrefix(busy, "0::")+"/pids.current")
	if f := strings.Fields(r.Stdout); len(f) != 2 || f[0] != "512" || f[1] == "0" {
		t.Errorf("pids.max of the reused group, pids.current of the busy one: %q", r.Stdout)
	}
	w, err := c.WorkspaceStatus(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	aslr := strings.TrimSpace(mustExec(t, c, id, "cat /proc/sys/kernel/randomize_va_space").Stdout)
	if want := map[bool]string{true: "0", false: "2"}[w.ExecutionMode == "guest_qemu_tcg"]; aslr != want {
		t.Errorf("%s: randomize_va_space %s, want %s", w.ExecutionMode, aslr, want)
	}
}

// pyro bench --exec splits a CLI exec into its parts, the agent's own
// account included, each within the whole.
func TestBenchExecSplit(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	id := createWorkspace(t, c, "debian:12").WorkspaceID
	r, err := bench.Exec(t.Context(), c, testutil.Binaries(t)+"/pyro", id, 3, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if r.CLIUs <= r.FrontUs || r.FrontUs <= 0 || r.CLIStartUs <= 0 || r.FullStartUs <= 0 || r.SDKUs <= 0 || r.SupervisorUs < r.AgentUs ||
		r.GuestTotalUs <= 0 || r.GuestTotalUs > r.AgentUs || r.GuestSyncUs > r.GuestTotalUs || r.FloorRatio <= 0 {
		t.Errorf("report %+v", r)
	}
	var names []string
	for _, p := range r.Parts {
		names = append(names, p.Name)
		if p.Us < 0 || p.Us > r.CLIUs+r.SDKUs {
			t.Errorf("part %q: %d us", p.Name, p.Us)
		}
	}
	if len(names) != 9 || names[0] != "cli process start" || names[8] != "durability sync (syncfs)" {
		t.Errorf("parts %q", names)
	}
}
