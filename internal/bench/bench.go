// Package bench measures pyro against the floor: a raw boot by the same VMM
// backend of the same kernel and image to power-off, with nothing of pyro's
// in it. Both are timed
// in the same run, interleaved, so host noise hits both alike.
package bench

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/vmm/backends"
)

// FloorInit is the floor guest's init: it exits at once, the kernel panics,
// and the VMM ends (QEMU: panic=-1 with -no-reboot). That is the cheapest boot-to-off
// path the image allows.
const FloorInit = "/bin/true"

// Target is what one-shot runs are measured against.
type Target struct {
	Environment string
	KernelPath  string
	RootfsPath  string
	// ExecutionMode is a warm run's execution_mode: the floor boots with
	// the backend and accelerator it names.
	ExecutionMode string
	VCPUs         int
	MemMiB        int
	PyroBin       string // the pyro CLI, run as a separate process like a user would
	Runs          int
}

// Report is the outcome; all times are wall-clock milliseconds.
type Report struct {
	Environment   string  `json:"environment"`
	ExecutionMode string  `json:"execution_mode"`
	Runs          int     `json:"runs"`
	FloorMs       []int64 `json:"floor_ms"`
	RunMs         []int64 `json:"run_ms"`
	FloorMedianMs int64   `json:"floor_median_ms"`
	RunMedianMs   int64   `json:"run_median_ms"`
	Ratio         float64 `json:"ratio"` // run median / floor median
}

// OneShot measures the floor and `pyro run ENV -- true`, interleaved.
func OneShot(ctx context.Context, t Target, progress func(string)) (*Report, error) {
	if t.Runs < 1 {
		t.Runs = 5
	}
	if _, _, err := floorBackend(t); err != nil {
		return nil, err
	}
	r := &Report{Environment: t.Environment, ExecutionMode: t.ExecutionMode, Runs: t.Runs}
	// One unmeasured round of each warms the page cache for both alike.
	if _, err := Floor(ctx, t); err != nil {
		return nil, err
	}
	if _, err := pyroRun(ctx, t); err != nil {
		return nil, err
	}
	for i := 0; i < t.Runs; i++ {
		f, err := Floor(ctx, t)
		if err != nil {
			return nil, err
		}
		p, err := pyroRun(ctx, t)
		if err != nil {
			return nil, err
		}
		r.FloorMs = append(r.FloorMs, f.Milliseconds())
		r.RunMs = append(r.RunMs, p.Milliseconds())
		if progress != nil {
			progress(fmt.Sprintf("round %d/%d: floor %d ms, pyro run %d ms", i+1, t.Runs, f.Milliseconds(), p.Milliseconds()))
		}
	}
	r.FloorMedianMs, r.RunMedianMs = Median(r.FloorMs), Median(r.RunMs)
	if r.FloorMedianMs > 0 {
		r.Ratio = float64(r.RunMedianMs) / float64(r.FloorMedianMs)
	}
	return r, nil
}

// Floor boots the image raw once and returns the wall time to the VMM's
// exit. It checks the guest really reached its init, so a broken floor
// cannot flatter pyro.
func Floor(ctx context.Context, t Target) (time.Duration, error) {
	fb, accel, err := floorBackend(t)
	if err != nil {
		return 0, err
	}
	cfg := vmm.Config{ID: "floor", RootfsPath: t.RootfsPath, KernelPath: t.KernelPath,
		VCPUs: t.VCPUs, MemMiB: t.MemMiB, Accel: accel, DiskMode: vmm.DiskEphemeral}
	d, console, err := fb.BootFloor(ctx, cfg, FloorInit)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(console, "Attempted to kill init") {
		return 0, fmt.Errorf("floor boot did not reach init; console:\n%s", console)
	}
	return d, nil
}

// floorBackend is the backend and accelerator t's execution mode names, as
// a backend that can boot a floor.
func floorBackend(t Target) (vmm.FloorBooter, vmm.Accel, error) {
	b, accel, err := backends.ForExecutionMode(t.ExecutionMode)
	if err != nil {
		return nil, "", err
	}
	fb, ok := b.(vmm.FloorBooter)
	if !ok {
		return nil, "", vmm.Unsupported(b.Name(), "booting a floor to measure against")
	}
	return fb, accel, nil
}

func pyroRun(ctx context.Context, t Target) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, t.PyroBin, "run", t.Environment,
		"--vcpu-count", fmt.Sprint(t.VCPUs), "--mem-mib", fmt.Sprint(t.MemMiB), "--", "true")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("pyro run: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// Median of xs (xs is not modified).
func Median(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
