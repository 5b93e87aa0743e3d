package qemu

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Guest clock under TCG. A guest kernel that calibrates its TSC against
// emulated timers under software emulation gives up on it and keeps time
// with jiffies ("refined-jiffies", 4 ms), which loses ticks when the host is
// busy: a workspace was 24 s behind after 6 minutes. Under TCG QEMU's
// guest RDTSC is the host's TSC plus an offset (cpu_get_ticks in
// softmmu/cpu-timers.c), and saving a machine keeps the count it had while
// stopped, so a restore goes on from there whatever the host's TSC is now
// (also after a host reboot). Told the host's frequency (tsc_early_khz) and
// that the counter can be trusted (tsc=reliable: no watchdog against the
// lossy jiffies), the guest keeps time with the TSC: high-resolution timers,
// no drift. Only where the host's TSC runs at one rate whatever the CPU
// does (constant_tsc, nonstop_tsc).

// tscKernelArgs are the guest kernel arguments for a host TSC of khz.
func tscKernelArgs(khz int) []string {
	if khz <= 0 {
		return nil
	}
	return []string{fmt.Sprintf("tsc_early_khz=%d", khz), "tsc=reliable"}
}

// tscWindow is how long the measurement counts TSC ticks against
// CLOCK_MONOTONIC_RAW: each end is read to within a microsecond or so, a
// few ppm of this.
const tscWindow = 50 * time.Millisecond

// Plausible TSC frequencies: anything outside is a broken measurement.
const minTSCKHz, maxTSCKHz = 100_000, 10_000_000

// MeasureTSC returns the host TSC frequency in kHz, or 0 and why a guest
// cannot use it (not x86_64, no invariant TSC, implausible reading).
func MeasureTSC() (khz int, reason string) {
	if !haveTSC {
		return 0, "the host is not x86_64"
	}
	flags, err := cpuFlags()
	if err != nil {
		return 0, "cannot read the host's CPU flags: " + err.Error()
	}
	for _, f := range []string{"constant_tsc", "nonstop_tsc"} {
		if !slices.Contains(flags, f) {
			return 0, "the host TSC is not invariant (no " + f + ")"
		}
	}
	t0, c0 := tscPoint()
	time.Sleep(tscWindow)
	t1, c1 := tscPoint()
	if t1 <= t0 || c1 <= c0 {
		return 0, "the host TSC did not advance"
	}
	khz = int((float64(c1-c0)*1e6/float64(t1-t0) + 0.5))
	if khz < minTSCKHz || khz > maxTSCKHz {
		return 0, fmt.Sprintf("measured an implausible host TSC of %d kHz", khz)
	}
	return khz, ""
}

// tscPoint reads the TSC together with CLOCK_MONOTONIC_RAW (ns): of a few
// tries, the one whose clock reads around the TSC read lay closest
// together (not preempted in between).
func tscPoint() (ns int64, tsc uint64) {
	best := int64(-1)
	for range 16 {
		var a, b unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC_RAW, &a)
		c := rdtsc()
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC_RAW, &b)
		if w := b.Nano() - a.Nano(); best < 0 || w < best {
			best, ns, tsc = w, a.Nano()+w/2, c
		}
	}
	return ns, tsc
}

// cpuFlags are the first CPU's flags in /proc/cpuinfo.
func cpuFlags() ([]string, error) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "flags" {
			return strings.Fields(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("no flags line")
}
