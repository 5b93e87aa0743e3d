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
	"path"
	"slices"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/secrets"
	"golang.org/x/sys/unix"
)

// Defaults and limits of a command's timeout and output cap, on every face.
const (
	DefaultTimeoutSeconds = 30
	MaxTimeoutSeconds     = 3600
	DefaultMaxOutputBytes = 1 << 20
	MaxMaxOutputBytes     = 16 << 20
)

// Limits are the settings every exec shares: the shell command, its
// timeout and its output cap. Zero values take the defaults.
type Limits struct {
	Command        string
	TimeoutSeconds int
	MaxOutputBytes int64
}

// WithDefaults fills zero values and checks ranges, naming the field at fault.
func (l Limits) WithDefaults() (Limits, error) {
	if l.TimeoutSeconds == 0 {
		l.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if l.MaxOutputBytes == 0 {
		l.MaxOutputBytes = DefaultMaxOutputBytes
	}
	switch {
	case strings.TrimSpace(l.Command) == "":
		return l, errdefs.InvalidArgument("command", "is empty; give the shell command to run in the guest")
	case l.TimeoutSeconds < 1 || l.TimeoutSeconds > MaxTimeoutSeconds:
		return l, errdefs.InvalidArgument("timeout_seconds", "%d is out of range [1, %d]", l.TimeoutSeconds, MaxTimeoutSeconds)
	case l.MaxOutputBytes < 0 || l.MaxOutputBytes > MaxMaxOutputBytes:
		return l, errdefs.InvalidArgument("max_output_bytes", "%d is out of range [0, %d]", l.MaxOutputBytes, MaxMaxOutputBytes)
	}
	return l, nil
}

// Request checks l, fills its defaults and builds the guest request of
// the command, with the caller's variables (env) in cwd ("" = /workspace).
func (l Limits) Request(env map[string]string, cwd string) (agentproto.ExecRequest, error) {
	l, err := l.WithDefaults()
	if err != nil {
		return agentproto.ExecRequest{}, err
	}
	vars, err := Env(env)
	if err != nil {
		return agentproto.ExecRequest{}, err
	}
	return Shell(l.Command, vars, cwd, time.Duration(l.TimeoutSeconds)*time.Second, l.MaxOutputBytes), nil
}

// GuestPath turns a user path (relative to /workspace, or absolute under
// it) into a clean absolute guest path, refusing anything that leaves it.
// Symlinks are checked in the guest, where they live.
func GuestPath(field, p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", errdefs.InvalidArgument(field, "contains a NUL byte")
	}
	if p == "" || p == "." {
		return agentproto.WorkspaceRoot, nil
	}
	// Check before joining: path.Join would resolve the ".." away.
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", Outside(field, p)
		}
	}
	if !path.IsAbs(p) {
		p = path.Join(agentproto.WorkspaceRoot, p)
	}
	c := path.Clean(p)
	if c != agentproto.WorkspaceRoot && !strings.HasPrefix(c, agentproto.WorkspaceRoot+"/") {
		return "", Outside(field, p)
	}
	return c, nil
}

// Outside is the error of a path that leaves /workspace.
func Outside(field, p string) error {
	return errdefs.New(errdefs.ErrInvalidArgument, errdefs.CodePathOutsideWorkspace,
		"%s: %q is outside /workspace: paths must be relative to /workspace or absolute under it", field, p)
}

// TimeoutExitCode is the exit code reported for a command that hit its timeout.
const TimeoutExitCode = 124

// Outcome is the exit code every face reports: the command's own, 128+N when
// a signal killed it (as a shell reports it), 124 when it hit its timeout.
func Outcome(exitCode int, signal string, timedOut bool) int {
	switch {
	case timedOut:
		return TimeoutExitCode
	case signal != "" && exitCode < 0:
		return 128 + int(unix.SignalNum("SIG"+signal))
	}
	return exitCode
}

// Quote quotes s as one word for /bin/sh, whatever it holds.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

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
