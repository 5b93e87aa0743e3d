package pyro_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/internal/vm"
)

// The loop: a dev server and a background job survive a pause with
// their PIDs; nothing of the workspace runs on the host while it is paused;
// the published port answers on the host again.
func TestPauseResume(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	w := createWorkspaceWith(t, c, pyro.CreateWorkspaceRequest{Environment: "debian:12-build", NetworkPolicy: "egress+published-ports"})
	ws := w.WorkspaceID
	bg := mustExec(t, c, ws, "sleep 1000 >/dev/null 2>&1 & echo $!").Stdout
	web, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: ws, Name: "web", Command: "python3 -m http.server 8000",
		ReadyHTTP: "http://127.0.0.1:8000/", Publish: []pyro.PortMapping{{GuestPort: 8000}}})
	if err != nil || len(web.PublishedPorts) != 1 {
		t.Fatalf("web: %v %+v", err, web)
	}
	hostURL := fmt.Sprintf("http://127.0.0.1:%d/", web.PublishedPorts[0].HostPort)
	hostGet(t, hostURL)
	sh, err := c.OpenShell(ctx, pyro.OpenShellRequest{Workspace: ws})
	if err != nil {
		t.Fatal(err)
	}
	before := supervisorPids(t, state, ws)

	p, err := c.PauseWorkspace(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != "paused" || p.StateBytes <= 0 || p.PausedAt == nil || len(p.ShellsEnded) != 1 || p.ShellsEnded[0] != sh.ShellID {
		t.Fatalf("pause: %+v", p)
	}
	if vm.Alive(before.Pid, 0) || vm.Alive(before.VMMPid, 0) {
		t.Fatalf("supervisor %d or QEMU %d still alive while paused", before.Pid, before.VMMPid)
	}
	if procs := testutil.QEMUProcessesUnder(filepath.Join(state, "workspaces", ws)); len(procs) > 0 {
		t.Fatalf("processes of a paused workspace: %v", procs)
	}
	if _, err := http.Get(hostURL); err == nil {
		t.Fatal("the published port answers while paused")
	}
	for _, get := range []func() (*pyro.Workspace, error){
		func() (*pyro.Workspace, error) { return c.WorkspaceStatus(ctx, ws) },
		func() (*pyro.Workspace, error) {
			l, err := c.ListWorkspaces(ctx)
			if err != nil || len(l) != 1 {
				return nil, fmt.Errorf("list: %v %v", err, l)
			}
			return &l[0], nil
		},
	} {
		if got, err := get(); err != nil || got.State != "paused" || got.PausedStateBytes != p.StateBytes {
			t.Fatalf("paused workspace shows as %+v (%v)", got, err)
		}
	}
	if again, err := c.PauseWorkspace(ctx, ws); err != nil || again.State != "paused" {
		t.Fatalf("pause of a paused workspace: %v %+v", err, again)
	}

	r, err := c.ResumeWorkspace(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "running" || !r.Restored || r.RestoreError != "" {
		t.Fatalf("resume: %+v", r)
	}
	got := mustExec(t, c, ws, "pgrep -x sleep; curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/").Stdout
	if got != bg+"200" {
		t.Fatalf("after resume: %q, want the same sleep pid %q and 200", got, bg)
	}
	svc, err := c.ServiceStatus(ctx, pyro.ServiceRequest{Workspace: ws, Name: "web"})
	if err != nil || svc.State != pyro.ServiceReady || svc.Pid != web.Pid || len(svc.PublishedPorts) != 1 || svc.PublishedPorts[0] != web.PublishedPorts[0] {
		t.Fatalf("web after resume: %v %+v, was %+v", err, svc, web)
	}
	hostGet(t, hostURL)
	// The guest's clock is the host's again, not the pause's.
	guest := strings.TrimSpace(mustExec(t, c, ws, "date +%s").Stdout)
	if d := time.Since(time.Unix(atoi(t, guest), 0)); d > 5*time.Second || d < -5*time.Second {
		t.Fatalf("guest clock off by %v after resume", d)
	}
	if _, err := c.ReadShell(ctx, pyro.ReadShellRequest{Workspace: ws, ShellID: sh.ShellID}); pyro.ErrorCode(err) != "shell_not_found" || !strings.Contains(err.Error(), "pauses") {
		t.Fatalf("shell after pause: %v", err)
	}
	if again, err := c.ResumeWorkspace(ctx, ws); err != nil || again.State != "running" || again.Restored {
		t.Fatalf("resume of a running workspace: %v %+v", err, again)
	}
	// The new supervisor removes the used-up state after it answered; a
	// pause at once after a resume waits for that and saves anew.
	pauseDir := filepath.Join(c.StateDir(), "workspaces", ws, "paused")
	for i := range 2 {
		if p, err := c.PauseWorkspace(ctx, ws); err != nil || p.State != "paused" {
			t.Fatalf("pause %d right after a resume: %v %+v", i, err, p)
		}
		if r, err := c.ResumeWorkspace(ctx, ws); err != nil || !r.Restored {
			t.Fatalf("resume %d: %v %+v", i, err, r)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(pauseDir); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the resumed workspace's saved state is still there 10 s after the resume")
		}
	}
	if got := mustExec(t, c, ws, "pgrep -x sleep").Stdout; got != bg {
		t.Fatalf("after two more pauses: sleep pid %q, want %q", got, bg)
	}
}

// Any call that needs the VM resumes a paused workspace; a saved state that
// cannot be restored falls back to a cold boot of the disk, which says so.
func TestPauseFallback(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	ws := createWorkspace(t, c, "debian:12").WorkspaceID
	bg := strings.TrimSpace(mustExec(t, c, ws, "echo kept > note; sleep 1000 >/dev/null 2>&1 & echo $!").Stdout)
	alive := "cat note; grep -q '^sleep' /proc/" + bg + "/cmdline 2>/dev/null && echo alive || echo gone"
	if _, err := c.PauseWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, c, ws, alive).Stdout; got != "kept\nalive\n" {
		t.Fatalf("exec on a paused workspace: %q", got)
	}
	if st, err := c.WorkspaceStatus(ctx, ws); err != nil || st.State != "running" {
		t.Fatalf("after the exec: %v %+v", err, st)
	}

	if _, err := c.PauseWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(state, "workspaces", ws, "paused", "state")
	f, err := os.OpenFile(statePath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", 1<<16)), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := c.ResumeWorkspace(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "running" || r.Restored || r.RestoreError == "" {
		t.Fatalf("resume of a corrupted state: %+v", r)
	}
	if got := mustExec(t, c, ws, alive).Stdout; got != "kept\ngone\n" {
		t.Fatalf("after the cold boot: %q", got)
	}
	if _, err := os.Stat(filepath.Dir(statePath)); !os.IsNotExist(err) {
		t.Fatalf("the used state is still there: %v", err)
	}
}

