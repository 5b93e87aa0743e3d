package qemu

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/vmm"
)

// devices lists the -device values of args in order.
func devices(args []string) []string {
	var out []string
	for i, a := range args {
		if a == "-device" && i+1 < len(args) {
			out = append(out, args[i+1])
		}
	}
	return out
}

func argValue(args []string, flag string) string {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

// A restored machine must have the devices of the saved one, in the same
// order; only its disk and the incoming state differ.
func TestRestoreArgsMatchSavedMachine(t *testing.T) {
	base := vmm.Config{ID: "a", RuntimeDir: "/r", KernelPath: "/k", RootfsPath: "/img/rootfs.ext4", VCPUs: 2, MemMiB: 512, Accel: vmm.AccelTCG}
	save := base
	save.DiskMode, save.OverlayPath, save.Saveable = vmm.DiskOverlay, "/snap/disk.qcow2", true
	restore := base
	restore.ID = "b"
	restore.Restore = &vmm.Restore{StatePath: "/snap/state", DiskPath: "/snap/disk.qcow2"}
	sa, ra := Args(save, "/r/agent.sock", "/r/console.log"), Args(restore, "/r/agent.sock", "/r/console.log")

	if !slices.Equal(devices(sa), devices(ra)) {
		t.Errorf("devices differ:\nsave    %q\nrestore %q", devices(sa), devices(ra))
	}
	for _, f := range []string{"-M", "-cpu", "-smp", "-m", "-kernel", "-append", "-accel", "-sandbox"} {
		if argValue(sa, f) != argValue(ra, f) {
			t.Errorf("%s: save %q restore %q", f, argValue(sa, f), argValue(ra, f))
		}
	}
	if !strings.Contains(argValue(ra, "-sandbox"), "spawn=deny") {
		t.Errorf("restore sandbox %q", argValue(ra, "-sandbox"))
	}
	if d := argValue(ra, "-drive"); !strings.Contains(d, "file=/snap/disk.qcow2") || !strings.Contains(d, "format=qcow2") || !strings.Contains(d, "snapshot=on") {
		t.Errorf("restore drive %q", d)
	}
	if d := argValue(sa, "-drive"); !strings.Contains(d, "file=/snap/disk.qcow2") || strings.Contains(d, "snapshot=on") {
		t.Errorf("save drive %q", d)
	}
	if argValue(ra, "-incoming") != "fd:3" || slices.Contains(sa, "-incoming") {
		t.Errorf("incoming: save %q restore %q", argValue(sa, "-incoming"), argValue(ra, "-incoming"))
	}
	if !strings.HasPrefix(argValue(sa, "-qmp"), "unix:/r/qmp.sock,") || slices.Contains(ra, "-qmp") {
		t.Errorf("qmp: save %q restore %q", argValue(sa, "-qmp"), argValue(ra, "-qmp"))
	}
	if argValue(sa, "-global") != "migration.store-global-state=off" {
		t.Errorf("save -global %q", argValue(sa, "-global"))
	}
	if err := restore.Validate(); err != nil {
		t.Error(err)
	}
}

// A workspace restores into a private copy of the saved disk and keeps it:
// the same devices, the copy written in place, no throw-away overlay.
func TestWritableRestoreArgs(t *testing.T) {
	base := vmm.Config{ID: "a", RuntimeDir: "/r", KernelPath: "/k", RootfsPath: "/img/rootfs.ext4", VCPUs: 1, MemMiB: 512, Accel: vmm.AccelTCG}
	ro, rw := base, base
	ro.Restore = &vmm.Restore{StatePath: "/snap/state", DiskPath: "/snap/disk.qcow2"}
	rw.DiskMode, rw.OverlayPath = vmm.DiskOverlay, "/ws/disk.qcow2"
	rw.Restore = &vmm.Restore{StatePath: "/snap/state", DiskPath: "/ws/disk.qcow2", Writable: true}
	roa, rwa := Args(ro, "/r/agent.sock", "/r/console.log"), Args(rw, "/r/agent.sock", "/r/console.log")
	if !slices.Equal(devices(roa), devices(rwa)) {
		t.Errorf("devices differ:\nread-only %q\nwritable  %q", devices(roa), devices(rwa))
	}
	d := argValue(rwa, "-drive")
	if !strings.Contains(d, "file=/ws/disk.qcow2") || !strings.Contains(d, "format=qcow2") || !strings.Contains(d, "cache=writeback") || strings.Contains(d, "snapshot=on") {
		t.Errorf("writable restore drive %q", d)
	}
	if argValue(rwa, "-incoming") != "fd:3" {
		t.Errorf("incoming %q", argValue(rwa, "-incoming"))
	}
	if MachineDigest(rw) != MachineDigest(ro) {
		t.Error("the digest depends on the restore disk mode")
	}
}

func TestMachineDigest(t *testing.T) {
	a := vmm.Config{ID: "a", RuntimeDir: "/r1", KernelPath: "/k1", RootfsPath: "/i1", VCPUs: 1, MemMiB: 512, Accel: vmm.AccelTCG}
	b := a
	b.ID, b.RuntimeDir, b.KernelPath, b.RootfsPath = "b", "/r2", "/k2", "/i2"
	b.Restore = &vmm.Restore{StatePath: "/s", DiskPath: "/d"}
	if MachineDigest(a) != MachineDigest(b) {
		t.Error("the digest depends on paths or on restoring")
	}
	for name, mutate := range map[string]func(*vmm.Config){
		"vcpus":  func(c *vmm.Config) { c.VCPUs = 2 },
		"mem":    func(c *vmm.Config) { c.MemMiB = 1024 },
		"accel":  func(c *vmm.Config) { c.Accel = vmm.AccelKVM },
		"kernel": func(c *vmm.Config) { c.KernelArgs = []string{"debug"} },
		"tsc":    func(c *vmm.Config) { c.GuestTSCKHz = 2445406 },
	} {
		c := a
		mutate(&c)
		if MachineDigest(c) == MachineDigest(a) {
			t.Errorf("%s does not change the digest", name)
		}
	}
}

// A networked machine has its device on fd 4 in a boot and in a restore
// alike, and is a different machine from one without a network.
func TestNetworkArgs(t *testing.T) {
	base := vmm.Config{ID: "a", RuntimeDir: "/r", KernelPath: "/k", RootfsPath: "/img/rootfs.ext4", VCPUs: 1, MemMiB: 512, Accel: vmm.AccelTCG}
	net := base
	net.Network = &vmm.NetDevice{MAC: "52:54:00:12:34:56", File: os.Stdin}
	restore := net
	restore.Restore = &vmm.Restore{StatePath: "/snap/state", DiskPath: "/snap/disk.qcow2"}
	for _, cfg := range []vmm.Config{net, restore} {
		a := Args(cfg, "/r/agent.sock", "/r/console.log")
		if argValue(a, "-netdev") != "socket,id=net0,fd=4" || !slices.Contains(devices(a), "virtio-net-device,netdev=net0,mac=52:54:00:12:34:56") {
			t.Errorf("network args %q", a)
		}
	}
	if slices.Contains(Args(base, "/r/agent.sock", "/r/console.log"), "-netdev") {
		t.Error("a machine without a network has a netdev")
	}
	other := net
	other.Network = &vmm.NetDevice{MAC: "52:54:00:12:34:56", File: os.Stdout}
	if MachineDigest(net) != MachineDigest(other) || MachineDigest(net) == MachineDigest(base) {
		t.Error("the digest must depend on the network device, not on its socket")
	}
}

// A kept disk (a workspace's, booted or restored) must honour the guest's
// flushes: the agent's syncfs before answering a write is only durable if
// QEMU writes its qcow2 metadata and fdatasyncs then (never cache=unsafe).
func TestKeptDisksHonourFlushes(t *testing.T) {
	boot := vmm.Config{ID: "a", RuntimeDir: "/r", KernelPath: "/k", RootfsPath: "/img/rootfs.ext4", VCPUs: 1, MemMiB: 512, Accel: vmm.AccelTCG,
		DiskMode: vmm.DiskOverlay, OverlayPath: "/ws/disk.qcow2"}
	restore := boot
	restore.Restore = &vmm.Restore{StatePath: "/snap/state", DiskPath: "/ws/disk.qcow2", Writable: true}
	for name, cfg := range map[string]vmm.Config{"boot": boot, "restore": restore} {
		d := argValue(Args(cfg, "/r/agent.sock", "/r/console.log"), "-drive")
		if !strings.Contains(d, "cache=writeback") || strings.Contains(d, "unsafe") || strings.Contains(d, "no-flush") || strings.Contains(d, "snapshot=on") {
			t.Errorf("%s: kept disk drive %q", name, d)
		}
	}
}

// Under TCG pyro's guests run without address randomisation (translated
// code is reused across processes); under KVM they keep it, and the floor
// boots the kernel as it comes.
func TestNoRandomMapsUnderTCG(t *testing.T) {
	cfg := vmm.Config{ID: "a", RuntimeDir: "/r", KernelPath: "/k", RootfsPath: "/img/rootfs.ext4", VCPUs: 1, MemMiB: 512}
	for accel, want := range map[vmm.Accel]bool{vmm.AccelTCG: true, vmm.AccelKVM: false} {
		cfg.Accel = accel
		words := strings.Fields(argValue(Args(cfg, "/r/agent.sock", "/r/console.log"), "-append"))
		if got := slices.Contains(words, "norandmaps"); got != want {
			t.Errorf("%s: norandmaps %v in %v", accel, got, words)
		}
		if floor := argValue(FloorArgs(cfg, "/bin/true", "/r/console.log"), "-append"); strings.Contains(floor, "norandmaps") {
			t.Errorf("%s floor: %q", accel, floor)
		}
	}
}

// Under TCG a guest told the host TSC frequency keeps time with the TSC;
// under KVM it has kvm-clock and is told nothing.
func TestGuestTSCArgs(t *testing.T) {
	cfg := vmm.Config{ID: "a", RuntimeDir: "/r", KernelPath: "/k", RootfsPath: "/img/rootfs.ext4", VCPUs: 1, MemMiB: 512, GuestTSCKHz: 2445406}
	for accel, want := range map[vmm.Accel]bool{vmm.AccelTCG: true, vmm.AccelKVM: false} {
		cfg.Accel = accel
		words := strings.Fields(argValue(Args(cfg, "/r/agent.sock", "/r/console.log"), "-append"))
		if got := slices.Contains(words, "tsc_early_khz=2445406") && slices.Contains(words, "tsc=reliable"); got != want {
			t.Errorf("%s: TSC arguments %v in %v", accel, got, words)
		}
	}
	cfg.Accel, cfg.GuestTSCKHz = vmm.AccelTCG, 0
	if a := argValue(Args(cfg, "/r/agent.sock", "/r/console.log"), "-append"); strings.Contains(a, "tsc") {
		t.Errorf("no TSC frequency, yet %q", a)
	}
}
