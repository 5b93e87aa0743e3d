//go:build linux

package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// statPolicy reads the scheduling policy (field 41) from a /proc stat file.
func statPolicy(t *testing.T, stat string) int {
	t.Helper()
	i := strings.LastIndexByte(stat, ')')
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if i < 0 || len(f) < 39 {
		t.Fatalf("short stat line %q", stat)
	}
	p, err := strconv.Atoi(f[38])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// threadPolicies maps each thread of this process to its policy.
func threadPolicies(t *testing.T) map[string]int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue // the thread ended
		}
		out[filepath.Base(d)] = statPolicy(t, string(b))
	}
	return out
}

// The agent's threads run batch; what it starts runs SCHED_OTHER, as a
// command always did, and the forking thread is batch again afterwards.
func TestSchedBatch(t *testing.T) {
	if err := batchThreads(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		batched.Store(false)
		if _, err := setThreadsPolicy(schedOther); err != nil {
			t.Error(err)
		}
	})
	for tid, p := range threadPolicies(t) {
		if p != schedBatch {
			t.Errorf("thread %s has policy %d before the commands, want %d", tid, p, schedBatch)
		}
	}
	sess := startAgent(t, Options{})
	for range 5 {
		r, res := run(t, sess, execReq("/bin/cat", "/proc/self/stat"))
		if res.ExitCode != 0 {
			t.Fatalf("cat: %+v %s", res, r.stderr)
		}
		if p := statPolicy(t, string(r.stdout)); p != schedOther {
			t.Errorf("the command runs with policy %d, want SCHED_OTHER", p)
		}
	}
	for tid, p := range threadPolicies(t) {
		if p != schedBatch {
			t.Errorf("thread %s has policy %d after the commands, want %d", tid, p, schedBatch)
		}
	}
}
