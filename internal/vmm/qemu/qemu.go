// Package qemu runs guests under QEMU's microvm machine: virtio-mmio devices
// on the kernel command line, an uncompressed PVH kernel, no firmware.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/vmm"
)

// Binary is the QEMU system emulator pyro drives.
const Binary = "qemu-system-x86_64"

// Files inside the runtime dir.
const (
	agentSocket = "agent.sock"
	consoleLog  = "console.log"
	vmmLog      = "vmm.log"
	qmpSocket   = "qmp.sock" // Config.Saveable: the control socket SaveState uses
)

// Machine is a QEMU microvm process.
type Machine struct {
	cfg vmm.Config

	cmd       *exec.Cmd
	exited    chan struct{}
	waitErr   error
	closeOnce sync.Once
	closeErr  error
}

var _ vmm.Machine = (*Machine)(nil)

// New prepares a machine; nothing runs until Start.
func New(cfg vmm.Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Machine{cfg: cfg, exited: make(chan struct{})}, nil
}

// LookPath finds the QEMU binary or says which Debian package provides it.
func LookPath() (string, error) {
	p, err := exec.LookPath(Binary)
	if err != nil {
		return "", errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeHostToolMissing,
			"%s is not installed: install it with: apt-get install -y --no-install-recommends qemu-system-x86", Binary)
	}
	return p, nil
}

// KernelArgs are the guest kernel's defaults. reboot=t plus QEMU's -no-reboot
// turn a guest reboot (and a panic, via panic=-1) into a VMM exit.
func KernelArgs(init string) []string {
	return []string{
		"console=ttyS0", "quiet", "reboot=t", "panic=-1", "no_timer_check",
		"root=/dev/vda", "rootfstype=ext4", "rw", "init=" + init,
		"i8042.noaux", "i8042.nomux", "i8042.nopnp", "i8042.dumbkbd",
		// Free page reporting in 4 MiB blocks (the largest): half the
		// reports of the default 2 MiB, each one a stall of the guest.
		"page_reporting.page_reporting_order=10",
	}
}

// GuestInit is the guest agent's path inside every environment image.
const GuestInit = "/sbin/pyro-agent"

// Args builds QEMU's argv (without the binary) for cfg. The agent channel is a
// virtio-serial port whose chardev connects to agentSock, where the host listens.
//
// A restored machine (cfg.Restore) gets the very same devices in the same
// order, its saved disk under a throw-away overlay, and reads its state from
// file descriptor 3 (Start passes it). QEMU starts the guest as soon as the
// state is loaded.
func Args(cfg vmm.Config, agentSock, console string) []string {
	args := append(baseArgs(cfg, GuestInit, console, agentKernelArgs(cfg)...),
		"-device", "virtio-serial-device,max_ports=2",
		"-chardev", "socket,id=agent,path="+escapeOpt(agentSock),
		"-device", "virtserialport,chardev=agent,name="+agentproto.PortName,
	)
	if cfg.Network != nil {
		// A datagram socketpair: one Ethernet frame per datagram, no framing.
		args = append(args,
			"-netdev", "socket,id=net0,fd="+strconv.Itoa(netFD),
			"-device", "virtio-net-device,netdev=net0,mac="+escapeOpt(cfg.Network.MAC))
	}
	// Free page reporting: the guest tells QEMU which pages it freed (in
	// 2 MiB blocks) and QEMU gives them back to the host, so a running idle
	// workspace holds what its guest uses, not what it once touched; a
	// paused one saves less (freed pages read as zero and are skipped).
	args = append(args, "-device", "virtio-balloon-device,free-page-reporting=on")
	if cfg.Saveable {
		args = append(args, "-qmp", "unix:"+escapeOpt(filepath.Join(cfg.RuntimeDir, qmpSocket))+",server=on,wait=off",
			// SaveState pauses the guest before it migrates it. Leaving the
			// run state out of the saved state makes a restoring QEMU start
			// the guest by itself instead of keeping it paused: no control
			// socket and no "cont" on the restore path.
			"-global", "migration.store-global-state=off")
	}
	if cfg.Restore != nil {
		args = append(args, "-incoming", "fd:"+strconv.Itoa(restoreFD))
	}
	return args
}

// Descriptor numbers in QEMU (exec.Cmd.ExtraFiles from 3 on). The network's
// is fixed whether or not a state file comes first, so that a machine and
// its restore have the same arguments.
const (
	restoreFD = 3
	netFD     = 4
)

// FloorArgs boots the same machine, kernel and image as Args, but with init
// and no agent channel: the floor that benchmarks compare pyro against.
func FloorArgs(cfg vmm.Config, init, console string) []string {
	return baseArgs(cfg, init, console)
}

