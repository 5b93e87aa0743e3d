//go:build linux

package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// The test binary doubles as a TCP or HTTP server for readiness checks: a
// service started with testServerEnv set runs testServer instead of tests.
const (
	testServerEnv = "PYRO_AGENT_TEST_SERVER" // "tcp" or "http"
	testPortEnv   = "PYRO_AGENT_TEST_PORT"
	testDelayEnv  = "PYRO_AGENT_TEST_DELAY_MS" // before listening
)

func init() {
	if mode := os.Getenv(testServerEnv); mode != "" {
		os.Exit(testServer(mode))
	}
}

func testServer(mode string) int {
	if ms, _ := strconv.Atoi(os.Getenv(testDelayEnv)); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv(testPortEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("listening on", ln.Addr())
	switch mode {
	case "tcp":
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			c.Close()
		}
	case "http":
		err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/broken" {
				http.Error(w, "broken", http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		}))
		fmt.Fprintln(os.Stderr, err)
	}
	return 1
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serverReq starts the test binary as a server of mode on port.
func serverReq(t *testing.T, name, mode string, port int) *agentproto.ServiceRequest {
	return &agentproto.ServiceRequest{
		Name: name,
		Argv: []string{testBinary(t)},
		Env:  []string{testServerEnv + "=" + mode, testPortEnv + "=" + strconv.Itoa(port), testDelayEnv + "=150"},
	}
}

// serviceEnv is an agent with its own services root and workspace (the
// services' default cwd). Services still running at the end are killed.
type serviceEnv struct {
	sess      *yamux.Session
	root      string
	workspace string
}

func newServiceEnv(t *testing.T) *serviceEnv {
	t.Helper()
	e := &serviceEnv{root: t.TempDir(), workspace: t.TempDir()}
	e.sess = startAgent(t, Options{ServicesRoot: e.root, WorkspaceRoot: e.workspace})
	reapServices(t, e.root)
	return e
}

// reapServices kills, at the end of the test, the services of root that
// still run, and waits until every service's end is recorded (before the
// temporary directories go).
func reapServices(t *testing.T, root string) {
	t.Cleanup(func() {
		reg := registryFor(root)
		reg.mu.Lock()
		var left []*service
		for _, svc := range reg.services {
			left = append(left, svc)
		}
		reg.mu.Unlock()
		for _, svc := range left {
			killAndReap(svc, 100*time.Millisecond)
		}
	})
}

func (e *serviceEnv) call(t *testing.T, op string, req *agentproto.ServiceRequest) reply {
	t.Helper()
	return call(t, e.sess, agentproto.Request{Op: op, Service: req})
}

// info calls op and requires a ServiceInfo.
func (e *serviceEnv) info(t *testing.T, op string, req *agentproto.ServiceRequest) agentproto.ServiceInfo {
	t.Helper()
	r := e.call(t, op, req)
	if r.err != nil {
		t.Fatalf("%s %s: %v", op, req.Name, r.err)
	}
	var info agentproto.ServiceInfo
	mustUnmarshal(t, r.result, &info)
	return info
}

func (e *serviceEnv) start(t *testing.T, req *agentproto.ServiceRequest) agentproto.ServiceInfo {
	t.Helper()
	return e.info(t, agentproto.OpServiceStart, req)
}

func (e *serviceEnv) status(t *testing.T, name string) agentproto.ServiceInfo {
	t.Helper()
	return e.info(t, agentproto.OpServiceStatus, &agentproto.ServiceRequest{Name: name})
}

func (e *serviceEnv) stop(t *testing.T, name string, graceMs int64) agentproto.ServiceInfo {
	t.Helper()
	return e.info(t, agentproto.OpServiceStop, &agentproto.ServiceRequest{Name: name, StopGraceMs: graceMs})
}

func (e *serviceEnv) logs(t *testing.T, req *agentproto.ServiceRequest) agentproto.ServiceLogs {
	t.Helper()
	r := e.call(t, agentproto.OpServiceLogs, req)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var l agentproto.ServiceLogs
	mustUnmarshal(t, r.result, &l)
	return l
}

