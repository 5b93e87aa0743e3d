//go:build faults

package faults_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
)

// op is one workspace call a kill -9 may hit.
type op struct {
	name  string
	bound time.Duration
	delay time.Duration // from the call's start to the kill
	// spread adds a random part up to it to delay, so that runs of the
	// row land in different phases of a short call (every phase must
	// pass the same checks).
	spread time.Duration
	prep   func(s *suite, w *ws) error
	// call runs the op through the SDK; cli is the same op as CLI args.
	call func(ctx context.Context, s *suite, w *ws) error
	cli  func(s *suite, w *ws) []string
	// targets are the files the op writes under /workspace: after a fault
	// all of them are as before the call or all as after it, never partial
	// and never some old and some new.
	targets func(w *ws) []target
	// after checks the op's own results; ok: the call answered success.
	after func(c *check, s *suite, w *ws, ok, unknown bool)
}

// target is one file a call writes: the sha256 of its content before the
// call and after it ("" when absent: a new file before, a deleted one
// after; the ledger then checks that it stays absent).
type target struct{ path, old, new string }

var opSeq int

// writeOld writes content at path before the call (a completed write: it
// joins the ledger) and returns its sha256.
func writeOld(s *suite, w *ws, path string, content []byte) (string, error) {
	if _, err := s.c.WriteWorkspaceFile(context.Background(), pyro.WriteFileRequest{Workspace: w.id, Path: path, Content: content}); err != nil {
		return "", fmt.Errorf("writing %s before the call: %w", path, err)
	}
	w.want[path] = sum(content)
	return sum(content), nil
}