// agentKernelArgs are kernel arguments for pyro's guests (not the floor's).
// Under TCG, norandmaps turns off address space randomisation: QEMU keeps
// translated guest code by its virtual address as well as its physical page,
// so a shared library mapped at a new random address in every process is
// translated again in every process (2/3 of a `true`'s start, measured).
// With fixed addresses a command reuses the translations of the previous
// ones. The guest is a disposable sandbox whose processes are all the
// caller's own; the host never relies on the guest's randomisation. Under
// KVM randomisation costs nothing and stays on. Under TCG the guest keeps
// time with the host's TSC where cfg has its frequency (tsc.go); under KVM
// it has kvm-clock.
func agentKernelArgs(cfg vmm.Config) []string {
	if cfg.Accel == vmm.AccelKVM {
		return nil
	}
	return append([]string{"norandmaps"}, tscKernelArgs(cfg.GuestTSCKHz)...)
}

func baseArgs(cfg vmm.Config, init, console string, kernelExtra ...string) []string {
	machine := "microvm,acpi=off,rtc=on,isa-serial=on,x-option-roms=off"
	accel := "tcg"
	if cfg.Accel == vmm.AccelKVM {
		accel = "kvm"
	}
	drive := "id=root,if=none,discard=unmap,"
	switch {
	case cfg.Restore != nil && cfg.Restore.Writable:
		// A private copy of the saved disk, kept like an overlay disk: the
		// restored guest goes on writing where the saved one stopped.
		drive += "cache=writeback,format=qcow2,file=" + escapeOpt(cfg.Restore.DiskPath)
	case cfg.Restore != nil:
		// The saved disk stays as saved: QEMU puts the guest's writes in a
		// temporary overlay over it (in TMPDIR, the VM dir), read-only below.
		drive += "cache=unsafe,format=qcow2,snapshot=on,file=" + escapeOpt(cfg.Restore.DiskPath)
	case cfg.DiskMode == vmm.DiskOverlay:
		// A kept disk honours the guest's flushes, so a crash of the host
		// side loses at most what the guest had not synced; the agent syncs
		// before answering a write, so nothing answered (never cache=unsafe).
		drive += "cache=writeback,format=qcow2,file=" + escapeOpt(cfg.OverlayPath)
	default:
		// A discarded disk never needs to reach the host's disk.
		drive += "cache=unsafe,format=raw,snapshot=on,file=" + escapeOpt(cfg.RootfsPath)
	}
	cmdline := strings.Join(slices.Concat(KernelArgs(init), kernelExtra, cfg.KernelArgs), " ")
	return []string{
		"-name", "pyro-" + cfg.ID,
		"-M", machine,
		"-accel", accel,
		"-cpu", cpuModel(cfg.Accel),
		"-smp", strconv.Itoa(cfg.VCPUs),
		"-m", strconv.Itoa(cfg.MemMiB) + "M",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-kernel", cfg.KernelPath,
		"-append", cmdline,
		"-chardev", "file,id=console,path=" + escapeOpt(console),
		"-serial", "chardev:console",
		"-drive", drive,
		"-device", "virtio-blk-device,drive=root",
		"-device", "virtio-rng-device",
	}
}

func cpuModel(a vmm.Accel) string {
	if a == vmm.AccelKVM {
		return "host"
	}
	return "max"
}

// escapeOpt doubles commas, QEMU's escape inside option values.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Start launches QEMU and accepts its agent channel connection.
func (m *Machine) Start(ctx context.Context) (net.Conn, error) {
	if m.cmd != nil {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "machine %s already started", m.cfg.ID)
	}
	bin, err := LookPath()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.cfg.RuntimeDir, 0o700); err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeVMMFailed, "create runtime dir")
	}
	var state *os.File
	if m.cfg.Restore != nil {
		if state, err = os.Open(m.cfg.Restore.StatePath); err != nil {
			return nil, errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeVMMFailed, "open saved machine state")
		}
		defer state.Close()
	} else if m.cfg.DiskMode == vmm.DiskOverlay {
		if err := ensureOverlay(ctx, m.cfg.OverlayPath, m.cfg.RootfsPath); err != nil {
			return nil, err
		}
	}
	sock := filepath.Join(m.cfg.RuntimeDir, agentSocket)
	_ = os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeVMMFailed, "listen on agent socket")
	}
	defer ln.Close()

	logf, err := os.OpenFile(filepath.Join(m.cfg.RuntimeDir, vmmLog), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeVMMFailed, "open vmm log")
	}
	defer logf.Close()

	cmd := exec.Command(bin, Args(m.cfg, sock, filepath.Join(m.cfg.RuntimeDir, consoleLog))...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if state != nil {
		cmd.ExtraFiles = []*os.File{state} // fd 3: restoreFD
	}
	if m.cfg.Network != nil {
		cmd.ExtraFiles = []*os.File{state, m.cfg.Network.File} // fd 4: netFD (fd 3 closed when nil)
	}
	if m.cfg.Saveable {
		_ = os.Remove(filepath.Join(m.cfg.RuntimeDir, qmpSocket))
	}
	// QEMU keeps temporary snapshot files in TMPDIR: keep them inside the VM's dir.
	cmd.Env = append(os.Environ(), "TMPDIR="+m.cfg.RuntimeDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // a terminal's Ctrl-C reaches pyro, which tears down in order
		Pdeathsig: syscall.SIGKILL, // the VM never outlives the process that owns it
	}
	if err := cmd.Start(); err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeVMMFailed, "start %s", bin)
	}
	m.cmd = cmd
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()

	conn, err := m.accept(ctx, ln)
	if err != nil {
		_ = m.Kill()
		return nil, err
	}
	return conn, nil
}

