package pyro

import (
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/vmm"
)

func TestGuestClockReport(t *testing.T) {
	for _, c := range []struct {
		v    vmm.AccelVerdict
		want string
	}{
		{vmm.AccelVerdict{Accel: vmm.AccelKVM}, "kvm-clock"},
		{vmm.AccelVerdict{Accel: vmm.AccelTCG, GuestTSCKHz: 2445405, TSCChecked: true}, "tsc (host TSC 2445405 kHz)"},
		{vmm.AccelVerdict{Accel: vmm.AccelTCG, TSCReason: "the host TSC is not invariant (no nonstop_tsc)", TSCChecked: true}, "jiffies (the host TSC is not invariant"},
		{vmm.AccelVerdict{Accel: vmm.AccelTCG, Reason: "forced by PYRO_ACCEL/WithAccel"}, "not when PYRO_ACCEL forces one"},
	} {
		if got := guestClock(c.v); !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q, want %q in it", c.v, got, c.want)
		}
	}
}
