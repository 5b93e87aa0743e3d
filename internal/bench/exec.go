package bench

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/workspace"
)

// ExecReport splits `pyro workspace exec ID -- true` (a separate CLI
// process, as a user runs it) into where its time goes; medians, each
// measured on its own, interleaved round by round. Times are in
// microseconds: the parts are a few milliseconds each.
type ExecReport struct {
	Runs int `json:"runs"`
	// CLIUs is the whole CLI exec (pyro runs a ready workspace's exec
	// itself); CLIStartUs the pyro process doing nothing (`pyro
	// --version`): process start and Go runtime; FrontUs the CLI's own
	// part, the median of each round's CLI exec less its supervisor exec:
	// the process, its flags, the record and the history. FullStartUs is
	// the complete CLI doing nothing (`pyro-full --version`): what the
	// hand-off adds to every other command.
	CLIUs       int64 `json:"cli_exec_us"`
	CLIStartUs  int64 `json:"cli_start_us"`
	FrontUs     int64 `json:"cli_front_us"`
	FullStartUs int64 `json:"full_cli_start_us"`
	// SDKUs is Client.ExecWorkspace in this process: record, secrets,
	// supervisor call, history. SupervisorUs is the supervisor's exec API
	// called directly; AgentUs the supervisor's call to the guest agent
	// within it. Both stream the output, as the CLI does.
	SDKUs        int64 `json:"sdk_exec_us"`
	SupervisorUs int64 `json:"supervisor_exec_us"`
	AgentUs      int64 `json:"agent_call_us"`
	// The agent's own split of its call (agentproto.ExecTiming): request
	// to command planned (cwd, login environment), planned to process
	// started (pipes, cgroup, fork and exec), the process
	// until its exit was reaped, the output drained, the durability flush
	// of the workspace's filesystem, and the whole call in the agent.
	GuestPlanUs   int64 `json:"guest_plan_us"`
	GuestStartUs  int64 `json:"guest_start_us"`
	GuestRunUs    int64 `json:"guest_run_us"`
	GuestOutputUs int64 `json:"guest_output_us"`
	GuestSyncUs   int64 `json:"guest_sync_us"`
	GuestTotalUs  int64 `json:"guest_total_us"`
	// SupervisorAPIUs and ChannelUs are medians of per-call differences:
	// the supervisor's own part (HTTP, command table) and the channel
	// (virtio-serial, yamux, frames) between the host and the agent.
	SupervisorAPIUs int64 `json:"supervisor_api_us"`
	ChannelUs       int64 `json:"channel_us"`
	// FloorRatio is CLIUs over the floor (a raw QEMU boot).
	FloorRatio float64 `json:"cli_exec_floor_ratio"`
	Parts      []Part  `json:"parts"`
}

// Part is one stage of a breakdown.
type Part struct {
	Name string `json:"name"`
	Us   int64  `json:"us"`
}

// parts names the stages of r: CLI process start, the rest of the CLI's
// own part (flags, record, history, output), the supervisor's API, the channel, the agent before
// and after the command, the command's own life in the guest, and the
// durability flush.
func (r *ExecReport) parts() []Part {
	return []Part{
		{"cli process start", r.CLIStartUs},
		{"cli (flags, record, output)", max(0, r.FrontUs-r.CLIStartUs)},
		{"supervisor (connect, api)", r.SupervisorAPIUs},
		{"channel (serial, yamux)", r.ChannelUs},
		{"agent: plan (cwd, login env)", r.GuestPlanUs},
		{"agent: spawn (fork, exec)", r.GuestStartUs},
		{"guest process sh -c true", r.GuestRunUs},
		{"agent: output, answer", max(0, r.GuestTotalUs-r.GuestPlanUs-r.GuestStartUs-r.GuestRunUs-r.GuestSyncUs)},
		{"durability sync (syncfs)", r.GuestSyncUs},
	}
}

// Exec measures the breakdown on a running workspace ws of c; pyroBin is
// the pyro CLI (pyro-full beside it is timed too).
func Exec(ctx context.Context, c *pyro.Client, pyroBin, ws string, runs int, floorMs int64) (*ExecReport, error) {
	sock := workspace.Paths{Dir: filepath.Join(c.StateDir(), "workspaces", ws)}.Socket()
	fullBin := filepath.Join(filepath.Dir(pyroBin), "pyro-full")
	var cli, front, start, fullStart, sdk, sup, agent, api, channel []int64
	var gPlan, gStart, gRun, gOut, gSync, gTotal []int64
	timed := func(f func() error) (int64, error) {
		t := time.Now()
		err := f()
		return time.Since(t).Microseconds(), err
	}
	env := []string{"PYRO_STATE_DIR=" + c.StateDir()}
	for i := 0; i < runs; i++ {
		us, err := timed(func() error { return command(ctx, pyroBin, env, "workspace", "exec", ws, "--", "true") })
		if err != nil {
			return nil, err
		}
		cli = append(cli, us)
		if us, err = timed(func() error { return command(ctx, pyroBin, env, "--version") }); err != nil {
			return nil, err
		}
		start = append(start, us)
		if us, err = timed(func() error { return command(ctx, fullBin, env, "--version") }); err != nil {
			return nil, err
		}
		fullStart = append(fullStart, us)
		// Streamed, as the CLI asks for it (live output).
		if us, err = timed(func() error {
			_, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: ws, Command: "true", Stdout: io.Discard, Stderr: io.Discard})
			return err
		}); err != nil {
			return nil, err
		}
		sdk = append(sdk, us)
		var res *supervisor.ExecResult
		if us, err = timed(func() error {
			// A new connection each time, as every CLI process makes one.
			sc := supervisor.Dial(sock)
			defer sc.Close()
			res, err = sc.ExecStream(ctx, supervisor.ExecRequest{ExecRequest: guestexec.Shell("true", nil, "", 30*time.Second, 1<<20), Track: true},
				agentclient.ExecStreams{Stdout: io.Discard, Stderr: io.Discard})
			return err
		}); err != nil {
			return nil, err
		}
		sup, agent = append(sup, us), append(agent, res.AgentUs)
		front = append(front, max(0, cli[i]-us))
		api = append(api, max(0, us-res.AgentUs))
		if g := res.Guest; g != nil {
			gPlan, gStart, gRun, gOut = append(gPlan, g.PlanUs), append(gStart, g.StartUs), append(gRun, g.RunUs), append(gOut, g.OutputUs)
			gSync, gTotal = append(gSync, g.SyncUs), append(gTotal, g.TotalUs)
			channel = append(channel, max(0, res.AgentUs-g.TotalUs))
		}
	}
	r := &ExecReport{Runs: runs, CLIUs: Median(cli), CLIStartUs: Median(start), FrontUs: Median(front), FullStartUs: Median(fullStart), SDKUs: Median(sdk),
		SupervisorUs: Median(sup), AgentUs: Median(agent), SupervisorAPIUs: Median(api), ChannelUs: Median(channel),
		GuestPlanUs: Median(gPlan), GuestStartUs: Median(gStart), GuestRunUs: Median(gRun), GuestOutputUs: Median(gOut),
		GuestSyncUs: Median(gSync), GuestTotalUs: Median(gTotal)}
	if floorMs > 0 {
		r.FloorRatio = float64(r.CLIUs) / 1000 / float64(floorMs)
	}
	r.Parts = r.parts()
	return r, nil
}

func command(ctx context.Context, bin string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	return cmd.Run()
}
