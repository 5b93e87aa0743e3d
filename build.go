package pyro

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/env"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/vm"
)

// Build step limits.
const (
	DefaultStepTimeoutSeconds = 1800
	buildStepOutput           = 8 << 20 // per stream and step, kept for the error's tail
	buildShutdownWait         = 30 * time.Second
)

// BuildEnvironmentRequest defines a custom environment: a base plus setup
// steps, saved as a new local environment named Name. With EnvFile the
// definition comes from that environment file instead (see
// LoadEnvironmentFile), and Name defaults to the file's own name.
type BuildEnvironmentRequest struct {
	Name string `json:"name"`
	// From is the base: a catalog name, an image reference (pulled on first
	// use, as for Run) or a custom environment built earlier.
	From string `json:"from"`
	// Steps run in order, each by /bin/sh -lc as root in /; the first one
	// that fails stops the build and nothing is saved.
	Steps []string `json:"steps"`
	// Network gives the steps outbound network access (policy egress);
	// off by default.
	Network bool `json:"network,omitempty"`
	// DiskSize is the root filesystem size in bytes (at least the base's);
	// the steps already run with it. 0 keeps the base's size.
	DiskSize int64 `json:"disk_size,omitempty"`
	// StepTimeoutSeconds bounds each step (default 1800, at most 3600).
	StepTimeoutSeconds int `json:"step_timeout_seconds,omitempty"`
	// VCPUCount and MemMiB size the machine the steps run in (defaults 1
	// and 1024); the saved environment does not depend on them.
	VCPUCount int `json:"vcpu_count,omitempty"`
	MemMiB    int `json:"mem_mib,omitempty"`
	// Force builds again even when the same definition is cached.
	Force   bool   `json:"force,omitempty"`
	EnvFile string `json:"env_file,omitempty"`
}

// BuildEnvironmentResult is a built (or cached) custom environment.
type BuildEnvironmentResult struct {
	Environment string `json:"environment"`
	Version     string `json:"version"`
	Digest      string `json:"digest"` // sha256 of the definition over its base
	// Cached: the same definition over the same base was already built;
	// nothing ran.
	Cached bool `json:"cached"`
	// SnapshotReady: its fast-start snapshot exists (made after a build).
	SnapshotReady bool                 `json:"snapshot_ready"`
	DurationMs    int64                `json:"duration_ms"`
	Manifest      *EnvironmentManifest `json:"manifest"`
}

// BuildEnvironment makes a custom environment: it boots the base, runs the
// steps in order (their output is reported as progress, stage "step"),
// saves the guest's disk as a new environment with its own digest and
// makes its fast-start snapshot. An unchanged definition over an unchanged
// base is a cache hit. A failing step is a build_step_failed error naming
// the step, its exit code and the end of its output; nothing is saved.
func (c *Client) BuildEnvironment(ctx context.Context, req BuildEnvironmentRequest) (*BuildEnvironmentResult, error) {
	start := time.Now()
	if req.EnvFile != "" {
		f, err := c.LoadEnvironmentFile(req.EnvFile)
		if err != nil {
			return nil, err
		}
		if req.From != "" || len(req.Steps) > 0 || req.Network || req.DiskSize != 0 {
			return nil, errdefs.InvalidArgument("env_file", "the file defines the environment: give either env_file or from/steps/network/disk_size, not both")
		}
		if req.Name == "" {
			req.Name = f.Name
		}
		req.From, req.Steps, req.Network, req.DiskSize = f.From, f.Steps, f.Network, f.DiskSize
	}
	if req.StepTimeoutSeconds == 0 {
		req.StepTimeoutSeconds = DefaultStepTimeoutSeconds
	}
	switch {
	case req.StepTimeoutSeconds < 1 || req.StepTimeoutSeconds > MaxTimeoutSeconds:
		return nil, errdefs.InvalidArgument("step_timeout_seconds", "%d is out of range [1, %d]", req.StepTimeoutSeconds, MaxTimeoutSeconds)
	case req.VCPUCount != 0 && (req.VCPUCount < MinVCPUCount || req.VCPUCount > MaxVCPUCount):
		return nil, errdefs.InvalidArgument("vcpu_count", "%d is out of range [%d, %d]", req.VCPUCount, MinVCPUCount, MaxVCPUCount)
	case req.MemMiB != 0 && (req.MemMiB < MinMemMiB || req.MemMiB > MaxMemMiB):
		return nil, errdefs.InvalidArgument("mem_mib", "%d is out of range [%d, %d]", req.MemMiB, MinMemMiB, MaxMemMiB)
	}
	def := env.BuildDef{From: req.From, Steps: req.Steps, Network: req.Network, DiskSize: req.DiskSize,
		StepTimeoutSeconds: req.StepTimeoutSeconds, VCPUCount: req.VCPUCount, MemMiB: req.MemMiB, EnvFile: req.EnvFile}
	if err := env.ValidateBuildName(req.Name); err != nil {
		return nil, err
	}
	if err := def.Validate(); err != nil {
		return nil, err
	}
	if req.From == req.Name {
		return nil, errdefs.InvalidArgument("from", "%q cannot be built from itself", req.Name)
	}
	e, cached, err := c.buildEnv(ctx, req.Name, def, req.Force)
	if err != nil {
		return nil, err
	}
	res := &BuildEnvironmentResult{Environment: req.Name, Version: e.Manifest.Version, Digest: e.Manifest.Digest, Cached: cached, Manifest: toManifest(e.Manifest)}
	if !cached {
		c.report(ctx, ProgressEvent{Stage: "snapshot", Message: "preparing a fast-start snapshot of " + req.Name})
	}
	if p, err := c.Prepare(ctx, PrepareRequest{Environment: req.Name}); err == nil {
		res.SnapshotReady = p.SnapshotReady
	} else if ctx.Err() != nil {
		return nil, ctx.Err()
	} else {
		c.log.Debug("no fast-start snapshot after the build", "env", req.Name, "err", err)
	}
	res.DurationMs = time.Since(start).Milliseconds()
	return res, nil
}