// stateFile reads the service's state.json.
func (e *serviceEnv) stateFile(t *testing.T, name string) agentproto.ServiceInfo {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, name, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info agentproto.ServiceInfo
	mustUnmarshal(t, b, &info)
	return info
}

// waitState polls the status until the service is in state.
func (e *serviceEnv) waitState(t *testing.T, name, state string) agentproto.ServiceInfo {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var info agentproto.ServiceInfo
		// A start being set up is not listed yet.
		r := e.call(t, agentproto.OpServiceStatus, &agentproto.ServiceRequest{Name: name})
		if r.err == nil {
			mustUnmarshal(t, r.result, &info)
		} else if r.err.Code != agentproto.ErrCodeNotFound {
			t.Fatal(r.err)
		}
		if info.State == state {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s is %q, want %s: %+v", name, info.State, state, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool { return unix.Kill(pid, 0) == nil }

func exitCode(info agentproto.ServiceInfo) string {
	if info.ExitCode == nil {
		return "none"
	}
	return strconv.Itoa(*info.ExitCode)
}

func TestServiceReadinessKinds(t *testing.T) {
	e := newServiceEnv(t)
	tcpPort, tcpPort2, httpPort := freePort(t), freePort(t), freePort(t)
	reqs := map[string]*agentproto.ServiceRequest{
		"none": {Argv: []string{"sleep", "1000"}},
		"file": {Argv: []string{"sh", "-c", "sleep 0.2; touch ready.flag; exec sleep 1000"},
			ReadyKind: agentproto.ReadyFile, ReadyTarget: "ready.flag"},
		"command": {Argv: []string{"sh", "-c", "sleep 0.2; touch cmd.flag; exec sleep 1000"},
			ReadyKind: agentproto.ReadyCommand, ReadyTarget: "test -f cmd.flag", ReadyIntervalMs: 50},
	}
	reqs["tcp"] = serverReq(t, "", "tcp", tcpPort)
	reqs["tcp"].ReadyKind, reqs["tcp"].ReadyTarget = agentproto.ReadyTCP, strconv.Itoa(tcpPort)
	reqs["tcp-hostport"] = serverReq(t, "", "tcp", tcpPort2)
	reqs["tcp-hostport"].ReadyKind, reqs["tcp-hostport"].ReadyTarget = agentproto.ReadyTCP, fmt.Sprintf("127.0.0.1:%d", tcpPort2)
	reqs["http"] = serverReq(t, "", "http", httpPort)
	reqs["http"].ReadyKind, reqs["http"].ReadyTarget = agentproto.ReadyHTTP, fmt.Sprintf("http://127.0.0.1:%d/health", httpPort)

	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			req.Name = name
			info := e.start(t, req)
			if info.State != agentproto.ServiceReady || info.ReadyAt == "" || info.StartedAt == "" || info.Pid <= 0 || info.ExitCode != nil {
				t.Fatalf("start: %+v", info)
			}
			if info.Cwd != e.workspace || info.LogPath != filepath.Join(e.root, name, "log") || info.ReadyKind != req.ReadyKind {
				t.Errorf("start: %+v", info)
			}
			if !alive(info.Pid) {
				t.Fatalf("ready service %d is not running", info.Pid)
			}
			if st := e.stateFile(t, name); st.State != agentproto.ServiceReady || st.Pid != info.Pid {
				t.Errorf("state.json: %+v", st)
			}
			info = e.stop(t, name, 0)
			if info.State != agentproto.ServiceStopped || exitCode(info) != "-1" || info.Signal != "TERM" || info.EndedAt == "" {
				t.Errorf("stop: %+v (exit %s)", info, exitCode(info))
			}
			waitPidGone(t, info.Pid, time.Second)
			if st := e.stateFile(t, name); st.State != agentproto.ServiceStopped {
				t.Errorf("state.json: %+v", st)
			}
		})
	}
}

