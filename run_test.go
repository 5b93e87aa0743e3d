package pyro_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/testutil"
)

// newClient returns a client with a private state dir (so leak checks see
// only this test's VMs) and the shared environment cache.
func newClient(t *testing.T) (*pyro.Client, string) {
	t.Helper()
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	state := t.TempDir()
	c, err := pyro.New(pyro.WithStateDir(state), pyro.WithAgentPath(bin+"/pyro-agent"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	return c, state
}

func hostRelease() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

func TestRunGuestKernelAndExitCode(t *testing.T) {
	c, _ := newClient(t)
	res, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12",
		Command: "uname -r; git --version; echo oops >&2; exit 3"})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout = %q", res.Stdout)
	}
	if lines[0] == hostRelease() || !strings.HasPrefix(lines[0], "6.1.") {
		t.Errorf("guest kernel release %q: want the guest's 6.1.x, host is %q", lines[0], hostRelease())
	}
	if !strings.HasPrefix(lines[1], "git version 2.") {
		t.Errorf("git --version = %q", lines[1])
	}
	if res.Stderr != "oops\n" || res.ExitCode != 3 || res.TimedOut {
		t.Errorf("stderr %q exit %d timed_out %v", res.Stderr, res.ExitCode, res.TimedOut)
	}
	if !strings.HasPrefix(res.ExecutionMode, "guest_qemu_") || res.BootMs <= 0 || res.DurationMs < res.BootMs {
		t.Errorf("execution_mode %q boot_ms %d duration_ms %d", res.ExecutionMode, res.BootMs, res.DurationMs)
	}
}

func TestRunBuildEnvironmentHasCompiler(t *testing.T) {
	c, _ := newClient(t)
	res, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12-build",
		Command:        "cc --version | head -1 && printf 'int main(){return 42;}' > /tmp/m.c && cc -o /tmp/m /tmp/m.c && /tmp/m",
		TimeoutSeconds: 120})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 42 || !strings.HasPrefix(res.Stdout, "cc (Debian") {
		t.Fatalf("exit %d stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
}

func TestRunBaseEnvironment(t *testing.T) {
	c, _ := newClient(t)
	res, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12-base", Command: "cat /etc/debian_version; command -v git || echo no-git"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Stdout, "12.") || !strings.Contains(res.Stdout, "no-git") {
		t.Fatalf("stdout %q", res.Stdout)
	}
}

func TestRunBadInput(t *testing.T) {
	testutil.RequiresVM(t) // newClient's binaries; the checks themselves boot nothing
	c, state := newClient(t)
	cases := []struct {
		req   pyro.RunRequest
		code  string
		field string
	}{
		{pyro.RunRequest{Environment: "oci-layout:/nonexistent/nope", Command: "true"}, "environment_missing", "pyro env list"},
		{pyro.RunRequest{Environment: "debian:12", Command: "  "}, "invalid_argument", "command"},
		{pyro.RunRequest{Environment: "debian:12", Command: "true", VCPUCount: 99}, "invalid_argument", "vcpu_count"},
		{pyro.RunRequest{Environment: "debian:12", Command: "true", MemMiB: 16}, "invalid_argument", "mem_mib"},
		{pyro.RunRequest{Environment: "debian:12", Command: "true", TimeoutSeconds: -1}, "invalid_argument", "timeout_seconds"},
		{pyro.RunRequest{Environment: "", Command: "true"}, "invalid_argument", "environment"},
	}
	for _, tc := range cases {
		_, err := c.Run(t.Context(), tc.req)
		if err == nil {
			t.Errorf("%+v: no error", tc.req)
			continue
		}
		if got := pyro.ErrorCode(err); got != tc.code || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: code %q err %q; want code %q mentioning %q", tc.req, got, err, tc.code, tc.field)
		}
	}
	testutil.AssertNoLeaks(t, state)
}

