//go:build faults

package faults_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// TestFaultsGuest: what a hostile or careless guest can do, on one shared
// workspace, and four writers of one file.
func TestFaultsGuest(t *testing.T) {
	s := newSuite(t)
	ctx := context.Background()
	w, err := s.create(ctx, seedDir(t, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	// A completed write every row must keep.
	if _, err := s.c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: w.id, Path: "kept.txt", Content: []byte("kept\n")}); err != nil {
		t.Fatal(err)
	}
	w.want["kept.txt"] = sum([]byte("kept\n"))

	// after checks what every guest row checks: the next exec answers in
	// its bound, the workspace is usable with its writes, nothing leaked.
	after := func(c *check) {
		s.usable(c, w)
		r, d, err := s.exec(ctx, w.id, "echo alive", 5)
		within(c, "next exec (timeout 5 s)", d, 5*time.Second+execGrace)
		if err != nil || r.Stdout != "alive\n" {
			c.fail("next exec: %v %+v", err, r)
		} else {
			c.note("next exec %.1fs", d.Seconds())
		}
		s.leaks(c)
	}

	attack := func(payload string) string {
		return `perl -e '$p=syscall(434,1,0); $fd=syscall(438,$p,3,0); if ($fd < 0) { print "refused:", $!+0, "\n"; exit 0 } open($fh,">&=",$fd); syswrite($fh,` + payload + `); sleep 1'`
	}
	for _, a := range []struct{ name, payload string }{
		{"fake frame header (pidfd_getfd of the agent's channel)", `pack("CCnNN",0,0,0,0x7ffffff1,0x10000000)`},
		{"garbage bytes on the agent's channel", `"\xff" x 65536`},
	} {
		runRow(t, a.name, "refused by the kernel, or the session given up in bound; workspace usable", func(t *testing.T, c *check) {
			r, d, err := s.exec(ctx, w.id, attack(a.payload)+`; for p in /dev/vport*; do head -c 4096 /dev/urandom > $p 2>/dev/null && echo "wrote $p"; done; true`, 20)
			within(c, "attack exec", d, 20*time.Second+execGrace)
			typed(c, "attack exec", err)
			if err == nil {
				c.note("attack: %s", strings.Join(strings.Fields(r.Stdout), " "))
				if strings.Contains(r.Stdout, "wrote") {
					c.fail("a guest command wrote to the agent's port")
				}
			}
			after(c)
		})
	}

	runRow(t, "fork bomb", "commands keep their timeouts; agent answers", func(t *testing.T, c *check) {
		_, d, err := s.exec(ctx, w.id, "bomb() { bomb | bomb & }; bomb", 10)
		within(c, "bomb exec", d, 10*time.Second+execGrace)
		typed(c, "bomb exec", err)
		time.Sleep(5 * time.Second)
		for i := range 3 {
			r, d, err := s.exec(ctx, w.id, "true", 5)
			within(c, "true during the bomb", d, 5*time.Second+execGrace)
			if err != nil || r.ExitCode != 0 {
				c.fail("true #%d during the bomb: %v %+v", i, err, r)
			}
			c.note("true %.1fs", d.Seconds())
		}
		// Clean up: restart, as a user would.
		if _, err := s.c.StopWorkspace(ctx, w.id); err != nil {
			c.fail("stop: %v", err)
		}
		after(c)
	})

	runRow(t, "memory hog", "killed inside the commands' cgroup (137); agent answers", func(t *testing.T, c *check) {
		r, d, err := s.exec(ctx, w.id, `perl -e 'push @a, "x" x (1<<20) while 1'`, 300)
		within(c, "hog exec", d, 300*time.Second+execGrace)
		switch {
		case err != nil:
			typed(c, "hog exec", err)
		case r.ExitCode != 137:
			c.fail("hog: exit %d", r.ExitCode)
		default:
			c.note("hog exit 137 after %.0fs", d.Seconds())
		}
		after(c)
	})

	runRow(t, "guest disk full", "write and patch fail with no_space and change nothing; a patch that only deletes works; freeing space makes them work", func(t *testing.T, c *check) {
		r, _, err := s.exec(ctx, w.id, `printf 'gone\n' > gone.txt; fallocate -l $(( $(df --output=avail -B1 /workspace | tail -1) )) fill; dd if=/dev/zero of=fill2 bs=64k 2>/dev/null; df -h /workspace | tail -1`, 120)
		if err != nil {
			c.fail("filling the disk: %v", err)
			return
		}
		c.note("disk: %s", strings.Join(strings.Fields(r.Stdout), " "))
		_, err = s.c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: w.id, Path: "big.bin", Content: randomBytes(4 << 20)})
		if code := pyro.ErrorCode(err); code != "no_space" {
			c.fail("file write on a full disk: %s %v", code, err)
		} else {
			c.note("file write: no_space")
		}
		_, err = s.c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: w.id, Patch: "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+" + strings.Repeat("x", 1<<20) + "\n"})
		if code := pyro.ErrorCode(err); code != "no_space" {
			c.fail("patch on a full disk: %s %v", code, err)
		} else {
			c.note("patch: no_space")
		}
		// A patch that only deletes frees space: it works on the full disk.
		if _, err := s.c.ApplyPatch(ctx, pyro.ApplyPatchRequest{Workspace: w.id, Patch: "--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n"}); err != nil {
			c.fail("deleting patch on a full disk: %s %v", pyro.ErrorCode(err), err)
		} else if r, _, _ := s.exec(ctx, w.id, "ls gone.txt 2>&1", 60); r == nil || !strings.Contains(r.Stdout, "No such file") {
			c.fail("the deleting patch left gone.txt: %+v", r)
		} else {
			c.note("deleting patch: done")
		}
		if r, _, _ := s.exec(ctx, w.id, "ls big.bin new.txt 2>&1; rm -f fill fill2", 60); r == nil || !strings.Contains(r.Stdout, "No such file") || strings.Count(r.Stdout, "No such file") != 2 {
			c.fail("a failed write left something: %+v", r)
		}
		if _, err := s.c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: w.id, Path: "big.bin", Content: []byte("fits\n")}); err != nil {
			c.fail("write after freeing space: %v", err)
		}
		w.want["big.bin"] = sum([]byte("fits\n"))
		after(c)
	})

	runRow(t, "PID 1 signalled (SEGV BUS FPE ILL TRAP ABRT SYS QUIT TERM INT HUP USR1 USR2 PIPE ALRM KILL STOP)", "agent survives; workspace usable", func(t *testing.T, c *check) {
		r, d, err := s.exec(ctx, w.id, "for s in 11 7 8 4 5 6 31 3 15 2 1 10 12 13 14 9 19; do kill -$s 1 || echo refused $s; done; sleep 1; echo sent", 30)
		within(c, "signals exec", d, 30*time.Second+execGrace)
		if err != nil || !strings.Contains(r.Stdout, "sent") {
			c.fail("signals: %v %+v", err, r)
		}
		after(c)
	})

	runRow(t, "4 concurrent writers of one file", "all answer success, serialized: one writer's whole content", func(t *testing.T, c *check) {
		bodies := make([][]byte, 4)
		errs := make([]error, 4)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range bodies {
			bodies[i] = []byte(strings.Repeat(strconv.Itoa(i), 1<<20))
			wg.Go(func() {
				_, errs[i] = s.c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: w.id, Path: "same.txt", Content: bodies[i]})
			})
		}
		wg.Wait()
		within(c, "4 writers", time.Since(start), transferBound)
		for i, err := range errs {
			if err != nil {
				c.fail("writer %d: %s %v", i, pyro.ErrorCode(err), err)
			}
		}
		r, _, err := s.exec(ctx, w.id, "sha256sum same.txt", 30)
		if err != nil {
			c.fail("reading same.txt: %v", err)
			return
		}
		got := strings.Fields(r.Stdout)
		for i, b := range bodies {
			if len(got) > 0 && got[0] == sum(b) {
				c.note("writer %d's content", i)
				w.want["same.txt"] = sum(b)
			}
		}
		if w.want["same.txt"] == "" {
			c.fail("same.txt is no writer's whole content")
		}
		after(c)
	})
}

