package qemu

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/pyrovm/pyro/internal/vmm"
)

func TestMeasureTSC(t *testing.T) {
	flags, err := cpuFlags()
	if err != nil {
		t.Fatal(err)
	}
	khz, reason := MeasureTSC()
	invariant := slices.Contains(flags, "constant_tsc") && slices.Contains(flags, "nonstop_tsc")
	if runtime.GOARCH != "amd64" || !invariant {
		if khz != 0 || reason == "" {
			t.Fatalf("host without an invariant TSC: %d kHz, reason %q", khz, reason)
		}
		return
	}
	if khz == 0 {
		t.Fatalf("no TSC measured on a host with an invariant TSC: %s", reason)
	}
	// Two measurements agree to well within what the per-call clock step
	// corrects (0.1%).
	again, _ := MeasureTSC()
	if d := again - khz; d*1000 > khz || -d*1000 > khz {
		t.Errorf("two measurements disagree: %d vs %d kHz", khz, again)
	}
	t.Logf("host TSC: %d kHz, then %d kHz", khz, again)
}

func TestTSCKernelArgs(t *testing.T) {
	if got := tscKernelArgs(0); got != nil {
		t.Errorf("no TSC: %v", got)
	}
	want := []string{"tsc_early_khz=2994372", "tsc=reliable"}
	if got := tscKernelArgs(2994372); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A TCG verdict cached before the guest clock existed gets the host TSC
// measured once and cached with it; a KVM verdict is left as it is.
func TestCachedVerdictGetsTSC(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, accel := range []vmm.Accel{vmm.AccelTCG, vmm.AccelKVM} {
		cache := filepath.Join(dir, string(accel)+".json")
		old, _ := json.Marshal(vmm.AccelVerdict{Accel: accel, HostKey: hostKey(kernel), Reason: "cached"})
		if err := os.WriteFile(cache, old, 0o644); err != nil {
			t.Fatal(err)
		}
		v := DetectAccel(t.Context(), kernel, cache)
		if v.Accel != accel || v.Reason != "cached" {
			t.Fatalf("%s: the cached verdict was not used: %+v", accel, v)
		}
		if got, want := v.TSCChecked, accel == vmm.AccelTCG; got != want {
			t.Errorf("%s: TSC checked %v, want %v", accel, got, want)
		}
		if accel == vmm.AccelKVM {
			continue
		}
		if (v.GuestTSCKHz > 0) == (v.TSCReason != "") {
			t.Errorf("either a frequency or a reason: %+v", v)
		}
		again := DetectAccel(t.Context(), kernel, cache)
		if !again.FromCache || again.GuestTSCKHz != v.GuestTSCKHz || !again.TSCChecked {
			t.Errorf("the measurement was not cached: %+v, then %+v", v, again)
		}
	}
}
