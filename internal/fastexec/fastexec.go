// Package fastexec is the CLI's fast path: `pyro workspace exec ID -- CMD`
// on a workspace that is running and needs nothing else, run by the pyro
// binary itself without linking the rest of pyro (the MCP server, OCI
// registries, the network stack, the VMM code: ~5 ms of process start and
// as much again of cold code per call). It reads, records and prints
// through the same packages as the full CLI (store, wire, guestexec,
// cliexec), and it answers `pyro --version`. Whatever it does not take
// (other commands and flags, --json,
// -i, --background, a workspace to recover, resume or refuse, a due tidy
// pass, a refused or undeliverable call) it hands back untouched, and
// cmd/pyro runs the full CLI (pyro-full) with the same arguments.
package fastexec

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/cliexec"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
	"github.com/pyrovm/pyro/internal/vmm/backends"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// fullOnly are the environment variables whose effect only the full CLI
// knows (a backend, an accelerator, logging, an environment registry):
// with one set, every call goes there.
var fullOnly = []string{"PYRO_BACKEND", "PYRO_ACCEL", "PYRO_LOG", "PYRO_ENV_REGISTRY"}

// call is one exec the fast path takes: what it runs and where.
type call struct {
	paths   store.Paths
	request wire.ExecRequest
	redact  *secrets.Redactor
}

// Run runs args (the words after "pyro") when the fast path takes them and
// returns the exit status with handled true. handled false means nothing
// happened (nothing printed, nothing recorded, nothing run): the caller
// runs the full CLI with the same args.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int, handled bool) {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-v") {
		io.WriteString(stdout, cliexec.VersionLine())
		return 0, true
	}
	c, ok := take(args, time.Now())
	if !ok {
		return 0, false
	}
	return c.run(ctx, stdout, stderr)
}

// take parses args and checks the workspace (reading files; it may record
// a pass over every workspace that found nothing to do).
func take(args []string, now time.Time) (*call, bool) {
	if len(args) < 2 || (args[0] != "workspace" && args[0] != "ws") || args[1] != "exec" {
		return nil, false
	}
	for _, v := range fullOnly {
		if os.Getenv(v) != "" {
			return nil, false
		}
	}
	fs := pflag.NewFlagSet("exec", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var fl cliexec.Flags
	fl.Register(fs)
	if err := fs.Parse(args[2:]); err != nil || cliexec.CheckRanges(fs, cliexec.FlagRanges) != nil {
		return nil, false // usage errors and help are the full CLI's to print
	}
	words := fs.Args()
	if fs.ArgsLenAtDash() != 1 || len(words) < 2 || fl.JSON || fl.Interactive || fl.Background {
		return nil, false
	}
	secretEnv, err := cliexec.ParseSecretEnv(fl.SecretEnv)
	if err != nil {
		return nil, false
	}
	env, err := cliexec.ParseEnv(fl.Env)
	if err != nil {
		return nil, false
	}
	ereq, err := guestexec.Limits{Command: cliexec.ShellCommand(words[1:]), TimeoutSeconds: fl.TimeoutSeconds,
		MaxOutputBytes: fl.MaxOutputBytes}.Request(env, fl.Workdir)
	if err != nil {
		return nil, false
	}
	if ereq.Cwd, err = guestexec.GuestPath("cwd", ereq.Cwd); err != nil {
		return nil, false
	}
	paths, ok := ready(words[0], now)
	if !ok {
		return nil, false
	}
	set, err := secrets.Load(paths.Secrets())
	if err != nil {
		return nil, false
	}
	extra, err := set.Env(secretEnv)
	if err != nil || guestexec.AddSecretEnv(&ereq, extra) != nil {
		return nil, false
	}
	return &call{paths: paths, request: wire.ExecRequest{ExecRequest: ereq, Track: true}, redact: set.Redactor()}, true
}

// ready finds the workspace ref names and reports whether it needs nothing
// but the command: the pass over every workspace a call owes has nothing
// to do (its stamp is fresh, or every workspace is store.Quiet), and the
// workspace is recorded running by this backend, with no TTL passed and
// nothing half done, under a live supervisor of this API.
// Anything else is package workspace's to sort out (recover, resume, reap,
// refuse with the right error).
func ready(ref string, now time.Time) (store.Paths, bool) {
	stateDir := os.Getenv("PYRO_STATE_DIR")
	if stateDir == "" {
		stateDir = store.DefaultStateDir()
	}
	root := filepath.Join(stateDir, "workspaces")
	backend, err := backends.ByName("")
	if err != nil {
		return store.Paths{}, false
	}
	if stamp, ok := store.ReadTidyStamp(root); !ok || !stamp.Fresh(now) {
		// The pass a call owes first: when it has nothing to do, this
		// is it; else the full CLI does the work.
		if stamp, ok = store.QuietPass(root, backend.DiskFile(), now); !ok {
			return store.Paths{}, false
		}
		store.WriteTidyStamp(root, stamp)
	}
	r, err := store.Find(root, ref)
	if err != nil || r.MadeBy() != backend.Name() {
		return store.Paths{}, false
	}
	p := store.Paths{Dir: filepath.Join(root, r.ID), DiskFile: backend.DiskFile()}
	if r.State != store.StateRunning || !store.QuietAs(p, r, now) {
		return store.Paths{}, false
	}
	info, err := wire.ReadInfo(p.Supervisor())
	if err != nil || max(info.API, 1) != wire.APIVersion {
		return store.Paths{}, false
	}
	return p, true
}

// run sends the command, streams its output and records it as
// workspace.Manager.Exec does. Once the supervisor took the command, every
// outcome is this call's to print.
func (c *call) run(ctx context.Context, stdout, stderr io.Writer) (int, bool) {
	httpc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.paths.Socket())
		},
		DisableCompression: true,
	}}
	defer httpc.CloseIdleConnections()
	started := time.Now().UTC()
	body, err := wire.PostExec(ctx, httpc, c.request)
	if refusedOrGone(err) {
		return 0, false // the command did not start: the full CLI explains, or resumes
	}
	if err != nil {
		return cliexec.PrintError(ctx, stderr, wire.Unanswered(ctx, err)), true
	}
	defer body.Close()
	type reservation struct {
		seq int
		err error
	}
	reserved := make(chan reservation, 1)
	go func() {
		seq, err := store.RecordExecStart(c.paths, started)
		reserved <- reservation{seq, err}
	}()
	res, err := wire.ReadExec(ctx, body, agentclient.ExecStreams{Stdout: stdout, Stderr: stderr}, nil)
	rv := <-reserved
	if err == nil {
		err = rv.err
	}
	if err == nil {
		err = store.AppendHistory(c.paths, store.HistoryEntry{
			Sequence: rv.seq, Command: c.redact.String(c.request.Shell), ExitCode: res.ExitCode, TimedOut: res.TimedOut,
			DurationMs: res.DurationMs, StartedAt: started,
		})
	}
	if err != nil {
		return cliexec.PrintError(ctx, stderr, err), true
	}
	cliexec.PrintOutput(stdout, stderr, "", "", false, res.TimedOut)
	return cliexec.CommandExit(guestexec.Outcome(res.ExitCode, res.Signal, res.TimedOut)), true
}

// refusedOrGone reports an exec that did not start: the supervisor refused
// it (a pause under way, a stop...), or nobody listens on its socket.
func refusedOrGone(err error) bool {
	var refused *wire.Refused
	return errors.As(err, &refused) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}
