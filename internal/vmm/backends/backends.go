// Package backends picks the VMM backend. It is the one place outside the
// backends' own packages that knows them: everything else takes a
// vmm.Backend (or its name, across a process border) and never imports a
// backend package. Adding a backend means adding its package under
// internal/vmm and one entry here.
package backends

import (
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/vmm/qemu"
)

// known are the backends this build has, the default first.
var known = []vmm.Backend{qemu.Backend{}}

// Default is the backend used when none is named: QEMU, which runs
// wherever its package installs (KVM or software emulation).
func Default() vmm.Backend { return known[0] }

// Names lists the backends this build has, the default first.
func Names() []string {
	names := make([]string, len(known))
	for i, b := range known {
		names[i] = b.Name()
	}
	return names
}

// ByName returns the backend called name; "" is the default.
func ByName(name string) (vmm.Backend, error) {
	if name == "" {
		return Default(), nil
	}
	for _, b := range known {
		if b.Name() == name {
			return b, nil
		}
	}
	return nil, errdefs.InvalidArgument("backend", "unknown VMM backend %q: this pyro has %s", name, strings.Join(Names(), ", "))
}

// ForExecutionMode returns the backend and accelerator that a result's
// execution_mode (e.g. "guest_qemu_tcg") names.
func ForExecutionMode(mode string) (vmm.Backend, vmm.Accel, error) {
	for _, b := range known {
		for _, a := range []vmm.Accel{vmm.AccelKVM, vmm.AccelTCG} {
			if b.ExecutionMode(a) == mode {
				return b, a, nil
			}
		}
	}
	return nil, "", errdefs.InvalidArgument("execution_mode", "%q names no VMM backend of this pyro (%s)", mode, strings.Join(Names(), ", "))
}
