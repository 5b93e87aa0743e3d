package pyro_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
)

// Services through the SDK: every readiness kind, and every fault of the
// issue, in one workspace.
func TestServices(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspace(t, c, "debian:12-build")
	ws := w.WorkspaceID
	exec := func(cmd string) *pyro.WorkspaceExecResult {
		t.Helper()
		r, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: cmd})
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return r
	}
	start := func(req pyro.StartServiceRequest) (*pyro.Service, error) {
		req.Workspace = ws
		return c.StartService(ctx, req)
	}

	// The loop: an HTTP server ready by --ready-http, curled from an
	// exec, its log read, stopped.
	web, err := start(pyro.StartServiceRequest{Name: "web", Command: "python3 -m http.server 8000",
		ReadyHTTP: "http://127.0.0.1:8000/"})
	if err != nil {
		t.Fatal(err)
	}
	if web.State != pyro.ServiceReady || web.Pid == 0 || web.ReadyAt == nil || web.Command != "python3 -m http.server 8000" {
		t.Fatalf("web: %+v", web)
	}
	if r := exec("curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/"); r.Stdout != "200" {
		t.Fatalf("curl: %+v", r)
	}
	logs, err := c.ServiceLogs(ctx, pyro.ServiceLogsRequest{Workspace: ws, Name: "web", TailLines: 5})
	if err != nil || !strings.Contains(logs.Log, `"GET / HTTP/1.1" 200`) {
		t.Fatalf("web logs: %v %+v", err, logs)
	}

	// Two services with one name.
	if _, err := start(pyro.StartServiceRequest{Name: "web", Command: "sleep 100"}); pyro.ErrorCode(err) != "service_exists" {
		t.Errorf("second web: %v", err)
	}
	// A port already taken: refused before anything starts.
	if _, err := start(pyro.StartServiceRequest{Name: "web2", Command: "python3 -m http.server 8000", ReadyTCP: 8000}); pyro.ErrorCode(err) != "port_in_use" || !strings.Contains(err.Error(), "8000") {
		t.Errorf("port taken: %v", err)
	}

	// The other readiness kinds.
	for _, req := range []pyro.StartServiceRequest{
		{Name: "tcp", Command: "python3 -m http.server 8001", ReadyTCP: 8001},
		{Name: "file", Command: "sleep 1; touch ready.flag; exec sleep 1000", Cwd: "svc", ReadyFile: "ready.flag"},
		{Name: "cmd", Command: "sleep 1; echo up > /tmp/state; exec sleep 1000", ReadyCommand: "grep -q up /tmp/state"},
		{Name: "plain", Command: "exec sleep 1000"},
	} {
		if req.Cwd != "" {
			exec("mkdir -p " + req.Cwd)
		}
		s, err := start(req)
		if err != nil || s.State != pyro.ServiceReady {
			t.Fatalf("%s: %v %+v", req.Name, err, s)
		}
	}

	// Readiness that never comes: failed at the deadline, the process gone,
	// the error carries the reason and the log tail.
	began := time.Now()
	never, err := start(pyro.StartServiceRequest{Name: "never", Command: "echo booting; exec sleep 1000", ReadyTCP: 9999, ReadyTimeoutSeconds: 2})
	if pyro.ErrorCode(err) != "service_failed" || !strings.Contains(err.Error(), "booting") || never == nil || never.State != pyro.ServiceFailed {
		t.Fatalf("never ready: %v %+v", err, never)
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Errorf("failing start took %s", d)
	}
	if r := exec("kill -0 " + strconv.Itoa(never.Pid) + " 2>/dev/null && echo alive || echo gone"); r.Stdout != "gone\n" {
		t.Errorf("never-ready process: %q", r.Stdout)
	}
	// A service that exits before it is ready fails with its exit code.
	early, err := start(pyro.StartServiceRequest{Name: "early", Command: "echo oops >&2; exit 4", ReadyTCP: 9998})
	if pyro.ErrorCode(err) != "service_failed" || early == nil || early.ExitCode == nil || *early.ExitCode != 4 || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("early exit: %v %+v", err, early)
	}
	// A service that ends on its own later is exited, not running.
	if _, err := start(pyro.StartServiceRequest{Name: "brief", Command: "sleep 1; exit 7"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	brief, err := c.ServiceStatus(ctx, pyro.ServiceRequest{Workspace: ws, Name: "brief"})
	if err != nil || brief.State != pyro.ServiceExited || brief.ExitCode == nil || *brief.ExitCode != 7 {
		t.Fatalf("brief: %v %+v", err, brief)
	}
	// Stop: TERM, then KILL for a process that ignores TERM; reaped.
	if _, err := start(pyro.StartServiceRequest{Name: "stubborn", Command: "trap '' TERM; while :; do sleep 0.2; done"}); err != nil {
		t.Fatal(err)
	}
	stopped, err := c.StopService(ctx, pyro.ServiceRequest{Workspace: ws, Name: "stubborn"})
	if err != nil || stopped.State != pyro.ServiceStopped {
		t.Fatalf("stop stubborn: %v %+v", err, stopped)
	}
	if r := exec("kill -0 " + strconv.Itoa(stopped.Pid) + " 2>/dev/null && echo alive || echo gone"); r.Stdout != "gone\n" {
		t.Errorf("stubborn after stop: %q", r.Stdout)
	}
	if s, err := c.StopService(ctx, pyro.ServiceRequest{Workspace: ws, Name: "web"}); err != nil || s.State != pyro.ServiceStopped {
		t.Fatalf("stop web: %v %+v", err, s)
	}
	if r := exec("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/"); r.Stdout == "200" {
		t.Error("web still answers after stop")
	}

	list, err := c.ListServices(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, s := range list {
		states[s.Name] = s.State
	}
	want := map[string]string{"web": "stopped", "tcp": "ready", "file": "ready", "cmd": "ready", "plain": "ready",
		"never": "failed", "early": "failed", "brief": "exited", "stubborn": "stopped"}
	for n, st := range want {
		if states[n] != st {
			t.Errorf("service %s: %q, want %q (all: %v)", n, states[n], st, states)
		}
	}
	// Logs and state stay out of /workspace: the diff holds only what the
	// services' commands wrote there themselves.
	d, err := c.DiffWorkspace(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d.Patch, "pyro-services") || strings.Contains(d.Patch, "booting") {
		t.Errorf("service files leak into the diff:\n%s", d.Patch)
	}
	if _, err := c.ServiceStatus(ctx, pyro.ServiceRequest{Workspace: ws, Name: "nope"}); pyro.ErrorCode(err) != "service_not_found" {
		t.Errorf("unknown service: %v", err)
	}
	for _, bad := range []pyro.StartServiceRequest{
		{Name: "bad name", Command: "true"},
		{Name: "x", Command: ""},
		{Name: "x", Command: "true", ReadyTCP: 1, ReadyFile: "f"},
		{Name: "x", Command: "true", ReadyHTTP: "ftp://x"},
	} {
		if _, err := start(bad); pyro.ErrorCode(err) != "invalid_argument" {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
