package bench

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/pyrovm/pyro"
)

// PauseReport holds the pause, resume and fork figures; times in
// milliseconds, ratios against the floor of the same run.
type PauseReport struct {
	Runs               int     `json:"runs"`
	PauseMs            []int64 `json:"pause_ms"`
	ResumeExecMs       []int64 `json:"resume_to_first_exec_ms"` // exec on a paused workspace, until it answers
	Fork1Ms            []int64 `json:"fork_1_ms"`               // until the fork answers
	Fork4Ms            []int64 `json:"fork_4_ms"`               // until all four answer
	PauseMedianMs      int64   `json:"pause_median_ms"`
	ResumeExecMedianMs int64   `json:"resume_to_first_exec_median_ms"`
	Fork1MedianMs      int64   `json:"fork_1_median_ms"`
	Fork4MedianMs      int64   `json:"fork_4_median_ms"`
	ResumeFloorRatio   float64 `json:"resume_floor_ratio"`
	Fork1FloorRatio    float64 `json:"fork_1_floor_ratio"`
	Fork4FloorRatio    float64 `json:"fork_4_floor_ratio"`
	StateBytes         int64   `json:"state_bytes"`                   // saved memory and devices of an idle workspace
	RunningIdleMemMiB  int64   `json:"running_idle_host_mem_mib"`     // supervisor + VMM RSS
	RunningIdleAnonMiB int64   `json:"running_idle_host_anon_mib"`    // of which anonymous: this workspace's own pages
	RunningIdlePssMiB  int64   `json:"running_idle_host_pss_mib"`     // shared pages divided among their users
	AfterJobMemMiB     int64   `json:"after_400mib_job_host_mem_mib"` // 10 s after a job that touched 400 MiB ended
	// The marginal cost of one more idle workspace when MarginalN run at
	// once: PSS summed over all of them / N (shared binaries and libraries
	// count once), and the host's MemAvailable drop while N-1 more started,
	// / (N-1) (everything the host gave them: also page tables and kernel
	// memory; noisy on a shared host).
	MarginalN               int         `json:"marginal_workspaces"`
	MarginalPssMiB          int64       `json:"marginal_pss_mib_per_workspace"`
	MarginalMemAvailDropMiB int64       `json:"marginal_mem_available_drop_mib_per_workspace"`
	PausedHostMemMiB        int64       `json:"paused_host_mem_mib"` // what runs for a paused one: nothing
	FloorMedianMsUsed       int64       `json:"floor_median_ms"`
	GuestMemMiB             int         `json:"guest_mem_mib"`
	Environment             string      `json:"environment"`
	ExecutionMode           string      `json:"execution_mode"`
	ColdFallbacks           int         `json:"cold_fallbacks"` // resumes that booted cold instead of restoring (should be 0)
	Split                   ResumeSplit `json:"split"`          // medians: where a resume and a fork of one go
}

