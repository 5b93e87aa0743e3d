package pyro_test

import (
	"testing"

	"github.com/pyrovm/pyro"
)

func TestLowLevelVMLifecycle(t *testing.T) {
	c, _ := newWorkspaceClient(t)
	ctx := t.Context()
	v, err := c.CreateVM(ctx, pyro.CreateVMRequest{Environment: "debian:12", MemMiB: 512})
	if err != nil || v.State != "stopped" || v.TTLSeconds != pyro.DefaultVMTTLSeconds || v.ExpiresAt == nil {
		t.Fatalf("create: %v %+v", err, v)
	}
	if n, err := c.VMNetworkInfo(ctx, v.VMID); err != nil || n.NetworkPolicy != "off" {
		t.Fatalf("network info: %v %+v", err, n)
	}
	if v, err = c.StartVM(ctx, v.VMID); err != nil || v.State != "running" || v.ExecutionMode == "" {
		t.Fatalf("start: %v %+v", err, v)
	}
	r, err := c.ExecVM(ctx, pyro.VMExecRequest{VMID: v.VMID, Command: "echo once; exit 4"})
	if err != nil || r.Stdout != "once\n" || r.ExitCode != 4 {
		t.Fatalf("exec: %v %+v", err, r)
	}
	if _, err := c.VMStatus(ctx, v.VMID); pyro.ErrorCode(err) != "vm_not_found" {
		t.Fatalf("after exec the VM must be gone: %v", err)
	}
	// stop / delete of a started VM
	v2, err := c.CreateVM(ctx, pyro.CreateVMRequest{Environment: "debian:12", MemMiB: 512})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartVM(ctx, v2.VMID); err != nil {
		t.Fatal(err)
	}
	if s, err := c.StopVM(ctx, v2.VMID); err != nil || s.State != "stopped" {
		t.Fatalf("stop: %v %+v", err, s)
	}
	if d, err := c.DeleteVM(ctx, v2.VMID); err != nil || d.State != "deleted" {
		t.Fatalf("delete: %v %+v", err, d)
	}
}