// TestFaultsHostDisk: the host disk nearly full during snapshot and export
// (the state dir and the export dir on small tmpfs mounts).
func TestFaultsHostDisk(t *testing.T) {
	testutil.RequiresVM(t)
	ctx := context.Background()
	mount := func(size string) string {
		dir := t.TempDir()
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
			t.Skipf("cannot mount a tmpfs (needs root): %v", err)
		}
		t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
		return dir
	}
	// Mounted before the suite: cleanups run last first, so the workspaces
	// are deleted before the mounts go.
	state, out := mount("400m"), mount("8m")
	s := newSuiteIn(t, state, out)
	s.mounts = []string{state, out}
	w, err := s.create(ctx, seedDir(t, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.WriteWorkspaceFile(ctx, pyro.WriteFileRequest{Workspace: w.id, Path: "data.bin", Content: randomBytes(24 << 20)}); err != nil {
		t.Fatal(err)
	}
	w.want["data.bin"] = "" // filled in below from the guest
	r, _, err := s.exec(ctx, w.id, "sha256sum data.bin", 30)
	if err != nil {
		t.Fatal(err)
	}
	w.want["data.bin"] = strings.Fields(r.Stdout)[0]

	runRow(t, "host disk nearly full during snapshot", "no_space, no snapshot and no temp file left; works once there is room", func(t *testing.T, c *check) {
		var st syscall.Statfs_t
		_ = syscall.Statfs(s.state, &st)
		free := int64(st.Bavail) * st.Bsize
		filler := filepath.Join(s.state, "filler")
		if err := os.WriteFile(filler, make([]byte, max(0, free-16<<20)), 0o600); err != nil {
			c.fail("filling the host disk: %v", err)
			return
		}
		c.note("host free %d MiB", 16)
		start := time.Now()
		_, err := s.c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: w.id, Name: "full"})
		within(c, "snapshot", time.Since(start), transferBound)
		if code := pyro.ErrorCode(err); code != "no_space" {
			c.fail("snapshot on a full host disk: %s %v", code, err)
		} else {
			c.note("snapshot: no_space")
		}
		if list, _ := s.c.ListSnapshots(ctx, w.id); len(list) != 0 {
			c.fail("a failed snapshot is listed: %+v", list)
		}
		s.leaks(c)
		os.Remove(filler)
		if _, err := s.c.CreateSnapshot(ctx, pyro.SnapshotRequest{Workspace: w.id, Name: "full"}); err != nil {
			c.fail("snapshot once there is room: %v", err)
		}
		s.usable(c, w)
	})

	runRow(t, "host disk nearly full during export", "no_space, no partial output; workspace usable", func(t *testing.T, c *check) {
		out := filepath.Join(s.out, "exp")
		start := time.Now()
		_, err := s.c.ExportWorkspace(ctx, pyro.ExportWorkspaceRequest{Workspace: w.id, Path: "/workspace", Output: out})
		within(c, "export", time.Since(start), transferBound)
		if code := pyro.ErrorCode(err); code != "no_space" {
			c.fail("export onto a full host disk: %s %v", code, err)
		} else {
			c.note("export: no_space")
		}
		if ents, _ := os.ReadDir(s.out); len(ents) != 0 {
			c.fail("export left %d entries in the output dir", len(ents))
		}
		s.usable(c, w)
		s.leaks(c)
	})
}
