package pyro

import (
	"context"
	"time"
)

// PrepareRequest warms one environment for a machine size (defaults: 1 vCPU,
// 1024 MiB, the size runs and workspaces use unless told otherwise).
type PrepareRequest struct {
	Environment string `json:"environment"`
	VCPUCount   int    `json:"vcpu_count,omitempty"`
	MemMiB      int    `json:"mem_mib,omitempty"`
	// Network prepares the machine with a network device, the one that
	// networked runs and workspaces (any policy but off) restore.
	Network bool `json:"network,omitempty"`
	// Force rebuilds (or re-pulls) the environment from scratch and remakes
	// the fast-start snapshot, even when both are present and intact.
	Force bool `json:"force,omitempty"`
}

// PrepareResult says what is ready.
type PrepareResult struct {
	Environment   string `json:"environment"`
	Version       string `json:"version"`
	VCPUCount     int    `json:"vcpu_count"`
	MemMiB        int    `json:"mem_mib"`
	ExecutionMode string `json:"execution_mode"` // e.g. guest_qemu_tcg
	// SnapshotReady: the fast-start snapshot of this machine exists, so the
	// next run or workspace create restores it instead of booting.
	SnapshotReady bool   `json:"snapshot_ready"`
	SnapshotID    string `json:"snapshot_id,omitempty"`
	Note          string `json:"note,omitempty"` // why the snapshot is not ready
	DurationMs    int64  `json:"duration_ms"`
}

// Prepare makes the next run or workspace create of an environment fast: it
// builds or repairs the environment if needed, probes the accelerator, and
// makes the fast-start snapshot of the machine. Calling it again is cheap.
func (c *Client) Prepare(ctx context.Context, req PrepareRequest) (*PrepareResult, error) {
	start := time.Now()
	rr, err := RunRequest{Environment: req.Environment, VCPUCount: req.VCPUCount, MemMiB: req.MemMiB, Network: req.Network}.machineWithDefaults()
	if err != nil {
		return nil, err
	}
	if req.Force {
		if _, err := c.PullEnvironment(ctx, PullEnvironmentRequest{Environment: rr.Environment, Force: true}); err != nil {
			return nil, err
		}
	}
	e, spec, err := c.runMachine(ctx, rr)
	if err != nil {
		return nil, err
	}
	if req.Force {
		if err := c.oneshot().Drop(ctx, e, spec); err != nil {
			return nil, err
		}
	}
	res := &PrepareResult{
		Environment: rr.Environment, Version: e.Manifest.Version, VCPUCount: rr.VCPUCount, MemMiB: rr.MemMiB,
		ExecutionMode: c.backend.ExecutionMode(spec.Accel),
	}
	snap := c.oneshot().AwaitSnapshot(ctx, e, spec) // waits for another process making it
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if snap != nil {
		res.SnapshotReady, res.SnapshotID = true, snap.Meta.ID
	} else {
		res.Note = "no fast-start snapshot now (making it failed recently: set PYRO_LOG=debug to see why); runs boot cold meanwhile"
	}
	res.DurationMs = time.Since(start).Milliseconds()
	return res, nil
}