func TestServiceNeverReady(t *testing.T) {
	e := newServiceEnv(t)
	port := freePort(t)
	for name, req := range map[string]*agentproto.ServiceRequest{
		"file": {Argv: []string{"sh", "-c", "sleep 1000 & sleep 1000"}, ReadyKind: agentproto.ReadyFile, ReadyTarget: "never"},
		"http": serverReq(t, "", "http", port),
	} {
		t.Run(name, func(t *testing.T) {
			req.Name = name
			if name == "http" {
				// Answers, but with a 500.
				req.ReadyKind, req.ReadyTarget = agentproto.ReadyHTTP, fmt.Sprintf("http://127.0.0.1:%d/broken", port)
			}
			req.ReadyTimeoutMs, req.ReadyIntervalMs = 700, 50
			start := time.Now()
			info := e.start(t, req)
			if d := time.Since(start); d < 700*time.Millisecond || d > 6*time.Second {
				t.Errorf("start took %v", d)
			}
			want := fmt.Sprintf("not ready after 700ms (readiness: %s %s)", req.ReadyKind, req.ReadyTarget)
			if info.State != agentproto.ServiceFailed || info.Reason != want || info.Signal != "TERM" || info.EndedAt == "" {
				t.Fatalf("start: %+v, want reason %q", info, want)
			}
			waitPidGone(t, info.Pid, time.Second)
			waitGroupGone(t, info.Pid)
		})
	}
}

func TestServiceExitsBeforeReady(t *testing.T) {
	e := newServiceEnv(t)
	info := e.start(t, &agentproto.ServiceRequest{
		Name: "crash", Argv: []string{"sh", "-c", "sleep 1000 & echo boom >&2; exit 4"},
		ReadyKind: agentproto.ReadyTCP, ReadyTarget: strconv.Itoa(freePort(t)),
	})
	if info.State != agentproto.ServiceFailed || exitCode(info) != "4" || info.Reason != "exited with code 4 before it was ready" {
		t.Fatalf("start: %+v (exit %s)", info, exitCode(info))
	}
	if l := e.logs(t, &agentproto.ServiceRequest{Name: "crash"}); string(l.Log) != "boom\n" || l.Truncated {
		t.Errorf("logs %q, truncated %v", l.Log, l.Truncated)
	}
	waitGroupGone(t, info.Pid) // the background sleep went too

	info = e.start(t, &agentproto.ServiceRequest{
		Name: "killed", Argv: []string{"sh", "-c", "kill -KILL $$"},
		ReadyKind: agentproto.ReadyFile, ReadyTarget: "never",
	})
	if info.State != agentproto.ServiceFailed || info.Signal != "KILL" || info.Reason != "killed by SIGKILL before it was ready" {
		t.Fatalf("start: %+v", info)
	}
}

func TestServiceDuplicateAndRestart(t *testing.T) {
	e := newServiceEnv(t)
	req := &agentproto.ServiceRequest{Name: "db", Argv: []string{"sh", "-c", `echo "$0"; exec sleep 1000`, "first"}}
	first := e.start(t, req)
	r := e.call(t, agentproto.OpServiceStart, req)
	wantError(t, r, agentproto.ErrCodeExists)
	if want := "service db is already running (state ready); stop it first or pick another name"; r.err.Message != want {
		t.Errorf("message %q", r.err.Message)
	}
	if !alive(first.Pid) {
		t.Fatal("the duplicate start touched the running service")
	}
	e.waitLog(t, "db", "first\n")
	e.stop(t, "db", 0)

	req.Argv[3] = "second"
	second := e.start(t, req)
	if second.State != agentproto.ServiceReady || second.Pid == first.Pid || second.ExitCode != nil || second.EndedAt != "" {
		t.Fatalf("restart: %+v", second)
	}
	e.waitLog(t, "db", "second\n") // the log starts afresh
}

