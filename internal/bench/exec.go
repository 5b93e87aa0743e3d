package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/workspace"
)

// ExecReport splits `pyro workspace exec ID -- true` (a separate CLI
// process, as a user runs it) into where its time goes; medians in
// milliseconds, each measured on its own, interleaved round by round.
type ExecReport struct {
	Runs int `json:"runs"`
	// CLIMs is the whole CLI exec; CLIStartMs a CLI process that does
	// nothing (`pyro --version`): process start and Go runtime.
	CLIMs      int64 `json:"cli_exec_ms"`
	CLIStartMs int64 `json:"cli_start_ms"`
	// SDKMs is Client.ExecWorkspace in this process: record, secrets,
	// supervisor call, history. SupervisorMs is the supervisor's exec API
	// called directly; AgentMs the supervisor's call to the guest agent
	// within it; GuestMs the command's own life in the guest (spawn to
	// exit of `/bin/sh -lc true`), as the agent measures it.
	SDKMs        int64 `json:"sdk_exec_ms"`
	SupervisorMs int64 `json:"supervisor_exec_ms"`
	AgentMs      int64 `json:"agent_call_ms"`
	GuestMs      int64 `json:"guest_command_ms"`
	// FloorRatio is CLIMs over the floor (a raw QEMU boot).
	FloorRatio float64 `json:"cli_exec_floor_ratio"`
}

// Parts names the stages of ExecReport with their share of the CLI exec:
// CLI process start, the rest of the CLI and SDK (client side), the
// supervisor's API, the channel and agent, the guest command.
func (r *ExecReport) Parts() []Part {
	return []Part{
		{"cli process start", r.CLIStartMs},
		{"cli + sdk (client side)", max(0, r.CLIMs-r.CLIStartMs-r.SupervisorMs)},
		{"supervisor api", max(0, r.SupervisorMs-r.AgentMs)},
		{"channel + agent", max(0, r.AgentMs-r.GuestMs)},
		{"guest /bin/sh -lc true", r.GuestMs},
	}
}

// Part is one stage of a breakdown.
type Part struct {
	Name string `json:"name"`
	Ms   int64  `json:"ms"`
}

// Exec measures the breakdown on a running workspace ws of c.
func Exec(ctx context.Context, c *pyro.Client, pyroBin, ws string, runs int, floorMs int64) (*ExecReport, error) {
	sc := supervisor.Dial(workspace.Paths{Dir: filepath.Join(c.StateDir(), "workspaces", ws)}.Socket())
	defer sc.Close()
	var cli, start, sdk, sup, agent, guest []int64
	timed := func(f func() error) (int64, error) {
		t := time.Now()
		err := f()
		return time.Since(t).Milliseconds(), err
	}
	env := []string{"PYRO_STATE_DIR=" + c.StateDir()}
	for i := 0; i < runs; i++ {
		ms, err := timed(func() error { return command(ctx, pyroBin, env, "workspace", "exec", ws, "--", "true") })
		if err != nil {
			return nil, err
		}
		cli = append(cli, ms)
		if ms, err = timed(func() error { return command(ctx, pyroBin, env, "--version") }); err != nil {
			return nil, err
		}
		start = append(start, ms)
		if ms, err = timed(func() error {
			_, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: "true"})
			return err
		}); err != nil {
			return nil, err
		}
		sdk = append(sdk, ms)
		var res *supervisor.ExecResult
		if ms, err = timed(func() error {
			res, err = sc.Exec(ctx, supervisor.ExecRequest{ExecRequest: guestexec.Shell("true", nil, "", 30*time.Second, 1<<20), Track: true})
			return err
		}); err != nil {
			return nil, err
		}
		sup, agent, guest = append(sup, ms), append(agent, res.AgentMs), append(guest, res.DurationMs)
	}
	r := &ExecReport{Runs: runs, CLIMs: Median(cli), CLIStartMs: Median(start), SDKMs: Median(sdk),
		SupervisorMs: Median(sup), AgentMs: Median(agent), GuestMs: Median(guest)}
	if floorMs > 0 {
		r.FloorRatio = float64(r.CLIMs) / float64(floorMs)
	}
	return r, nil
}

func command(ctx context.Context, bin string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	return cmd.Run()
}