func ops(t *testing.T) []op {
	n := func() int { opSeq++; return opSeq }
	var k int
	var content []byte
	var hostFile, syncDir, snap, exp string
	var targets []target
	current := func(*ws) []target { return targets }
	return []op{
		{name: "exec", bound: 30*time.Second + execGrace, delay: 700 * time.Millisecond,
			prep: func(*suite, *ws) error {
				k = n()
				content = []byte(fmt.Sprintf("exec %d\n", k))
				targets = []target{{fmt.Sprintf("exec-%d", k), "", sum(content)}}
				return nil
			},
			call: func(ctx context.Context, s *suite, w *ws) error {
				r, _, err := s.exec(ctx, w.id, fmt.Sprintf("sleep 1; printf 'exec %d\\n' > exec-%d", k, k), 30)
				if err == nil && r.ExitCode != 0 {
					return fmt.Errorf("exit %d", r.ExitCode)
				}
				return err
			},
			cli: func(_ *suite, w *ws) []string {
				return []string{"workspace", "exec", w.id, "--timeout-seconds", "30", "--", fmt.Sprintf("sleep 1; printf 'exec %d\\n' > exec-%d", k, k)}
			},
			targets: current},
		{name: "file write", bound: transferBound, delay: 300 * time.Millisecond,
			// It replaces a file: old or new content after a fault.
			prep: func(s *suite, w *ws) error {
				k, content = n(), randomBytes(16<<20)
				old, err := writeOld(s, w, fmt.Sprintf("fw-%d", k), []byte(fmt.Sprintf("old %d\n", k)))
				targets = []target{{fmt.Sprintf("fw-%d", k), old, sum(content)}}
				hostFile = filepath.Join(t.TempDir(), "content")
				return cmp.Or(err, os.WriteFile(hostFile, content, 0o644))
			},
			call: func(ctx context.Context, s *suite, w *ws) error {
				_, err := s.c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: w.id, Path: fmt.Sprintf("fw-%d", k), Content: content})
				return err
			},
			cli: func(_ *suite, w *ws) []string {
				return []string{"workspace", "file", "write", w.id, fmt.Sprintf("fw-%d", k), "--text-file", hostFile}
			},
			targets: current},
		{name: "patch", bound: transferBound, delay: 50 * time.Millisecond, spread: 250 * time.Millisecond,
			// It changes three files, deletes one and adds a large one: all
			// five old (the new one absent, the deleted one there) or all
			// five new after a fault.
			prep: func(s *suite, w *ws) error {
				k = n()
				var b strings.Builder
				for i := range 20000 {
					fmt.Fprintf(&b, "line %d of patch %d\n", i, k)
				}
				content = []byte(b.String())
				targets = []target{{fmt.Sprintf("patch-%d", k), "", sum(content)}}
				var p strings.Builder
				for _, name := range []string{"a", "b", "c"} {
					path := fmt.Sprintf("patch-%d-%s", k, name)
					old, err := writeOld(s, w, path, []byte(fmt.Sprintf("old %s %d\n", name, k)))
					if err != nil {
						return err
					}
					targets = append(targets, target{path, old, sum([]byte(fmt.Sprintf("new %s %d\n", name, k)))})
					fmt.Fprintf(&p, "--- a/%s\n+++ b/%s\n@@ -1 +1 @@\n-old %s %d\n+new %s %d\n", path, path, name, k, name, k)
				}
				gone := fmt.Sprintf("patch-%d-gone", k)
				old, err := writeOld(s, w, gone, []byte(fmt.Sprintf("old gone %d\n", k)))
				if err != nil {
					return err
				}
				targets = append(targets, target{gone, old, ""})
				fmt.Fprintf(&p, "--- a/%s\n+++ /dev/null\n@@ -1 +0,0 @@\n-old gone %d\n", gone, k)
				fmt.Fprintf(&p, "--- /dev/null\n+++ b/patch-%d\n@@ -0,0 +1,20000 @@\n", k)
				for _, l := range strings.SplitAfter(b.String(), "\n") {
					if l != "" {
						p.WriteString("+" + l)
					}
				}
				hostFile = filepath.Join(t.TempDir(), "p.diff")
				return os.WriteFile(hostFile, []byte(p.String()), 0o644)
			},
			call: func(ctx context.Context, s *suite, w *ws) error {
				p, _ := os.ReadFile(hostFile)
				_, err := s.c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: w.id, Patch: string(p)})
				return err
			},
			cli: func(_ *suite, w *ws) []string {
				return []string{"workspace", "patch", "apply", w.id, "--patch-file", hostFile}
			},
			targets: current},
		{name: "sync push", bound: transferBound, delay: 300 * time.Millisecond,
			// A tree: a large new file, a replaced one and a new one in a
			// new directory, all old or all new after a fault.
			prep: func(s *suite, w *ws) error {
				k, content = n(), randomBytes(16<<20)
				syncDir = t.TempDir()
				one, two := []byte(fmt.Sprintf("one %d\n", k)), []byte(fmt.Sprintf("two %d\n", k))
				old, err := writeOld(s, w, fmt.Sprintf("sync-%d/a/one", k), []byte("old one\n"))
				targets = []target{
					{fmt.Sprintf("sync-%d/big", k), "", sum(content)},
					{fmt.Sprintf("sync-%d/a/one", k), old, sum(one)},
					{fmt.Sprintf("sync-%d/b/c/two", k), "", sum(two)},
				}
				return cmp.Or(err,
					os.WriteFile(filepath.Join(syncDir, "big"), content, 0o644),
					os.MkdirAll(filepath.Join(syncDir, "a"), 0o755),
					os.MkdirAll(filepath.Join(syncDir, "b", "c"), 0o755),
					os.WriteFile(filepath.Join(syncDir, "a", "one"), one, 0o644),
					os.WriteFile(filepath.Join(syncDir, "b", "c", "two"), two, 0o644))
			},
			call: func(ctx context.Context, s *suite, w *ws) error {
				_, err := s.c.SyncPush(ctx, pyro.SyncPushRequest{Workspace: w.id, Source: syncDir, Dest: fmt.Sprintf("sync-%d", k)})
				return err
			},
			cli: func(_ *suite, w *ws) []string {
				return []string{"workspace", "sync", "push", w.id, syncDir, "--dest", fmt.Sprintf("sync-%d", k)}
			},
			targets: current},
		{name: "snapshot", bound: transferBound, delay: 300 * time.Millisecond,
			prep: func(*suite, *ws) error { snap = fmt.Sprintf("snap-%d", n()); return nil },
			call: func(ctx context.Context, s *suite, w *ws) error {
				_, err := s.c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: w.id, Name: snap})
				return err
			},
			cli: func(_ *suite, w *ws) []string { return []string{"workspace", "snapshot", "create", w.id, snap} },
			after: func(c *check, s *suite, w *ws, ok, unknown bool) {
				list, err := s.c.ListSnapshots(context.Background(), w.id)
				if err != nil {
					c.fail("snapshot list: %v", err)
					return
				}
				listed := false
				for _, sn := range list {
					listed = listed || sn.Name == snap
				}
				_, statErr := os.Stat(filepath.Join(s.state, "workspaces", w.id, "snapshots", snap+".tar"))
				switch {
				case listed != (statErr == nil):
					c.fail("snapshot listed %v but its file: %v", listed, statErr)
				case ok && !listed:
					c.fail("answered snapshot is not listed")
				case !ok && !unknown && listed:
					c.fail("failed snapshot is listed")
				}
				c.note("snapshot kept: %v", listed)
			}},
		{name: "export", bound: transferBound, delay: 500 * time.Millisecond,
			prep: func(s *suite, _ *ws) error { exp = filepath.Join(s.out, fmt.Sprintf("exp-%d", n())); return nil },
			call: func(ctx context.Context, s *suite, w *ws) error {
				_, err := s.c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: w.id, Path: "/workspace", Output: exp})
				return err
			},
			cli: func(_ *suite, w *ws) []string {
				return []string{"workspace", "export", w.id, "/workspace", "--output", exp}
			},
			after: func(c *check, s *suite, w *ws, ok, unknown bool) {
				b, err := os.ReadFile(filepath.Join(exp, "hello.txt"))
				switch {
				case ok && (err != nil || string(b) != "hello\n"):
					c.fail("answered export is incomplete: %v", err)
				case !ok && !unknown && err == nil:
					c.fail("failed export left its output")
				case err != nil:
					if _, serr := os.Lstat(exp); serr == nil {
						c.fail("an export output without its files")
					}
				}
				c.note("export output: %v", err == nil)
				_ = os.RemoveAll(exp)
			}},
		{name: "stop", bound: 90 * time.Second, delay: 50 * time.Millisecond,
			call: func(ctx context.Context, s *suite, w *ws) error {
				_, err := s.c.StopWorkspace(ctx, w.id)
				return err
			},
			cli: func(_ *suite, w *ws) []string { return []string{"workspace", "stop", w.id} }},
		{name: "start", bound: startBound, delay: 1500 * time.Millisecond,
			prep: func(s *suite, w *ws) error {
				_, err := s.c.StopWorkspace(context.Background(), w.id)
				return err
			},
			call: func(ctx context.Context, s *suite, w *ws) error {
				_, err := s.c.StartWorkspace(ctx, w.id)
				return err
			},
			cli: func(_ *suite, w *ws) []string { return []string{"workspace", "start", w.id} }},
		{name: "reset", bound: startBound, delay: 800 * time.Millisecond,
			call: func(ctx context.Context, s *suite, w *ws) error {
				_, err := s.c.ResetWorkspace(ctx, pyro.ResetWorkspaceRequest{Workspace: w.id})
				return err
			},
			cli: func(_ *suite, w *ws) []string { return []string{"workspace", "reset", w.id} },
			after: func(c *check, s *suite, w *ws, ok, unknown bool) {
				if ok {
					w.want = clone(w.base)
					c.note("reset done")
				}
			}},
	}
}

