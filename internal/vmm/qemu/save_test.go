package qemu_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/vmm/qemu"
)

// installedImage returns the kernel and image of an installed debian:12,
// whatever agent it holds (this test only needs the agent to answer).
func installedImage(t *testing.T) (kernel, rootfs string) {
	t.Helper()
	cache, err := env.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.NewStore(env.Options{CacheDir: cache}).Inspect(t.Context(), "debian:12")
	if err != nil {
		t.Skipf("debian:12 is not installed: %v", err)
	}
	return m.Kernel.Path, m.Rootfs.Path
}

// startAndHello starts m and waits for its agent; an agent of another
// protocol version answered all the same.
func startAndHello(t *testing.T, m *qemu.Machine) time.Duration {
	t.Helper()
	ac, d := startHello(t, m)
	ac.Close()
	return d
}

// startHello is startAndHello, handing back the agent session.
func startHello(t *testing.T, m *qemu.Machine) (*agentclient.Client, time.Duration) {
	t.Helper()
	start := time.Now()
	conn, err := m.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ac, err := agentclient.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := ac.Hello(ctx); err != nil && errdefs.CodeOf(err) != errdefs.CodeAgentProtocol {
		ac.Close()
		t.Fatalf("hello: %v\nconsole:\n%s\nqemu: %s", err, m.ConsoleTail(20), m.LogTail(10))
	}
	return ac, time.Since(start)
}

// A machine saved over QMP restores from its state file (fd 3, with the
// seccomp sandbox's spawn=deny still on) and starts by itself; the saved
// disk and state are never written by a restore.
func TestSaveStateAndRestore(t *testing.T) {
	testutil.RequiresVM(t)
	kernel, rootfs := installedImage(t)
	snap := t.TempDir()
	disk, state := filepath.Join(snap, "disk.qcow2"), filepath.Join(snap, "state")
	base := vmm.Config{KernelPath: kernel, RootfsPath: rootfs, VCPUs: 1, MemMiB: 512, Accel: vmm.AccelTCG}

	cfg := base
	cfg.ID, cfg.RuntimeDir = "save", filepath.Join(t.TempDir(), "save")
	cfg.DiskMode, cfg.OverlayPath = vmm.DiskOverlay, disk
	cfg.Saveable = true
	m, err := qemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ac, d := startHello(t, m)
	t.Logf("cold boot to hello: %v", d)
	// The guest agent must have left its session before the save, so that
	// every restore below answers a fresh hello: QEMU reports it.
	start := time.Now()
	closed := 0
	if err := m.DetachAgent(t.Context(), func() { closed++; ac.Close() }); err != nil || closed != 1 {
		t.Fatalf("detach agent: %v (host end closed %d times)", err, closed)
	}
	t.Logf("the guest agent left its session %v after the host", time.Since(start))
	start = time.Now()
	if err := m.SaveState(t.Context(), state); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Exited():
	default:
		t.Fatal("QEMU still runs after SaveState")
	}
	st, err := os.Stat(state)
	if err != nil || st.Size() == 0 {
		t.Fatalf("state: %v %v", st, err)
	}
	t.Logf("saved %d bytes in %v", st.Size(), time.Since(start))
	m.Close()
	diskBefore, _ := os.Stat(disk)

	for i := range 2 {
		cfg := base
		cfg.ID, cfg.RuntimeDir = "restore", filepath.Join(t.TempDir(), "restore")
		cfg.Restore = &vmm.Restore{StatePath: state, DiskPath: disk}
		r, err := qemu.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		t.Logf("restore %d to hello: %v", i, startAndHello(t, r))
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	diskAfter, _ := os.Stat(disk)
	stateAfter, _ := os.Stat(state)
	if !diskAfter.ModTime().Equal(diskBefore.ModTime()) || diskAfter.Size() != diskBefore.Size() ||
		!stateAfter.ModTime().Equal(st.ModTime()) || stateAfter.Size() != st.Size() {
		t.Errorf("a restore wrote to the snapshot files")
	}
}

// SaveState and DetachAgent need the control socket; DetachAgent then
// leaves the host's end to its caller.
func TestSaveStateNeedsQMP(t *testing.T) {
	m, err := qemu.New(vmm.Config{ID: "x", RuntimeDir: t.TempDir(), KernelPath: "/k", RootfsPath: "/r", VCPUs: 1, MemMiB: 256, Accel: vmm.AccelTCG})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SaveState(t.Context(), filepath.Join(t.TempDir(), "state")); err == nil {
		t.Fatal("SaveState of a machine not made saveable succeeded")
	}
	if err := m.DetachAgent(t.Context(), func() { t.Error("DetachAgent closed the host end without a QMP socket") }); err == nil {
		t.Fatal("DetachAgent without a QMP socket succeeded")
	}
}