// buildEnv ensures the base, then builds (or finds) name.
func (c *Client) buildEnv(ctx context.Context, name string, def env.BuildDef, force bool) (*env.Environment, bool, error) {
	if buildDepth(ctx) > maxBuildDepth {
		return nil, false, errdefs.InvalidArgument("from", "%s: custom environments built from each other more than %d deep (a cycle?)", name, maxBuildDepth)
	}
	if def.Network && c.noBuildNetwork {
		return nil, false, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeNetworkDisabled,
			"building %s needs a network for its steps, and guests get none here (the MCP server runs with --no-network)", name)
	}
	ctx = context.WithValue(ctx, buildDepthKey{}, buildDepth(ctx)+1)
	base, err := c.ensureEnv(ctx, def.From)
	if err != nil {
		return nil, false, err
	}
	run := func(ctx context.Context, backing, scratch, image string) error {
		overlay := filepath.Join(scratch, "disk.overlay")
		if err := c.runBuildSteps(ctx, base, def, backing, overlay); err != nil {
			return err
		}
		c.report(ctx, ProgressEvent{Stage: "build", Message: "saving the image"})
		return c.flattenDisk(ctx, overlay, image)
	}
	return c.envs.Build(c.envCtx(ctx), name, def, base, force, run)
}

// flattenDisk writes the disk a build's overlay stands for (its writes over
// the base image) as one raw image at image; nothing is left there on error.
func (c *Client) flattenDisk(ctx context.Context, overlay, image string) (err error) {
	f, err := os.OpenFile(image, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(image)
		}
	}()
	return c.backend.ExportRaw(ctx, overlay, f)
}

type buildDepthKey struct{}

const maxBuildDepth = 8

func buildDepth(ctx context.Context) int {
	n, _ := ctx.Value(buildDepthKey{}).(int)
	return n
}

// rebuildStale builds a custom environment again from its recorded
// definition when its image is gone or was made with another agent (the
// catalog and images re-pack the same way).
func (c *Client) rebuildStale(ctx context.Context, name string) (*env.Environment, bool, error) {
	def, ok := c.envs.BuiltDefinition(name)
	if !ok {
		return nil, false, nil
	}
	c.report(ctx, ProgressEvent{Stage: "build", Message: name + " is not built for this pyro: building it again from its definition"})
	if def.StepTimeoutSeconds == 0 {
		def.StepTimeoutSeconds = DefaultStepTimeoutSeconds
	}
	e, _, err := c.buildEnv(ctx, name, def, false)
	return e, true, err
}