// killer kills one process of a workspace mid-call (supervisor, QEMU) or
// the calling CLI itself.
type killer struct {
	name string
	what string // command line mark of the process; "" for the CLI
}

var killers = []killer{{"supervisor", "__supervise"}, {"QEMU", "qemu-system"}, {"CLI", ""}}

// TestFaultsKill: kill -9 of the supervisor, QEMU or the calling CLI during
// each workspace call.
func TestFaultsKill(t *testing.T) {
	s := newSuite(t)
	// 32 MB of content, so that snapshot, export and reset take long
	// enough for a kill to land mid-call.
	w, err := s.create(context.Background(), seedDir(t, 32<<20))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range killers {
		for _, o := range ops(t) {
			expected := "call answers in bound (success or typed error); workspace running or stopped with every completed write; no leak"
			if k.what == "" {
				expected = "next call answers; workspace running or stopped with every completed write; target complete or absent; no leak"
			}
			runRow(t, "kill -9 "+k.name+" during "+o.name, expected, func(t *testing.T, c *check) {
				s.killDuring(c, w, k, o)
			})
		}
		runRow(t, "kill -9 "+k.name+" during create (50 MB seed)", "no workspace or a complete one; no leak", func(t *testing.T, c *check) {
			s.killCreate(t, c, k)
		})
		runRow(t, "kill -9 "+k.name+" during delete", "deleted, or a repeated delete works; nothing left", func(t *testing.T, c *check) {
			s.killDelete(t, c, k)
		})
	}
	runRow(t, "kill -9 QEMU between a transfer's renames", "at start the committed transfer is finished, an uncommitted one dropped; no leak", func(t *testing.T, c *check) {
		s.killCommitted(c, w)
	})
}

