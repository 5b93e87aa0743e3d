package mcp

import (
	"slices"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Mode narrows a server to one kind of task: a smaller tool set, and
// instructions and tool descriptions that say how the task goes. Fewer tools
// means less context spent on tool definitions and fewer wrong picks.
type Mode string

const (
	ModeReproFix   Mode = "repro-fix"   // reproduce a failure, fix it, prove the fix
	ModeInspect    Mode = "inspect"     // read and run the project, change nothing on the host
	ModeColdStart  Mode = "cold-start"  // does the project build and start from a clean checkout?
	ModeReviewEval Mode = "review-eval" // apply a proposed change and judge it by running it
)

// Modes lists the valid modes.
var Modes = []Mode{ModeReproFix, ModeInspect, ModeColdStart, ModeReviewEval}

// modeSpec is what a mode offers: its tools (a subset of workspace-full, in
// table order when served), the server instructions, and a sentence added to
// the description of the tools where the mode changes how to use them.
type modeSpec struct {
	tools        []string
	instructions string
	notes        map[string]string
}

var workspaceBasics = []string{"workspace_create", "workspace_status", "workspace_exec", "workspace_file_list", "workspace_file_read", "workspace_delete"}

var modes = map[Mode]modeSpec{
	ModeReproFix: {
		tools: append(slices.Clone(workspaceBasics), "workspace_file_write", "workspace_patch_apply", "workspace_diff",
			"workspace_export", "workspace_logs", "workspace_reset", "snapshot_create", "snapshot_list", "workspace_network_log"),
		instructions: "Task: reproduce a failure and fix it. 1) workspace_create (seeded from the project), 2) reproduce the failure " +
			"with workspace_exec and note the exact command, 3) take snapshot_create before changing anything, 4) fix with " +
			"workspace_patch_apply or workspace_file_write, 5) rerun the same command until it passes, 6) show workspace_diff and " +
			"workspace_export the patch, 7) workspace_delete.",
		notes: map[string]string{
			"workspace_exec":        "Run the failing command first, unchanged, to confirm the failure before any fix.",
			"workspace_patch_apply": "Prefer small patches; rerun the reproducing command after each one.",
			"workspace_diff":        "The diff is the fix: keep it limited to what the failure needs.",
		},
	},
	ModeInspect: {
		tools: append(slices.Clone(workspaceBasics), "workspace_summary", "workspace_diff", "vm_run", "vm_list_environments"),
		instructions: "Task: understand the project without changing it. Read files with workspace_file_list and workspace_file_read, " +
			"run read-only commands (tests, linters, --help) with workspace_exec, and answer from what you observed. Nothing is " +
			"written back to the host in this mode.",
		notes: map[string]string{
			"workspace_exec":      "Use it to observe (run tests, list, grep); changes you make stay in the VM and are not exported.",
			"workspace_file_read": "Read before you run: the answer is usually in the files.",
		},
	},
	ModeColdStart: {
		tools: append(slices.Clone(workspaceBasics), "vm_run", "vm_list_environments", "workspace_logs", "workspace_network_log",
			"service_start", "service_status", "service_logs", "service_stop", "workspace_file_write"),
		instructions: "Task: find out whether the project builds and starts from a clean checkout, and what it takes. Create a " +
			"workspace, follow the project's own instructions (README, Makefile, package files) step by step with workspace_exec, " +
			"start long-running parts with service_start and a readiness check, and report each step that failed with its " +
			"command and output. workspace_network_log says what the network refused.",
		notes: map[string]string{
			"workspace_exec":   "Run the project's documented setup and build steps one per call, exactly as documented.",
			"workspace_create": "Pick the environment the project needs (debian:12-build has git, make, gcc and python3).",
		},
	},
	ModeReviewEval: {
		tools: append(slices.Clone(workspaceBasics), "workspace_patch_apply", "workspace_diff", "workspace_summary", "workspace_reset",
			"workspace_logs"),
		instructions: "Task: judge a proposed change by running it. Create a workspace from the project, run the tests once as a " +
			"baseline with workspace_exec, apply the change with workspace_patch_apply, run the same tests again, and compare; " +
			"workspace_diff shows exactly what was applied, workspace_reset goes back to the baseline.",
		notes: map[string]string{
			"workspace_exec":        "Run the same commands before and after the change, so the results compare.",
			"workspace_patch_apply": "Apply the change under review as given; do not fix it while reviewing.",
		},
	},
}

// ParseMode validates a mode name ("" is no mode).
func ParseMode(s string) (Mode, error) {
	if s == "" {
		return "", nil
	}
	if _, ok := modes[Mode(s)]; ok {
		return Mode(s), nil
	}
	return "", errdefs.InvalidArgument("mode", "%q is not one of repro-fix, inspect, cold-start, review-eval", s)
}

// offers says whether a server with cfg offers t (before operator gates).
func (cfg Config) offers(t tool) bool {
	if cfg.Mode != "" {
		return slices.Contains(modes[cfg.Mode].tools, t.name)
	}
	return slices.Contains(t.profiles, cfg.Profile)
}

func (cfg Config) instructions() string {
	if cfg.Mode == "" {
		return instructions
	}
	return instructions + " " + modes[cfg.Mode].instructions
}
