package qemu

import (
	"runtime"
	"slices"
	"testing"
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