func hostGet(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s on the host: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s on the host: %s", url, resp.Status)
	}
}

func atoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// A TTL with action pause pauses the expired workspace instead of deleting
// it; the next call resumes it. update --ttl-seconds extends the TTL.
func TestTTLPause(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	ws := createWorkspaceWith(t, c, pyro.CreateWorkspaceRequest{Environment: "debian:12", TTLSeconds: 3600, TTLAction: "pause"}).WorkspaceID
	bg := strings.TrimSpace(mustExec(t, c, ws, "sleep 1000 >/dev/null 2>&1 & echo $!").Stdout)
	short := 1
	w, err := c.UpdateWorkspace(ctx, pyro.UpdateWorkspaceRequest{Workspace: ws, TTLSeconds: &short})
	if err != nil || w.TTLSeconds != 1 || w.TTLAction != "pause" || w.ExpiresAt == nil || time.Until(*w.ExpiresAt) > 2*time.Second {
		t.Fatalf("update: %v %+v", err, w)
	}
	time.Sleep(1500 * time.Millisecond)
	reaped, err := c.ReapExpired(ctx)
	if err != nil || len(reaped) != 0 {
		t.Fatalf("reap: %v %v", err, reaped)
	}
	if st, err := c.WorkspaceStatus(ctx, ws); err != nil || st.State != "paused" {
		t.Fatalf("expired with action pause: %v %+v", err, st)
	}
	long := 3600
	if _, err := c.UpdateWorkspace(ctx, pyro.UpdateWorkspaceRequest{Workspace: ws, TTLSeconds: &long}); err != nil {
		t.Fatal(err)
	}
	if got := mustExec(t, c, ws, "grep -c '^sleep' /proc/"+bg+"/cmdline").Stdout; got != "1\n" {
		t.Fatalf("the background job after the TTL pause: %q", got)
	}
}

// Memory a guest job used and freed goes back to the host (free page
// reporting), and a pause then saves only what the guest still uses.
func TestFreePageReport(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	ws := createWorkspace(t, c, "debian:12-build").WorkspaceID
	mustExec(t, c, ws, `python3 -c 'b = bytearray(400 << 20); b[::4096] = b"x" * (len(b) // 4096)'`)
	dir := filepath.Join(state, "workspaces", ws)
	deadline := time.Now().Add(2 * time.Minute)
	for rss := hostRSSMiB(dir); rss > 300; rss = hostRSSMiB(dir) {
		if time.Now().After(deadline) {
			t.Fatalf("the workspace still holds %d MiB on the host 2 min after a 400 MiB job ended", rss)
		}
		time.Sleep(time.Second)
	}
	p, err := c.PauseWorkspace(ctx, ws)
	if err != nil || p.StateBytes > 300<<20 {
		t.Fatalf("pause after the job: %v, %d bytes saved", err, p.StateBytes)
	}
}

