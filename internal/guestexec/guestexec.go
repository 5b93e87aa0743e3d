// Package guestexec builds the one request a shell command takes to a guest.
//
// Every exec path sends an agentproto.ExecRequest, built here and nowhere
// else: one-shot runs (internal/oneshot), workspace commands and low-level
// VMs (package pyro -> internal/workspace -> the supervisor, which passes it
// on as it is), and the workspace manager's own scripts. The guest agent
// turns Shell into its argv (`/bin/sh -lc`, or its kept login
// environment). The answer is an agentclient.ExecResult on every path.
package guestexec

import (
	"slices"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/secrets"
)

// MaxEnvBytes bounds the variables one command sets.
const MaxEnvBytes = 64 << 10

// Shell is the guest request of one shell command: run as `/bin/sh -lc
// command` runs it, in cwd ("" = /workspace), with env (NAME=VALUE) added to
// the guest's default environment. timeout 0 means none (background
// commands only); maxOutput caps stdout and stderr each.
func Shell(command string, env []string, cwd string, timeout time.Duration, maxOutput int64) agentproto.ExecRequest {
	if cwd == "" {
		cwd = agentproto.WorkspaceRoot
	}
	return agentproto.ExecRequest{
		Shell: command, Env: env, Cwd: cwd,
		TimeoutMs: timeout.Milliseconds(), MaxStdout: maxOutput, MaxStderr: maxOutput,
	}
}

// Env checks a caller's variables (--env) and returns them as sorted
// NAME=VALUE.
func Env(vars map[string]string) ([]string, error) {
	out := make([]string, 0, len(vars))
	size := 0
	for k, v := range vars {
		if err := secrets.ValidateName("env", k); err != nil {
			return nil, err
		}
		if strings.ContainsRune(v, 0) {
			return nil, errdefs.InvalidArgument("env", "the value of %s contains a NUL byte", k)
		}
		size += len(k) + len(v) + 1
		out = append(out, k+"="+v)
	}
	if size > MaxEnvBytes {
		return nil, errdefs.InvalidArgument("env", "%d bytes of variables, at most %d", size, MaxEnvBytes)
	}
	slices.Sort(out)
	return out, nil
}

// AddSecretEnv adds the variables that carry secrets (NAME=VALUE, from
// secrets.Set.Env) to req, refusing a name the caller's env sets too.
func AddSecretEnv(req *agentproto.ExecRequest, vars []string) error {
	for _, e := range vars {
		name, _, _ := strings.Cut(e, "=")
		if slices.ContainsFunc(req.Env, func(v string) bool { return strings.HasPrefix(v, name+"=") }) {
			return errdefs.InvalidArgument("env", "%s is set by both env and secret_env: set it once", name)
		}
	}
	req.Env = append(req.Env, vars...)
	return nil
}
