package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/tmc/langchaingo/tools"

	pyrotools "github.com/pyrovm/pyro/tools"
)

// VMRun is a langchaingo tool over pyro's vm_run: the input is the shell
// command, the output the result JSON (or the tool error for the model).
type VMRun struct {
	Toolset     *pyrotools.Toolset
	Environment string
}

var _ tools.Tool = VMRun{}

func (VMRun) Name() string { return "vm_run" }

func (VMRun) Description() string {
	return "Run one shell command in a fresh, disposable Linux microVM and return its exit code, stdout and stderr as JSON. Input: the command."
}

func (v VMRun) Call(ctx context.Context, input string) (string, error) {
	args, _ := json.Marshal(map[string]any{"command": input, "environment": v.Environment})
	out, err := v.Toolset.Call(ctx, "vm_run", args)
	if errors.Is(err, pyrotools.ErrTool) {
		return err.Error(), nil // the model reads the error and can retry
	}
	return out, err
}