// waitLog polls the whole log until it is want.
func (e *serviceEnv) waitLog(t *testing.T, name, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := e.logs(t, &agentproto.ServiceRequest{Name: name})
		if string(l.Log) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of %s is %q, want %q", name, l.Log, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServicePortInUse(t *testing.T) {
	e := newServiceEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port
	r := e.call(t, agentproto.OpServiceStart, &agentproto.ServiceRequest{
		Name: "x", Argv: []string{"sleep", "1000"}, ReadyKind: agentproto.ReadyTCP, ReadyTarget: strconv.Itoa(taken),
	})
	wantError(t, r, agentproto.ErrCodePortInUse)
	if want := fmt.Sprintf("port %d is already in use by another process", taken); r.err.Message != want {
		t.Errorf("message %q, want %q", r.err.Message, want)
	}

	port := freePort(t)
	req := serverReq(t, "web", "tcp", port)
	req.ReadyKind, req.ReadyTarget = agentproto.ReadyTCP, strconv.Itoa(port)
	e.start(t, req)
	r = e.call(t, agentproto.OpServiceStart, &agentproto.ServiceRequest{
		Name: "web2", Argv: []string{"sleep", "1000"},
		ReadyKind: agentproto.ReadyHTTP, ReadyTarget: fmt.Sprintf("http://127.0.0.1:%d/", port),
	})
	wantError(t, r, agentproto.ErrCodePortInUse)
	if want := fmt.Sprintf("port %d is already in use by service web", port); r.err.Message != want {
		t.Errorf("message %q, want %q", r.err.Message, want)
	}
	// Refused starts leave no record.
	var l agentproto.ServiceList
	mustUnmarshal(t, e.call(t, agentproto.OpServiceList, nil).result, &l)
	if len(l.Services) != 1 || l.Services[0].Name != "web" {
		t.Errorf("list %+v", l)
	}
}

func TestServiceStopEscalatesToKill(t *testing.T) {
	e := newServiceEnv(t)
	info := e.start(t, &agentproto.ServiceRequest{
		Name: "stubborn", Argv: []string{"sh", "-c", "trap '' TERM; sleep 1000 & touch armed; wait"},
		ReadyKind: agentproto.ReadyFile, ReadyTarget: "armed",
	})
	start := time.Now()
	stopped := e.stop(t, "stubborn", 300)
	if d := time.Since(start); d < 300*time.Millisecond || d > 6*time.Second {
		t.Errorf("stop took %v", d)
	}
	if stopped.State != agentproto.ServiceStopped || stopped.Signal != "KILL" || exitCode(stopped) != "-1" {
		t.Fatalf("stop: %+v", stopped)
	}
	waitPidGone(t, info.Pid, time.Second)
	waitGroupGone(t, info.Pid)
	// Stopping again answers the same.
	if again := e.stop(t, "stubborn", 0); again.State != agentproto.ServiceStopped || again.EndedAt != stopped.EndedAt {
		t.Errorf("second stop: %+v", again)
	}
}

func TestServiceExitsLater(t *testing.T) {
	e := newServiceEnv(t)
	info := e.start(t, &agentproto.ServiceRequest{Name: "job", Argv: []string{"sh", "-c", "sleep 0.3; exit 5"}})
	if info.State != agentproto.ServiceReady {
		t.Fatalf("start: %+v", info)
	}
	info = e.waitState(t, "job", agentproto.ServiceExited)
	if exitCode(info) != "5" || info.Signal != "" || info.EndedAt == "" || info.Reason != "" {
		t.Errorf("exited: %+v", info)
	}
	if st := e.stateFile(t, "job"); st.State != agentproto.ServiceExited || exitCode(st) != "5" {
		t.Errorf("state.json: %+v", st)
	}
	if stopped := e.stop(t, "job", 0); stopped.State != agentproto.ServiceExited {
		t.Errorf("stop of an exited service: %+v", stopped)
	}
}

func TestServiceLogs(t *testing.T) {
	e := newServiceEnv(t)
	e.start(t, &agentproto.ServiceRequest{
		Name:      "chatty",
		Argv:      []string{"sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo err >&2; touch done.flag; exec sleep 1000"},
		ReadyKind: agentproto.ReadyFile, ReadyTarget: "done.flag",
	})
	all := "line1\nline2\nline3\nline4\nline5\nerr\n"
	for _, tc := range []struct {
		tail      int
		max       int64
		want      string
		truncated bool
	}{
		{0, 0, all, false},
		{2, 0, "line5\nerr\n", true},
		{6, 0, all, false},
		{100, 0, all, false},
		{0, 6, "5\nerr\n", true},
		{1, 100, "err\n", true},
		{3, 12, "4\nline5\nerr\n", true}, // a line cut by max_bytes counts
		{2, 12, "line5\nerr\n", true},
	} {
		l := e.logs(t, &agentproto.ServiceRequest{Name: "chatty", TailLines: tc.tail, MaxBytes: tc.max})
		if string(l.Log) != tc.want || l.Truncated != tc.truncated || l.Name != "chatty" {
			t.Errorf("tail %d max %d: %q truncated %v, want %q %v", tc.tail, tc.max, l.Log, l.Truncated, tc.want, tc.truncated)
		}
	}
}