// hostRSSMiB sums the resident memory of the processes whose command line
// names dir (a workspace's supervisor and QEMU).
func hostRSSMiB(dir string) int64 {
	var kb int64
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), dir) {
			continue
		}
		st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		for _, line := range strings.Split(string(st), "\n") {
			var n int64
			if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &n); err == nil {
				kb += n
			}
		}
	}
	return kb >> 10
}

// Paused workspaces survive a host reboot: a paused workspace is files in
// the state dir and nothing else. The reboot is simulated as far as a test
// can: every process of the workspace is killed with -9 (a paused one must
// have none); what pyro keeps in volatile places is gone (its runtime dir)
// or dead (a socket file nobody listens on); and records a crash can leave
// behind (supervisor.json, a VM's owner.json) name a pid that the new boot
// gave to an unrelated process with, as far as pid and start tick go, the
// same identity. A fresh client then finds it paused, resumes it with the
// same processes, PIDs, files and service, and leaves the stranger alone.
func TestPauseReboot(t *testing.T) {
	c, state := newWorkspaceClient(t)
	ctx := t.Context()
	ws := createWorkspaceWith(t, c, pyro.CreateWorkspaceRequest{Environment: "debian:12-build", NetworkPolicy: "egress+published-ports"}).WorkspaceID
	dir := filepath.Join(state, "workspaces", ws)
	bg := mustExec(t, c, ws, "echo kept > note; sleep 1000 >/dev/null 2>&1 & echo $!").Stdout
	web, err := c.StartService(ctx, pyro.StartServiceRequest{Workspace: ws, Name: "web", Command: "python3 -m http.server 8000",
		ReadyHTTP: "http://127.0.0.1:8000/", Publish: []pyro.PortMapping{{GuestPort: 8000}}})
	if err != nil || len(web.PublishedPorts) != 1 {
		t.Fatalf("web: %v %+v", err, web)
	}
	record, err := os.ReadFile(filepath.Join(dir, "supervisor.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PauseWorkspace(ctx, ws); err != nil {
		t.Fatal(err)
	}

	// The reboot.
	for _, pid := range processesNaming(dir) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("process %d of a paused workspace was running", pid)
	}
	stranger := exec.Command("sleep", "1000")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Process.Kill(); stranger.Wait() })
	lastBoot := vm.ProcStartOfBoot(stranger.Process.Pid, "the boot before")
	var info map[string]any
	if err := json.Unmarshal(record, &info); err != nil {
		t.Fatal(err)
	}
	info["pid"], info["pid_start"], info["vmm_pid"] = stranger.Process.Pid, lastBoot, stranger.Process.Pid
	writeJSON(t, filepath.Join(dir, "supervisor.json"), info)
	writeJSON(t, filepath.Join(dir, "run", info["vm_id"].(string), "owner.json"), map[string]any{"vm_id": info["vm_id"], "kind": "workspace",
		"owner_pid": stranger.Process.Pid, "owner_start": lastBoot, "vmm_pid": stranger.Process.Pid, "vmm_start": lastBoot})
	deadSocket(t, filepath.Join(dir, "supervisor.sock"))
	deadSocket(t, filepath.Join(dir, "run", info["vm_id"].(string), "agent.sock"))

	bin := testutil.Binaries(t)
	after, err := pyro.New(pyro.WithStateDir(state), pyro.WithAgentPath(bin+"/pyro-agent"), pyro.WithPyroBinary(bin+"/pyro"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := after.WorkspaceStatus(ctx, ws); err != nil || st.State != "paused" {
		t.Fatalf("after the reboot: %v %+v", err, st)
	}
	r, err := after.ResumeWorkspace(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "running" || !r.Restored {
		t.Fatalf("resume after the reboot: %+v", r)
	}
	if got := mustExec(t, after, ws, "cat note; pgrep -x sleep; curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/").Stdout; got != "kept\n"+bg+"200" {
		t.Fatalf("after the reboot: %q, want the note, the same sleep pid %q and 200", got, bg)
	}
	svc, err := after.ServiceStatus(ctx, pyro.ServiceRequest{Workspace: ws, Name: "web"})
	if err != nil || svc.State != pyro.ServiceReady || svc.Pid != web.Pid || len(svc.PublishedPorts) != 1 {
		t.Fatalf("web after the reboot: %v %+v, was %+v", err, svc, web)
	}
	hostGet(t, fmt.Sprintf("http://127.0.0.1:%d/", svc.PublishedPorts[0].HostPort))
	if !vm.Alive(stranger.Process.Pid, 0) {
		t.Fatal("pyro killed the process that inherited its old supervisor's pid")
	}
}

// processesNaming lists the processes whose command line names dir.
func processesNaming(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && strings.Contains(string(b), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// deadSocket leaves a unix socket file at path that nobody listens on, as
// a process killed by a reboot does.
func deadSocket(t *testing.T, path string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o700)
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(path), 0o700)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