// runBuildSteps boots the base with its writes in overlay (over backing),
// runs the steps, empties /workspace and shuts the guest down so that its
// writes are all in the overlay.
func (c *Client) runBuildSteps(ctx context.Context, base *env.Environment, def env.BuildDef, backing, overlay string) error {
	c.reapOrphans()
	verdict := c.accelFor(ctx, base.KernelPath)
	spec := vm.Spec{
		KernelPath: base.KernelPath, RootfsPath: backing, OverlayPath: overlay,
		VCPUs: orDefault(def.VCPUCount, DefaultVCPUCount), MemMiB: orDefault(def.MemMiB, DefaultMemMiB),
		Accel: verdict.Accel, GuestTSCKHz: verdict.GuestTSCKHz, Kind: "build", Network: runPolicy(def.Network),
	}
	c.report(ctx, ProgressEvent{Stage: "build", Message: "booting " + def.From})
	v, err := vm.Boot(ctx, c.backend, c.vmsDir(), spec, c.log)
	if err != nil {
		return err
	}
	defer v.Close()
	for i, step := range def.Steps {
		c.report(ctx, ProgressEvent{Stage: "build", Message: fmt.Sprintf("step %d/%d: %s", i+1, len(def.Steps), oneLine(step, 200))})
		if err := c.runStep(ctx, v, def.From, i, len(def.Steps), step, def.StepTimeoutSeconds); err != nil {
			return err
		}
	}
	// Workspaces seed /workspace themselves: leave it empty.
	if err := c.runStep(ctx, v, def.From, -1, len(def.Steps), "cd /workspace && rm -rf -- ./* ./.[!.]* ./..?* && sync", 300); err != nil {
		return err
	}
	// A clean power-off: the agent flushes, and QEMU has written the overlay.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), buildShutdownWait)
	defer cancel()
	if err := v.Agent().Shutdown(sctx); err != nil {
		c.log.Debug("build shutdown", "vm", v.ID, "err", err)
	}
	select {
	case <-v.Exited():
	case <-sctx.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	return v.Close()
}

// runStep runs one step, reporting its output line by line.
func (c *Client) runStep(ctx context.Context, v *vm.VM, from string, i, n int, step string, timeoutSec int) error {
	lines := &lineSplitter{emit: func(l string) { c.report(ctx, ProgressEvent{Stage: "step", Message: l}) }}
	timeout := time.Duration(timeoutSec) * time.Second
	// The agent client bounds the call (timeout + agentclient.Grace).
	r, err := v.Agent().ExecIO(ctx, agentproto.ExecRequest{
		Argv: []string{"/bin/sh", "-lc", step}, Cwd: "/", TimeoutMs: timeout.Milliseconds(),
		MaxStdout: buildStepOutput, MaxStderr: buildStepOutput,
	}, agentclient.ExecStreams{Stdout: lines, Stderr: lines})
	lines.flush()
	what := fmt.Sprintf("step %d of %d (%s)", i+1, n, oneLine(step, 120))
	if i < 0 {
		what = "the final clean-up of /workspace"
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return errdefs.Wrap(ctx.Err(), errdefs.ErrCanceled, errdefs.CodeCanceled, "build canceled during %s; nothing was saved", what)
	case errors.Is(err, agentclient.ErrNoAnswer):
		return errdefs.New(errdefs.ErrDeadlineExceeded, errdefs.CodeBuildStepFailed,
			"%s did not answer within its timeout (%d s); nothing was saved", what, timeoutSec)
	case err != nil:
		return err
	case r.TimedOut:
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeBuildStepFailed,
			"%s timed out after %d s (raise step_timeout_seconds / --step-timeout-seconds); nothing was saved%s", what, timeoutSec, outputTail(r.Stdout, r.Stderr))
	case r.ExitCode != 0 || r.Signal != "":
		return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeBuildStepFailed,
			"%s exited with %d; nothing was saved%s", what, guestexec.Outcome(r.ExitCode, r.Signal, false), outputTail(r.Stdout, r.Stderr)).
			WithNext("\nfix the step and build again (try it out first: %s)", "pyro workspace create "+from, "workspace_create")
	}
	return nil
}

// outputTail is the end of a failed step's output, printable only (the
// guest is untrusted: no terminal escapes reach the user).
func outputTail(stdout, stderr []byte) string {
	var b strings.Builder
	for _, s := range []struct {
		name string
		out  []byte
	}{{"stdout", stdout}, {"stderr", stderr}} {
		if len(bytes.TrimSpace(s.out)) == 0 {
			continue
		}
		ls := strings.Split(strings.TrimRight(string(s.out), "\n"), "\n")
		if len(ls) > 15 {
			ls = ls[len(ls)-15:]
		}
		fmt.Fprintf(&b, "\n--- %s (last lines) ---", s.name)
		for _, l := range ls {
			b.WriteString("\n" + printable(l, 300))
		}
	}
	return b.String()
}

// lineSplitter turns output chunks into printable lines.
type lineSplitter struct {
	buf  []byte
	emit func(string)
}

// Write takes one chunk of output (it is the step's stdout and stderr).
func (l *lineSplitter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(printable(string(l.buf[:i]), 500))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 4096 { // a very long line: show it in pieces
		l.emit(printable(string(l.buf), 500))
		l.buf = nil
	}
	return len(p), nil
}

func (l *lineSplitter) flush() {
	if len(l.buf) > 0 {
		l.emit(printable(string(l.buf), 500))
		l.buf = nil
	}
}

// printable drops control characters (escape sequences, carriage returns
// of progress meters) and cuts s to max runes.
func printable(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if r == '\t' {
			r = ' '
		}
		if !unicode.IsPrint(r) && r != ' ' {
			continue
		}
		if n == max {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func orDefault(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func oneLine(s string, max int) string {
	return printable(strings.Join(strings.Fields(s), " "), max)
}

// IsCatalogEnvironment reports whether name is one of the catalog's
// environments (debian:12, ...), built locally from Debian packages.
func IsCatalogEnvironment(name string) bool { return env.IsCatalogName(name) }