func TestTailStart(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 1, ""},
		{"a", 1, "a"},
		{"a\n", 1, "a\n"},
		{"a\nb", 1, "b"},
		{"a\nb\n", 1, "b\n"},
		{"a\n\n", 1, "\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
	} {
		if got := tc.in[tailStart([]byte(tc.in), tc.n):]; got != tc.want {
			t.Errorf("tail %d of %q = %q, want %q", tc.n, tc.in, got, tc.want)
		}
	}
}

func TestServiceStartCanceled(t *testing.T) {
	e := newServiceEnv(t)
	stream := send(t, e.sess, agentproto.Request{Op: agentproto.OpServiceStart, Service: &agentproto.ServiceRequest{
		Name: "slow", Argv: []string{"sleep", "1000"}, ReadyKind: agentproto.ReadyFile, ReadyTarget: "never",
	}})
	info := e.waitState(t, "slow", agentproto.ServiceStarting)
	stream.Close()
	info = e.waitState(t, "slow", agentproto.ServiceFailed)
	if info.Reason != "start canceled" || info.Signal != "TERM" {
		t.Errorf("canceled: %+v", info)
	}
	waitPidGone(t, info.Pid, time.Second)
}

func TestServiceListAndSessions(t *testing.T) {
	e := newServiceEnv(t)
	for _, name := range []string{"b", "a", "c.1"} {
		e.start(t, &agentproto.ServiceRequest{Name: name, Argv: []string{"sleep", "1000"}})
	}
	e.stop(t, "b", 0)
	var l agentproto.ServiceList
	r := e.call(t, agentproto.OpServiceList, nil)
	mustUnmarshal(t, r.result, &l)
	var got []string
	for _, s := range l.Services {
		got = append(got, s.Name+"="+s.State)
	}
	if want := "a=ready b=stopped c.1=ready"; strings.Join(got, " ") != want {
		t.Errorf("list %v, want %s", got, want)
	}

	// Services outlive the session that started them.
	sess := startAgent(t, Options{ServicesRoot: e.root, WorkspaceRoot: e.workspace})
	r = call(t, sess, agentproto.Request{Op: agentproto.OpServiceStatus, Service: &agentproto.ServiceRequest{Name: "a"}})
	var info agentproto.ServiceInfo
	mustUnmarshal(t, r.result, &info)
	if info.State != agentproto.ServiceReady {
		t.Errorf("from another session: %+v", info)
	}
	// An empty registry lists [] rather than null.
	r = call(t, startAgent(t, Options{ServicesRoot: t.TempDir()}), agentproto.Request{Op: agentproto.OpServiceList})
	if !json.Valid(r.result) || !strings.Contains(string(r.result), `"services":[]`) {
		t.Errorf("empty list %s", r.result)
	}
}

