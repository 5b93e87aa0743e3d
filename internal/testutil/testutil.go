// Package testutil holds helpers shared by tests that boot real VMs.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequiresVM skips under -short: the test boots real microVMs.
func RequiresVM(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots real VMs; skipped with -short")
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries returns a directory holding freshly built pyro, pyro-full,
// pyro-supervisor and pyro-agent.
// PYRO_BIN_DIR (set by `make test`) is used as is when given.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if d := os.Getenv("PYRO_BIN_DIR"); d != "" {
			binDir = d
			return
		}
		root := RepoRoot()
		removeDeadBinaries()
		dir, err := os.MkdirTemp("", binDirPrefix())
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		// Same flags as the Makefile (no VCS stamp): identical agent sources give
		// identical bytes, which share built images.
		agent := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", filepath.Join(dir, "pyro-agent"), "./cmd/pyro-agent")
		agent.Dir, agent.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := agent.CombinedOutput(); err != nil {
			buildErr = &buildError{"pyro-agent", string(out), err}
			return
		}
		for _, name := range []string{"pyro", "pyro-full"} {
			cli := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
			cli.Dir = root
			if out, err := cli.CombinedOutput(); err != nil {
				buildErr = &buildError{name, string(out), err}
				return
			}
		}
		sup := exec.Command("go", "build", "-o", filepath.Join(dir, "pyro-supervisor"), "./cmd/pyro-supervisor")
		sup.Dir, sup.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := sup.CombinedOutput(); err != nil {
			buildErr = &buildError{"pyro-supervisor", string(out), err}
		}
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return binDir
}

// A test process's binaries live in pyro-test-bin-pid<PID>-*: nothing can
// remove them when the process ends (there is no hook after the last test
// of a package), so every build first removes those of dead processes.
func binDirPrefix() string { return fmt.Sprintf("pyro-test-bin-pid%d-", os.Getpid()) }

func removeDeadBinaries() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pyro-test-bin-*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), "pyro-test-bin-")
		pid, err := 0, error(nil)
		if p, ok := strings.CutPrefix(rest, "pid"); ok {
			p, _, _ = strings.Cut(p, "-")
			pid, err = strconv.Atoi(p)
		} else if fi, serr := os.Stat(d); serr != nil || time.Since(fi.ModTime()) < 6*time.Hour {
			continue // made before pids were in the name: only once surely unused
		}
		if err != nil || pid == os.Getpid() {
			continue
		}
		if pid > 0 && syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		os.RemoveAll(d)
	}
}

type buildError struct {
	what, out string
	err       error
}

func (e *buildError) Error() string { return e.what + ": " + e.err.Error() + "\n" + e.out }

// RepoRoot is the module root (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// QEMUProcessesUnder lists VM processes (QEMU, workspace supervisors) whose
// command line mentions dir.
func QEMUProcessesUnder(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if (strings.Contains(cmd, "qemu-system") || strings.Contains(cmd, "__supervise")) && strings.Contains(cmd, dir) {
			found = append(found, e.Name()+": "+cmd)
		}
	}
	return found
}

// WaitProcessesGone waits up to d for the VM processes under dir to exit
// (they die a moment after their owner) and returns those still running.
func WaitProcessesGone(dir string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		procs := QEMUProcessesUnder(dir)
		if len(procs) == 0 || time.Now().After(deadline) {
			return procs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// AssertNoLeaks fails if any VM process or VM state is left under stateDir.
func AssertNoLeaks(t testing.TB, stateDir string) {
	t.Helper()
	if procs := QEMUProcessesUnder(stateDir); len(procs) > 0 {
		t.Errorf("QEMU processes left behind: %v", procs)
	}
	vms, _ := os.ReadDir(filepath.Join(stateDir, "vms"))
	for _, v := range vms {
		t.Errorf("VM state left behind: %s", filepath.Join(stateDir, "vms", v.Name()))
	}
}