// killCommitted: the guest agent's recovery at boot. Transfers' staging is
// laid out by hand as a kill -9 between two renames leaves it: one past its
// commit point with the first of two entries placed; one past its commit
// point with the first of two removals done (a patch that deletes two
// files and adds one); one not committed, which would have placed a file
// and removed one. Then QEMU is killed: after start the first two are
// wholly there, the third absent, and the staging directory is empty.
func (s *suite) killCommitted(c *check, w *ws) {
	opSeq++
	k := opSeq
	script := fmt.Sprintf(`set -e
S=%[1]s; C=$S/commit-fault%[2]d; P=$S/put-fault%[2]d
mkdir -p $C/2/x $P
printf 'old a\n' > rf%[2]d-a
printf 'new a\n' > $C/1
ia=$(stat -c %%i $C/1)
mv rf%[2]d-a $C/old; mv $C/1 rf%[2]d-a; mv $C/old $C/1
printf 'new b\n' > $C/2/x/b
ib=$(stat -c %%i $C/2)
printf '{"places":[{"staged":"1","path":"rf%[2]d-a","ino":%%s},{"staged":"2","path":"rf%[2]d-tree","ino":%%s,"dir":true}]}' $ia $ib > $C/plan.json
R=$S/commit-fault%[2]dr; mkdir -p $R
printf 'gone\n' > rf%[2]d-gone1; printf 'gone\n' > rf%[2]d-gone2; printf 'kept\n' > rf%[2]d-kept
mv rf%[2]d-gone1 $R/1
printf 'new r\n' > $R/3
ir=$(stat -c %%i $R/3)
printf '{"removes":[{"staged":"1","path":"rf%[2]d-gone1"},{"staged":"2","path":"rf%[2]d-gone2"}],"places":[{"staged":"3","path":"rf%[2]d-r","ino":%%s}]}' $ir > $R/plan.json
printf 'never\n' > $P/1
printf '{"removes":[{"staged":"2","path":"rf%[2]d-kept"}],"places":[{"staged":"1","path":"rf%[2]d-never","ino":1}]}' > $P/plan.json
sync`, stagingRoot, k)
	if r, _, err := s.exec(context.Background(), w.id, script, 60); err != nil || r.ExitCode != 0 {
		c.fail("laying out the staging: %v %+v", err, r)
		return
	}
	pid := s.pidOf(w.id, "qemu-system", nil)
	if pid <= 0 {
		c.fail("no QEMU for %s", w.id)
		return
	}
	kill9(pid)
	if state := s.settle(c, w.id); state != "running" {
		if _, err := s.c.StartWorkspace(context.Background(), w.id); err != nil {
			c.fail("start: %v", err)
			return
		}
	}
	r, _, err := s.exec(context.Background(), w.id, fmt.Sprintf(
		"cat rf%[1]d-a rf%[1]d-tree/x/b rf%[1]d-r rf%[1]d-kept; ls rf%[1]d-never rf%[1]d-gone1 rf%[1]d-gone2 2>&1 | grep -c 'No such'; ls -A %[2]s | wc -l", k, stagingRoot), 60)
	if err != nil {
		c.fail("checking: %v", err)
		return
	}
	if want := "new a\nnew b\nnew r\nkept\n3\n0\n"; r.Stdout != want {
		c.fail("after the restart: %q, want %q (rf-a, rf-tree/x/b, rf-r, rf-kept; rf-never, rf-gone1, rf-gone2 absent; staging entries)", r.Stdout, want)
		return
	}
	c.note("committed transfers (places, removals) finished at boot, uncommitted one dropped, staging empty")
	w.want[fmt.Sprintf("rf%d-a", k)] = sum([]byte("new a\n"))
	w.want[fmt.Sprintf("rf%d-tree/x/b", k)] = sum([]byte("new b\n"))
	w.want[fmt.Sprintf("rf%d-r", k)] = sum([]byte("new r\n"))
	w.want[fmt.Sprintf("rf%d-kept", k)] = sum([]byte("kept\n"))
	w.want[fmt.Sprintf("rf%d-gone1", k)], w.want[fmt.Sprintf("rf%d-gone2", k)] = "", ""
	s.usable(c, w)
	s.leaks(c)
}

