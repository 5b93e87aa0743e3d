package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestCLIEnvListAndInspect(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "env", "list", "--json")
	var list struct {
		Environments []struct {
			Name      string   `json:"name"`
			Installed bool     `json:"installed"`
			Packages  []string `json:"packages"`
		} `json:"environments"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("env list --json: %v %+v", err, r)
	}
	names := map[string]bool{}
	for _, e := range list.Environments {
		names[e.Name] = e.Installed
	}
	for _, n := range []string{"debian:12", "debian:12-base", "debian:12-build"} {
		if _, ok := names[n]; !ok {
			t.Errorf("catalog lacks %s: %+v", n, list)
		}
	}
	if !names["debian:12"] {
		t.Fatal("debian:12 not installed (make test pulls it first)")
	}
	r = runPyro(t, s, "env", "inspect", "debian:12", "--json")
	var m struct {
		Name   string `json:"name"`
		Kernel struct {
			SHA256  string `json:"sha256"`
			Release string `json:"release"`
		} `json:"kernel"`
		Rootfs struct {
			SHA256 string `json:"sha256"`
			Size   int64  `json:"size"`
		} `json:"rootfs"`
		Packages []string `json:"packages"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || r.code != 0 {
		t.Fatalf("env inspect --json: %v %+v", err, r)
	}
	hasGit := false
	for _, p := range m.Packages {
		hasGit = hasGit || strings.HasPrefix(p, "git=")
	}
	if len(m.Kernel.SHA256) != 64 || len(m.Rootfs.SHA256) != 64 || m.Rootfs.Size <= 0 || !hasGit || !strings.HasPrefix(m.Kernel.Release, "6.1.") {
		t.Errorf("manifest %+v", m)
	}
	r = runPyro(t, s, "env", "inspect", "nope:1")
	if r.code != 125 || !strings.Contains(r.stderr, "environment_missing") || !strings.Contains(r.stderr, "pyro env list") {
		t.Errorf("inspect unknown: %+v", r)
	}
	// prune on an empty cache removes nothing and says so.
	cmd := pyroCmd(t, s, "env", "prune", "--json")
	cmd.Env = append(cmd.Env, "PYRO_CACHE_DIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"bytes_freed": 0`) {
		t.Errorf("prune on empty cache: %v %s", err, out)
	}
}

func TestCLIDoctor(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "doctor", "--json")
	var d struct {
		OK          bool     `json:"ok"`
		Problems    []string `json:"problems"`
		Accelerator struct {
			Mode   string `json:"mode"`
			Reason string `json:"reason"`
		} `json:"accelerator"`
		Probe struct {
			Ran           bool   `json:"ran"`
			OK            bool   `json:"ok"`
			GuestKernel   string `json:"guest_kernel"`
			ExecutionMode string `json:"execution_mode"`
		} `json:"probe"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, r.stdout)
	}
	if (d.Accelerator.Mode != "kvm" && d.Accelerator.Mode != "tcg") || d.Accelerator.Reason == "" {
		t.Errorf("accelerator %+v", d.Accelerator)
	}
	if !d.Probe.Ran || !d.Probe.OK || !strings.HasPrefix(d.Probe.GuestKernel, "6.1.") || d.Probe.ExecutionMode != "guest_qemu_"+d.Accelerator.Mode {
		t.Errorf("probe %+v", d.Probe)
	}
	if d.OK != (r.code == 0) || d.OK != (len(d.Problems) == 0) {
		t.Errorf("ok=%v exit=%d problems=%v", d.OK, r.code, d.Problems)
	}
}

// 50 MiB of output reaches the host as at most the cap, and the pyro process
// stays small while it streams (its own peak RSS, read from /proc: wait4's
// rusage would include QEMU's).
func TestCLIHugeOutputKeepsHostMemoryBounded(t *testing.T) {
	s := stateDir(t)
	cmd := pyroCmd(t, s, "run", "debian:12", "--json", "--timeout-seconds", "120", "--", "head -c 52428800 /dev/urandom")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peakKB int64
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			waiting = false
		case <-time.After(20 * time.Millisecond):
			b, _ := os.ReadFile(status)
			for _, line := range strings.Split(string(b), "\n") {
				var kb int64
				if n, _ := fmt.Sscanf(line, "VmHWM: %d kB", &kb); n == 1 && kb > peakKB {
					peakKB = kb
				}
			}
		}
	}
	var res struct {
		Stdout          string `json:"stdout"`
		StdoutTruncated bool   `json:"stdout_truncated"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if !res.StdoutTruncated || len(res.Stdout) == 0 || len(res.Stdout) > 4<<20 {
		t.Errorf("truncated=%v len=%d", res.StdoutTruncated, len(res.Stdout))
	}
	t.Logf("pyro peak RSS %d KiB", peakKB)
	if peakKB == 0 || peakKB > 60<<10 {
		t.Errorf("pyro peaked at %d KiB RSS streaming 50 MiB of output", peakKB)
	}
}