func TestRunOutputIsBounded(t *testing.T) {
	c, _ := newClient(t)
	// 50 MiB on stdout, a little on stderr.
	res, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12",
		Command: "head -c 52428800 /dev/zero | tr '\\0' x; echo done >&2", TimeoutSeconds: 120})
	if err != nil {
		t.Fatal(err)
	}
	// The head and the tail are kept, around a marker of what was left out.
	if n := len(res.Stdout); n > pyro.DefaultMaxOutputBytes || n < pyro.DefaultMaxOutputBytes-64 || !res.StdoutTruncated ||
		!strings.Contains(res.Stdout, "bytes omitted ...]") || !strings.HasSuffix(res.Stdout, "xxxx") {
		t.Errorf("stdout %d bytes truncated=%v; want head+tail of at most %d and true", n, res.StdoutTruncated, pyro.DefaultMaxOutputBytes)
	}
	// A long build log keeps its end, where the errors are.
	log, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12", Command: "seq 1 200000; echo 'error: the last line' >&1", MaxOutputBytes: 8192})
	if err != nil || !strings.HasPrefix(log.Stdout, "1\n2\n3\n") || !strings.HasSuffix(log.Stdout, "200000\nerror: the last line\n") || !log.StdoutTruncated {
		t.Errorf("head and tail: %v %q", err, log.Stdout)
	}
	if res.Stderr != "done\n" || res.StderrTruncated || res.ExitCode != 0 {
		t.Errorf("stderr %q truncated=%v exit=%d", res.Stderr, res.StderrTruncated, res.ExitCode)
	}
	small, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12", Command: "seq 1 1000", MaxOutputBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	if small.Stdout != "1\n2\n3\n4\n5\n" || !small.StdoutTruncated {
		t.Errorf("capped stdout %q truncated=%v", small.Stdout, small.StdoutTruncated)
	}
}

func TestRunTimeoutKillsCommandAndVM(t *testing.T) {
	c, state := newClient(t)
	res, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12",
		Command: "echo started; sleep 1000 & sleep 1000", TimeoutSeconds: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.ExitCode != pyro.TimeoutExitCode || res.Stdout != "started\n" {
		t.Fatalf("timed_out %v exit %d stdout %q", res.TimedOut, res.ExitCode, res.Stdout)
	}
	// The VM is gone by the time Run returns; Run returns within 2 s of the timeout.
	if over := time.Duration(res.DurationMs-res.BootMs)*time.Millisecond - 3*time.Second; over > 2*time.Second {
		t.Errorf("Run returned %v after the timeout", over)
	}
	testutil.AssertNoLeaks(t, state)
}

func TestRunCanceledDestroysVM(t *testing.T) {
	c, state := newClient(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once the VM is up and the command runs.
		for ctx.Err() == nil && len(testutil.QEMUProcessesUnder(state)) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(2500 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	_, err := c.Run(ctx, pyro.RunRequest{Environment: "debian:12", Command: "sleep 1000"})
	if !errors.Is(err, pyro.ErrCanceled) && !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("cancel took %v", d)
	}
	testutil.AssertNoLeaks(t, state)
}

// stopOnce freezes the run's VMM (SIGSTOP) when the command first prints:
// a guest that never answers again.
type stopOnce struct {
	state  string
	frozen []int
}

func (s *stopOnce) Write(p []byte) (int, error) {
	if s.frozen == nil {
		s.frozen = []int{}
		for _, p := range testutil.QEMUProcessesUnder(s.state) {
			pid, _, _ := strings.Cut(p, ":")
			if n, err := strconv.Atoi(pid); err == nil && unix.Kill(n, unix.SIGSTOP) == nil {
				s.frozen = append(s.frozen, n)
			}
		}
	}
	return len(p), nil
}

// A guest that stops answering is given up at the command's timeout plus
// agentclient.Grace (the one grace of every exec path): the run reports a
// timeout and its VM is destroyed.
func TestRunFrozenGuest(t *testing.T) {
	c, state := newClient(t)
	stop := &stopOnce{state: state}
	start := time.Now()
	res, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12", Command: "echo started; sleep 1000",
		TimeoutSeconds: 2, Stdout: stop})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range stop.frozen {
			_ = unix.Kill(pid, unix.SIGCONT)
		}
	})
	if len(stop.frozen) != 1 {
		t.Fatalf("froze %v, want the run's one VMM", stop.frozen)
	}
	if !res.TimedOut || res.ExitCode != pyro.TimeoutExitCode || !strings.Contains(res.Stderr, "the guest did not answer") {
		t.Fatalf("timed_out %v exit %d stderr %q", res.TimedOut, res.ExitCode, res.Stderr)
	}
	if d := time.Since(start); d < 2*time.Second+agentclient.Grace {
		t.Errorf("given up after %v, before the timeout plus the grace", d)
	}
	testutil.AssertNoLeaks(t, state)
}