// accept waits for QEMU to connect its chardev, or for QEMU to die.
func (m *Machine) accept(ctx context.Context, ln *net.UnixListener) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, errdefs.Wrap(r.err, errdefs.ErrUnavailable, errdefs.CodeVMMFailed, "accept agent channel")
		}
		return r.c, nil
	case <-m.exited:
		return nil, errdefs.New(errdefs.ErrUnavailable, errdefs.CodeVMMFailed,
			"%s exited at start: %s", Binary, m.vmmLogTail())
	case <-timeout.C:
		return nil, errdefs.New(errdefs.ErrUnavailable, errdefs.CodeVMMFailed, "%s did not connect the agent channel within 30s", Binary)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *Machine) vmmLogTail() string {
	return strings.TrimSpace(tailLines(filepath.Join(m.cfg.RuntimeDir, vmmLog), 10))
}

// ensureOverlay creates a qcow2 overlay over the read-only image if missing.
func ensureOverlay(ctx context.Context, overlay, base string) error {
	if _, err := os.Stat(overlay); err == nil {
		return nil
	}
	img, err := qemuImg()
	if err != nil {
		return err
	}
	tmp := overlay + ".tmp"
	out, err := exec.CommandContext(ctx, img, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, tmp).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return errdefs.Wrap(fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out))), errdefs.ErrInternal, errdefs.CodeVMMFailed, "create disk overlay")
	}
	return os.Rename(tmp, overlay)
}

func (m *Machine) Exited() <-chan struct{} { return m.exited }

func (m *Machine) Wait(ctx context.Context) error {
	if m.cmd == nil {
		return nil
	}
	select {
	case <-m.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Machine) Pid() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *Machine) ExecutionMode() string { return ExecutionMode(m.cfg.Accel) }

// ExecutionMode names how QEMU runs guests under accel, e.g. "guest_qemu_tcg".
func ExecutionMode(accel vmm.Accel) string { return "guest_qemu_" + string(accel) }

// Kill sends SIGKILL and waits for the process to be reaped.
func (m *Machine) Kill() error {
	if m.cmd == nil {
		return nil
	}
	select {
	case <-m.exited:
		return nil
	default:
	}
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-m.exited:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", Binary, m.cmd.Process.Pid)
	}
}

// Stop lets the guest finish powering off, then escalates.
func (m *Machine) Stop(grace time.Duration) error {
	if m.cmd == nil {
		return nil
	}
	select {
	case <-m.exited:
		return nil
	case <-time.After(grace):
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
		return nil
	case <-time.After(2 * time.Second):
	}
	return m.Kill()
}

// LogTail returns the last n lines QEMU itself printed (its errors) and,
// once it ended by a signal, which one: a kill -9 of QEMU prints nothing.
func (m *Machine) LogTail(n int) string {
	tail := strings.TrimSpace(tailLines(filepath.Join(m.cfg.RuntimeDir, vmmLog), n))
	select {
	case <-m.exited:
		var ee *exec.ExitError
		if errors.As(m.waitErr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				tail = strings.TrimSpace(tail + "\n" + Binary + " was killed by signal " + ws.Signal().String())
			}
		}
	default:
	}
	return tail
}

// ConsoleTail returns the guest console's last n lines, without the boot
// noise that would mislead a reader looking for why a VM ended.
func (m *Machine) ConsoleTail(n int) string {
	lines := strings.SplitAfter(withoutNoise(tailLines(filepath.Join(m.cfg.RuntimeDir, consoleLog), n+len(consoleNoise))), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// consoleNoise are lines every healthy boot prints. The microvm machine has
// no PCI bus, so the kernel says "PCI: Fatal: No config space access
// function found" at each boot (at error level, so quiet keeps it); shown
// under a VM that was killed it reads like the cause.
var consoleNoise = []string{"PCI: Fatal: No config space access function found"}

func withoutNoise(tail string) string {
	lines := strings.SplitAfter(tail, "\n")
	out := lines[:0]
	for _, l := range lines {
		if !slices.ContainsFunc(consoleNoise, func(n string) bool { return strings.Contains(l, n) }) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// Close kills QEMU if needed and removes the runtime dir. Idempotent.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() {
		killErr := m.Kill()
		rmErr := os.RemoveAll(m.cfg.RuntimeDir)
		m.closeErr = errors.Join(killErr, rmErr)
	})
	return m.closeErr
}

// tailLines returns the last n lines of a file, reading at most 64 KiB.
func tailLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - window
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(buf), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