// killDuring runs o on w and kills k after o.delay (plus up to o.spread).
func (s *suite) killDuring(c *check, w *ws, k killer, o op) {
	// Writes answered just before the fault must survive it.
	opSeq++
	pre := fmt.Sprintf("pre-%d", opSeq)
	if _, err := s.c.WriteWorkspaceFile(context.Background(), pyro.WriteFileRequest{Workspace: w.id, Path: pre, Content: []byte(pre)}); err != nil {
		c.fail("write before the fault: %v", err)
		return
	}
	if r, _, err := s.exec(context.Background(), w.id, "printf %s "+pre+" > "+pre+".exec", 30); err != nil || r.ExitCode != 0 {
		c.fail("exec before the fault: %v %+v", err, r)
		return
	}
	w.want[pre], w.want[pre+".exec"] = sum([]byte(pre)), sum([]byte(pre))
	if o.prep != nil {
		if err := o.prep(s, w); err != nil {
			c.fail("prep: %v", err)
			return
		}
	}
	var (
		err     error
		dur     time.Duration
		killed  bool
		unknown bool
	)
	delay := o.delay
	if o.spread > 0 {
		delay += rand.N(o.spread)
		c.note("kill after %d ms", delay.Milliseconds())
	}
	if k.what == "" {
		err, dur, killed = s.cliKilled(o.cli(s, w), delay)
		unknown = killed
		if killed {
			// The next call answers: it also reaps what the dead CLI left.
			start := time.Now()
			out, cerr := s.cli("workspace", "status", w.id, "--json").CombinedOutput()
			within(c, "next CLI call", time.Since(start), 60*time.Second)
			if cerr != nil {
				c.fail("next CLI call: %v %s", cerr, out)
			}
		}
	} else {
		err, dur, killed = s.sdkKilled(w.id, k.what, o.call, delay)
	}
	within(c, o.name, dur, o.bound)
	switch {
	case killed && unknown:
		c.note("CLI killed after %.1fs", dur.Seconds())
	case killed:
		c.note("%s killed mid-call", k.name)
	default:
		c.note("%s was not killed: the call ended first", k.name)
	}
	if !unknown {
		typed(c, o.name, err)
		if err == nil {
			c.note("%s answered success", o.name)
		}
	}
	ok := err == nil && !unknown
	if o.after != nil {
		o.after(c, s, w, ok, unknown)
	}
	if o.targets != nil {
		s.targetCheck(c, w, o, ok, unknown)
	}
	s.usable(c, w)
	s.leaks(c)
}

