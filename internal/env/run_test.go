package env

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestRunFailureCarriesTailAndKeepsLog(t *testing.T) {
	dir, keep := t.TempDir(), t.TempDir()
	r, err := newRunner("test build", dir, keep, toolEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	var lines []string
	err = r.run(context.Background(), dir, func(l string) { lines = append(lines, l) },
		"sh", "-c", `for i in $(seq 1 50); do echo "line $i"; done; echo oops >&2; exit 3`)
	if errdefs.CodeOf(err) != errdefs.CodeEnvironmentBuild {
		t.Fatalf("code %q: %v", errdefs.CodeOf(err), err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "exit status 3") || !strings.Contains(msg, "oops") ||
		!strings.Contains(msg, "line 50") || !strings.Contains(msg, "line 32") || strings.Contains(msg, "line 31\n") {
		t.Fatalf("message:\n%s", msg)
	}
	if len(lines) != 51 {
		t.Fatalf("onLine saw %d lines", len(lines))
	}
	kept, _ := filepath.Glob(filepath.Join(keep, "test-build-*.log"))
	if len(kept) != 1 || !strings.Contains(msg, kept[0]) {
		t.Fatalf("kept logs %v, message %s", kept, msg)
	}
	data, _ := os.ReadFile(kept[0])
	if !strings.Contains(string(data), "line 1\n") || !strings.Contains(string(data), "$ (cd ") {
		t.Fatalf("log content:\n%s", data)
	}
}

func TestRunCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	r, err := newRunner("test build", dir, "", toolEnv())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	pidFile := filepath.Join(dir, "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if _, err := os.Stat(pidFile); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	// The grandchild keeps stdout open: only killing the group ends it.
	err = r.run(ctx, dir, nil, "sh", "-c", `sleep 60 & echo $! > `+pidFile+`; wait`)
	if !errdefs.IsCanceled(err) || errdefs.CodeOf(err) != errdefs.CodeCanceled {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	data, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	time.Sleep(100 * time.Millisecond)
	if pid > 0 && syscall.Kill(pid, 0) == nil {
		// May be a zombie not yet reaped by init; check its state.
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if !strings.Contains(string(stat), ") Z ") {
			t.Fatalf("grandchild %d survived the cancel: %s", pid, stat)
		}
	}
}

func TestRunTimeout(t *testing.T) {
	dir := t.TempDir()
	r, _ := newRunner("test build", dir, "", toolEnv())
	defer r.close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := r.run(ctx, dir, nil, "sleep", "30")
	if errdefs.CodeOf(err) != errdefs.CodeTimeout {
		t.Fatalf("err %v", err)
	}
}