func TestServiceErrors(t *testing.T) {
	e := newServiceEnv(t)
	file := filepath.Join(e.workspace, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sleep := []string{"sleep", "1000"}
	for name, tc := range map[string]struct {
		op   string
		req  *agentproto.ServiceRequest
		code string
	}{
		"no service":       {agentproto.OpServiceStart, nil, agentproto.ErrCodeBadRequest},
		"empty name":       {agentproto.OpServiceStart, &agentproto.ServiceRequest{Argv: sleep}, agentproto.ErrCodeBadRequest},
		"dot name":         {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "..", Argv: sleep}, agentproto.ErrCodeBadRequest},
		"slash name":       {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a/b", Argv: sleep}, agentproto.ErrCodeBadRequest},
		"long name":        {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: strings.Repeat("a", 64), Argv: sleep}, agentproto.ErrCodeBadRequest},
		"empty argv":       {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a"}, agentproto.ErrCodeBadRequest},
		"unknown kind":     {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyKind: "smoke"}, agentproto.ErrCodeBadRequest},
		"target, no kind":  {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyTarget: "8080"}, agentproto.ErrCodeBadRequest},
		"port 0":           {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyKind: "tcp", ReadyTarget: "0"}, agentproto.ErrCodeBadRequest},
		"port 70000":       {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyKind: "tcp", ReadyTarget: "localhost:70000"}, agentproto.ErrCodeBadRequest},
		"tcp word":         {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyKind: "tcp", ReadyTarget: "web"}, agentproto.ErrCodeBadRequest},
		"https":            {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyKind: "http", ReadyTarget: "https://localhost/"}, agentproto.ErrCodeBadRequest},
		"http no host":     {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyKind: "http", ReadyTarget: "http:///x"}, agentproto.ErrCodeBadRequest},
		"empty file":       {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyKind: "file"}, agentproto.ErrCodeBadRequest},
		"empty command":    {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyKind: "command", ReadyTarget: " "}, agentproto.ErrCodeBadRequest},
		"timeout too long": {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyTimeoutMs: 600_001}, agentproto.ErrCodeBadRequest},
		"interval 5ms":     {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, ReadyIntervalMs: 5}, agentproto.ErrCodeBadRequest},
		"bad env":          {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, Env: []string{"=x"}}, agentproto.ErrCodeBadRequest},
		"missing cwd":      {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, Cwd: "/does/not/exist"}, agentproto.ErrCodeExecFailed},
		"cwd is a file":    {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: sleep, Cwd: "file"}, agentproto.ErrCodeExecFailed},
		"not in PATH":      {agentproto.OpServiceStart, &agentproto.ServiceRequest{Name: "a", Argv: []string{"no-such-command-pyro"}}, agentproto.ErrCodeExecFailed},
		"status unknown":   {agentproto.OpServiceStatus, &agentproto.ServiceRequest{Name: "nope"}, agentproto.ErrCodeNotFound},
		"stop unknown":     {agentproto.OpServiceStop, &agentproto.ServiceRequest{Name: "nope"}, agentproto.ErrCodeNotFound},
		"logs unknown":     {agentproto.OpServiceLogs, &agentproto.ServiceRequest{Name: "nope"}, agentproto.ErrCodeNotFound},
		"status no name":   {agentproto.OpServiceStatus, nil, agentproto.ErrCodeBadRequest},
		"status bad name":  {agentproto.OpServiceStatus, &agentproto.ServiceRequest{Name: "-x"}, agentproto.ErrCodeBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.call(t, tc.op, tc.req)
			wantError(t, r, tc.code)
			if r.err.Message == "" {
				t.Error("empty message")
			}
		})
	}
	r := e.call(t, agentproto.OpServiceStatus, &agentproto.ServiceRequest{Name: "nope"})
	if want := "no service named nope; list them with service list"; r.err.Message != want {
		t.Errorf("message %q", r.err.Message)
	}
	// Nothing of the refused starts was recorded.
	var l agentproto.ServiceList
	mustUnmarshal(t, e.call(t, agentproto.OpServiceList, nil).result, &l)
	if len(l.Services) != 0 {
		t.Errorf("list %+v", l)
	}
}

// Without a workspace the default cwd is /.
func TestServiceDefaultCwd(t *testing.T) {
	root := t.TempDir()
	sess := startAgent(t, Options{ServicesRoot: root, WorkspaceRoot: filepath.Join(root, "missing")})
	reapServices(t, root)
	r := call(t, sess, agentproto.Request{Op: agentproto.OpServiceStart, Service: &agentproto.ServiceRequest{Name: "pwd", Argv: []string{"sh", "-c", "pwd; exit 0"}}})
	var info agentproto.ServiceInfo
	mustUnmarshal(t, r.result, &info)
	if info.Cwd != "/" {
		t.Errorf("cwd %q", info.Cwd)
	}
}

func TestValidServiceName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "web": true, "Web-1.api_v2": true, "0": true, strings.Repeat("x", 63): true,
		"": false, strings.Repeat("x", 64): false, ".a": false, "-a": false, "_a": false, "..": false,
		"a/b": false, "a b": false, "é": false, "a\n": false,
	} {
		if got := validServiceName(name); got != want {
			t.Errorf("validServiceName(%q) = %v", name, got)
		}
	}
}