// targetCheck: an answered call's files must all be new; any other call's
// files are all old or all new (and join the ledger when new). After a
// kill of the CLI the call may still run (the supervisor already had the
// whole archive): the check waits for the agent's puts to drain first.
func (s *suite) targetCheck(c *check, w *ws, o op, ok, unknown bool) {
	targets := o.targets(w)
	if ok {
		for _, t := range targets {
			w.want[t.path] = t.new
		}
		return // usable checks them
	}
	if s.settle(c, w.id) != "running" {
		if _, err := s.c.StartWorkspace(context.Background(), w.id); err != nil {
			c.fail("start: %v", err)
			return
		}
	}
	olds, news, err := s.targetState(c, w, targets, unknown)
	for deadline := time.Now().Add(30 * time.Second); err == nil && unknown && olds > 0 && news > 0 && time.Now().Before(deadline); {
		// Still being placed by a put the dead CLI left running? Look
		// again once it is through.
		time.Sleep(time.Second)
		olds, news, err = s.targetState(c, w, targets, unknown)
		c.note("looked again")
	}
	switch {
	case err != nil:
		c.fail("checking the targets: %v", err)
	case olds > 0 && news > 0:
		c.fail("the transfer is half applied: %d of %d files new", news, len(targets))
	case news == len(targets):
		c.note("transfer complete (%d files)", news)
		for _, t := range targets {
			w.want[t.path] = t.new
		}
	case olds == len(targets):
		c.note("transfer absent (%d files as before)", olds)
	}
}

// targetState counts the targets as before and as after the call; one that
// is neither fails the row. fence first sends a put of its own, which the
// agent runs after any put in progress.
func (s *suite) targetState(c *check, w *ws, targets []target, fence bool) (olds, news int, err error) {
	if fence {
		if _, err := s.c.WriteWorkspaceFile(context.Background(), pyro.WriteFileRequest{Workspace: w.id, Path: "fence", Content: []byte("fence\n")}); err != nil {
			return 0, 0, fmt.Errorf("fence write: %w", err)
		}
	}
	var script strings.Builder
	for _, t := range targets {
		fmt.Fprintf(&script, "if [ -e '%[1]s' ]; then sha256sum -- '%[1]s'; else echo absent '%[1]s'; fi; ", t.path)
	}
	r, _, err := s.exec(context.Background(), w.id, script.String(), 60)
	if err != nil {
		return 0, 0, err
	}
	got := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			got[f[1]] = strings.TrimPrefix(f[0], "absent")
		}
	}
	for _, t := range targets {
		switch h, seen := got[t.path]; {
		case !seen:
			c.fail("target %s not checked: %q", t.path, r.Stdout)
		case h == t.new:
			news++
		case h == t.old:
			olds++
		default:
			c.fail("target %s is partial or foreign: %s", t.path, h)
		}
	}
	return olds, news, nil
}

// sdkKilled runs call and kill -9s the process of id marked what after delay
// (waiting for it to exist). It returns the call's error and duration.
func (s *suite) sdkKilled(id, what string, call func(context.Context, *suite, *ws) error, delay time.Duration) (error, time.Duration, bool) {
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- call(context.Background(), s, &ws{id: id}) }()
	killed := false
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case err := <-done:
		return err, time.Since(start), false
	case <-timer.C:
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && !killed; {
		if pid := s.pidOf(id, what, nil); pid > 0 {
			kill9(pid)
			killed = true
			break
		}
		select {
		case err := <-done:
			return err, time.Since(start), false
		case <-time.After(50 * time.Millisecond):
		}
	}
	select {
	case err := <-done:
		return err, time.Since(start), killed
	case <-time.After(10 * time.Minute):
		return errors.New("no answer in 10 minutes"), time.Since(start), killed
	}
}

