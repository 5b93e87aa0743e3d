package backends

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/vmm"
)

func TestByName(t *testing.T) {
	for _, name := range []string{"", "qemu"} {
		b, err := ByName(name)
		if err != nil || b.Name() != "qemu" {
			t.Errorf("ByName(%q) = %v, %v", name, b, err)
		}
	}
	_, err := ByName("firecracker")
	if errdefs.CodeOf(err) != errdefs.CodeInvalidArgument || !strings.Contains(err.Error(), "qemu") {
		t.Errorf("unknown backend: %v (code %q)", err, errdefs.CodeOf(err))
	}
}

func TestForExecutionMode(t *testing.T) {
	b, a, err := ForExecutionMode("guest_qemu_kvm")
	if err != nil || b.Name() != "qemu" || a != vmm.AccelKVM {
		t.Errorf("guest_qemu_kvm: %v %q %v", b, a, err)
	}
	if _, _, err := ForExecutionMode("guest_firecracker"); errdefs.CodeOf(err) != errdefs.CodeInvalidArgument {
		t.Errorf("guest_firecracker: %v", err)
	}
}

// What callers rely on from every backend this build has.
func TestBackendsKeepTheContract(t *testing.T) {
	modes := map[string]string{}
	for _, b := range known {
		if _, err := ByName(b.Name()); err != nil {
			t.Errorf("%s: %v", b.Name(), err)
		}
		// Layers and set-aside disks are found by the disk's extension.
		if d := b.DiskFile(); filepath.Ext(d) == "" || filepath.Base(d) != d {
			t.Errorf("%s: disk file %q needs an extension and no directory", b.Name(), d)
		}
		for _, a := range []vmm.Accel{vmm.AccelKVM, vmm.AccelTCG} {
			m := b.ExecutionMode(a)
			if other, dup := modes[m]; dup {
				t.Errorf("execution mode %q of %s %s is also %s's", m, b.Name(), a, other)
			}
			modes[m] = b.Name() + " " + string(a)
		}
		if len(b.HostTools()) == 0 {
			t.Errorf("%s names no host tools", b.Name())
		}
	}
}