// PauseResume measures, on one workspace of env: pause, resume up to the
// first exec's answer, fork of 1 and of 4 (until every fork answers), the
// saved state's size and the host memory of the workspace running idle and
// paused.
func PauseResume(ctx context.Context, c *pyro.Client, env string, memMiB, runs int, floorMs int64, progress func(string)) (*PauseReport, error) {
	w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: env, MemMiB: memMiB})
	if err != nil {
		return nil, err
	}
	defer c.DeleteWorkspace(context.WithoutCancel(ctx), w.WorkspaceID)
	id := w.WorkspaceID
	r := &PauseReport{Runs: runs, FloorMedianMsUsed: floorMs, GuestMemMiB: memMiB, Environment: env, ExecutionMode: w.ExecutionMode}
	time.Sleep(2 * time.Second) // idle
	idle := workspaceMemory(c.StateDir(), id)
	r.RunningIdleMemMiB, r.RunningIdleAnonMiB, r.RunningIdlePssMiB = idle.RSS>>10, idle.Anon>>10, idle.PSS>>10
	if err := marginal(ctx, c, env, memMiB, id, r); err != nil {
		return nil, err
	}
	// A job that touches 400 MiB and ends; free page reporting gives the
	// memory back to the host within seconds.
	if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: "dd if=/dev/zero of=/dev/null bs=400M count=1 2>/dev/null"}); err != nil {
		return nil, err
	}
	time.Sleep(10 * time.Second)
	r.AfterJobMemMiB = workspaceRSS(c.StateDir(), id) >> 10
	var resumeCall, firstExec, vmmStart, agent, sync, forkSave, forkBoot []int64
	for i := 0; i < runs; i++ {
		s := time.Now()
		p, err := c.PauseWorkspace(ctx, id)
		if err != nil {
			return nil, err
		}
		r.PauseMs = append(r.PauseMs, time.Since(s).Milliseconds())
		r.StateBytes = p.StateBytes
		if i == 0 {
			r.PausedHostMemMiB = workspaceRSS(c.StateDir(), id) >> 10
		}
		s = time.Now()
		res, err := c.ResumeWorkspace(ctx, id)
		if err != nil {
			return nil, err
		}
		if !res.Restored {
			r.ColdFallbacks++
		}
		resumed := time.Now()
		if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: id, Command: "true"}); err != nil {
			return nil, err
		}
		r.ResumeExecMs = append(r.ResumeExecMs, time.Since(s).Milliseconds())
		resumeCall = append(resumeCall, resumed.Sub(s).Milliseconds())
		firstExec = append(firstExec, time.Since(resumed).Milliseconds())
		if up := lastLogInts(c.StateDir(), id, "vm up"); up != nil {
			vmmStart, agent, sync = append(vmmStart, up["vmm_start_ms"]), append(agent, up["agent_ms"]), append(sync, up["sync_ms"])
		}
		for _, n := range []int{1, 4} {
			s = time.Now()
			f, err := c.ForkWorkspace(ctx, pyro.ForkWorkspaceRequest{Workspace: id, Count: n})
			if err != nil {
				return nil, err
			}
			d := time.Since(s).Milliseconds()
			if n == 1 {
				r.Fork1Ms = append(r.Fork1Ms, d)
				if saved := lastLogInts(c.StateDir(), id, "saved for forks"); saved != nil {
					forkSave = append(forkSave, saved["ms"])
				}
				if up := lastLogInts(c.StateDir(), f.Forks[0].WorkspaceID, "vm up"); up != nil {
					forkBoot = append(forkBoot, up["boot_ms"])
				}
			} else {
				r.Fork4Ms = append(r.Fork4Ms, d)
			}
			for _, fw := range f.Forks {
				if _, err := c.DeleteWorkspace(ctx, fw.WorkspaceID); err != nil {
					return nil, err
				}
			}
		}
		if progress != nil {
			progress("pause round " + itoa(i+1) + "/" + itoa(runs) + ": pause " + itoa(int(r.PauseMs[i])) + " ms, resume+exec " +
				itoa(int(r.ResumeExecMs[i])) + " ms, fork 1 " + itoa(int(r.Fork1Ms[i])) + " ms, fork 4 " + itoa(int(r.Fork4Ms[i])) + " ms")
		}
	}
	r.PauseMedianMs, r.ResumeExecMedianMs = Median(r.PauseMs), Median(r.ResumeExecMs)
	r.Split = ResumeSplit{ResumeCallMs: Median(resumeCall), FirstExecMs: Median(firstExec), VMMStartMs: Median(vmmStart),
		AgentMs: Median(agent), SyncMs: Median(sync), ForkSaveMs: Median(forkSave), ForkBootMs: Median(forkBoot)}
	r.Fork1MedianMs, r.Fork4MedianMs = Median(r.Fork1Ms), Median(r.Fork4Ms)
	if floorMs > 0 {
		r.ResumeFloorRatio = float64(r.ResumeExecMedianMs) / float64(floorMs)
		r.Fork1FloorRatio = float64(r.Fork1MedianMs) / float64(floorMs)
		r.Fork4FloorRatio = float64(r.Fork4MedianMs) / float64(floorMs)
	}
	return r, nil
}

// marginalWorkspaces is how many idle workspaces run at once for the
// marginal figures (the issue asks for 4-8).
const marginalWorkspaces = 6

// marginal starts marginalWorkspaces-1 more idle workspaces beside first,
// fills r's marginal figures and deletes them again.
func marginal(ctx context.Context, c *pyro.Client, env string, memMiB int, first string, r *PauseReport) (err error) {
	ids := []string{first}
	defer func() {
		for _, id := range ids[1:] {
			if _, derr := c.DeleteWorkspace(context.WithoutCancel(ctx), id); derr != nil && err == nil {
				err = derr
			}
		}
	}()
	before := memAvailableKiB()
	for len(ids) < marginalWorkspaces {
		w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: env, MemMiB: memMiB})
		if err != nil {
			return err
		}
		ids = append(ids, w.WorkspaceID)
	}
	time.Sleep(2 * time.Second) // idle, as the single one was
	var pss int64
	for _, id := range ids {
		pss += workspaceMemory(c.StateDir(), id).PSS
	}
	n := int64(len(ids))
	r.MarginalN = len(ids)
	r.MarginalPssMiB = pss / n >> 10
	r.MarginalMemAvailDropMiB = (before - memAvailableKiB()) / (n - 1) >> 10
	return nil
}

// memAvailableKiB is the host's MemAvailable.
func memAvailableKiB() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	return kibField(b, "MemAvailable:")
}

func itoa(n int) string { return strconv.Itoa(n) }