// cliKilled runs the CLI with args and kill -9s it after delay.
func (s *suite) cliKilled(args []string, delay time.Duration) (error, time.Duration, bool) {
	cmd := s.cli(args...)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err, 0, false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err, time.Since(start), false
	case <-time.After(delay):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return nil, time.Since(start), true
}

// killCreate: kill -9 during a create with a 50 MB seed.
func (s *suite) killCreate(t *testing.T, c *check, k killer) {
	seed := seedDir(t, 50<<20)
	before, _ := s.c.ListWorkspaces(context.Background())
	known := map[string]bool{}
	for _, w := range before {
		known[w.WorkspaceID] = true
	}
	var err error
	var dur time.Duration
	var killed bool
	if k.what == "" {
		err, dur, killed = s.cliKilled([]string{"workspace", "create", "debian:12", "--seed-path", seed}, 3*time.Second)
	} else {
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := s.c.CreateWorkspace(context.Background(), pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: seed})
			done <- err
		}()
		for deadline := time.Now().Add(startBound); time.Now().Before(deadline) && !killed; time.Sleep(50 * time.Millisecond) {
			if pid := s.pidOf("", k.what, known); pid > 0 {
				time.Sleep(time.Second) // into the boot or the seeding
				kill9(pid)
				killed = true
			}
		}
		err = <-done
		dur = time.Since(start)
		typed(c, "create", err)
	}
	within(c, "create", dur, startBound+transferBound)
	c.note("killed: %v", killed)
	after, lerr := s.c.ListWorkspaces(context.Background())
	if lerr != nil {
		c.fail("list: %v", lerr)
	}
	for _, w := range after {
		if known[w.WorkspaceID] {
			continue
		}
		// A create that completed (its answer lost with the CLI, or the
		// kill came after it) must hold the whole seed.
		nw := &ws{id: w.WorkspaceID, want: map[string]string{}}
		b, _ := os.ReadFile(filepath.Join(seed, "seed.bin"))
		nw.want["seed.bin"] = sum(b)
		c.note("workspace created (%s)", w.State)
		s.usable(c, nw)
		if _, err := s.c.DeleteWorkspace(context.Background(), w.WorkspaceID); err != nil {
			c.fail("delete: %v", err)
		}
	}
	if k.what != "" && err == nil && len(after) == len(before) {
		c.fail("create answered success but no workspace is listed")
	}
	s.leaks(c)
}

// killDelete: kill -9 during the delete of a running workspace.
func (s *suite) killDelete(t *testing.T, c *check, k killer) {
	w, err := s.create(context.Background(), seedDir(t, 0))
	if err != nil {
		c.fail("create: %v", err)
		return
	}
	var dur time.Duration
	var killed bool
	if k.what == "" {
		err, dur, killed = s.cliKilled([]string{"workspace", "delete", w.id}, 60*time.Millisecond)
	} else {
		err, dur, killed = s.sdkKilled(w.id, k.what, func(ctx context.Context, s *suite, w *ws) error {
			_, err := s.c.DeleteWorkspace(ctx, w.id)
			return err
		}, 0)
		typed(c, "delete", err)
	}
	within(c, "delete", dur, 90*time.Second)
	c.note("killed: %v", killed)
	if _, err := s.c.WorkspaceStatus(context.Background(), w.id); err == nil {
		c.note("still there: deleting again")
		if _, err := s.c.DeleteWorkspace(context.Background(), w.id); err != nil {
			c.fail("repeated delete: %s: %v", pyro.ErrorCode(err), err)
		}
	} else if pyro.ErrorCode(err) != "workspace_not_found" {
		c.fail("status after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.state, "workspaces", w.id)); err == nil {
		c.fail("the workspace dir is left")
	}
	s.leaks(c)
}
