package pyro_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/testutil"
)

// buildClient is a client over a private cache holding the shared kernel
// and debian:12: what the tests build never reaches the shared cache.
func buildClient(t testing.TB, opts ...pyro.Option) (*pyro.Client, string) {
	t.Helper()
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	state, cache := t.TempDir(), testutil.CacheWithEnvs(t, "debian:12")
	c, err := pyro.New(append([]pyro.Option{pyro.WithStateDir(state), pyro.WithCacheDir(cache), pyro.WithAgentPath(bin + "/pyro-agent")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	return c, cache
}

// Two steps (a file, a user) -> a new environment that run and workspaces
// see; the same definition again is a cache hit, also for a build running
// at the same time; a failing step saves nothing; prune knows builds.
func TestEnvBuild(t *testing.T) {
	c, cache := buildClient(t)
	var mu sync.Mutex
	var lines []string
	ctx := pyro.ContextWithProgress(t.Context(), func(e pyro.ProgressEvent) {
		mu.Lock()
		lines = append(lines, e.Stage+": "+e.Message)
		mu.Unlock()
	})
	req := pyro.BuildEnvironmentRequest{Name: "tb", From: "debian:12",
		Steps: []string{"echo built > /etc/marker && echo step-one-says-hi", "useradd -m builder", "echo junk > /workspace/left"}}
	// Two builds of one name at once: one builds, the other waits and reuses it.
	results := make([]*pyro.BuildEnvironmentResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i], errs[i] = c.BuildEnvironment(ctx, req) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if results[0].Cached == results[1].Cached || results[0].Version != results[1].Version || results[0].Digest != results[1].Digest {
		t.Fatalf("concurrent builds: %+v %+v", results[0], results[1])
	}
	first := results[0]
	if first.Cached {
		first = results[1] // the one that built; the other may find its snapshot still being made
	}
	if !first.SnapshotReady || !strings.HasPrefix(first.Digest, "sha256:") {
		t.Errorf("result %+v", first)
	}
	mu.Lock()
	progress := strings.Join(lines, "\n")
	mu.Unlock()
	if !strings.Contains(progress, "step: step-one-says-hi") || !strings.Contains(progress, "build: step 2/3: useradd -m builder") {
		t.Errorf("the steps' progress did not reach the caller:\n%s", progress)
	}

	if r, err := c.EnvironmentReadiness(t.Context(), "tb"); err != nil || r.State != pyro.ReadinessWarm || r.Version != first.Version {
		t.Errorf("readiness after the build: %v %+v", err, r)
	}
	res, err := c.Run(t.Context(), pyro.RunRequest{Environment: "tb", Command: "cat /etc/marker; id -un builder; ls -A /workspace | wc -l"})
	if err != nil || res.Stdout != "built\nbuilder\n0\n" || res.ExitCode != 0 {
		t.Fatalf("run in the built environment: %v %+v", err, res)
	}
	again, err := c.BuildEnvironment(t.Context(), req)
	if err != nil || !again.Cached || again.Digest != first.Digest || again.Version != first.Version {
		t.Fatalf("rebuild of an unchanged definition: %v %+v", err, again)
	}
	envs, err := c.ListEnvironments(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(envs, func(e pyro.EnvironmentInfo) bool { return e.Name == "tb" })
	if i < 0 || envs[i].Source != "build" || envs[i].Base != "debian:12" || len(envs[i].Steps) != 3 || !envs[i].Installed || envs[i].Digest != first.Digest {
		t.Fatalf("env list: %+v", envs)
	}
	m, err := c.InspectEnvironment(t.Context(), "tb")
	if err != nil || m.Build == nil || m.Build.From != "debian:12" || m.Build.BaseRootfsSHA256 == "" || m.Source != "build" {
		t.Fatalf("inspect: %v %+v", err, m)
	}

	bad := pyro.BuildEnvironmentRequest{Name: "tbad", From: "tb", Steps: []string{"touch /etc/half", "echo to-stdout; echo to-stderr >&2; exit 7"}}
	_, err = c.BuildEnvironment(t.Context(), bad)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if errdefs.CodeOf(err) != errdefs.CodeBuildStepFailed || !strings.Contains(msg, "step 2 of 2") || !strings.Contains(msg, "exited with 7") ||
		!strings.Contains(msg, "to-stdout") || !strings.Contains(msg, "to-stderr") {
		t.Fatalf("failing step: %v", err)
	}
	if _, err := c.InspectEnvironment(t.Context(), "tbad"); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Fatalf("a failed build left %q behind: %v", "tbad", err)
	}
	if builds, _ := os.ReadDir(filepath.Join(cache, "builds")); len(builds) != 1 {
		t.Errorf("builds after a failed one: %v", builds)
	}
	if tmp, _ := os.ReadDir(filepath.Join(cache, "tmp")); len(tmp) != 0 {
		t.Errorf("build directories left: %v", tmp)
	}

	ws, err := c.CreateWorkspace(t.Context(), pyro.CreateWorkspaceRequest{Environment: "tb"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ExecWorkspace(t.Context(), pyro.WorkspaceExecRequest{Workspace: ws.WorkspaceID, Command: "cat /etc/marker"})
	if err != nil || out.Stdout != "built\n" {
		t.Fatalf("workspace exec: %v %+v", err, out)
	}
	pr, err := c.PruneEnvironments(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(pr.Removed, func(it pyro.PrunedItem) bool { return it.Kind == "build" }) {
		t.Fatalf("prune removed a build a workspace uses: %+v", pr.Removed)
	}
	if _, err := c.DeleteWorkspace(t.Context(), ws.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	if pr, err = c.PruneEnvironments(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(pr.Removed, func(it pyro.PrunedItem) bool { return it.Kind == "build" && strings.HasPrefix(it.Name, "tb ") }) {
		t.Fatalf("prune kept the unused build: %+v", pr.Removed)
	}
	if _, err := c.InspectEnvironment(t.Context(), "tb"); errdefs.CodeOf(err) != errdefs.CodeEnvironmentMissing {
		t.Fatalf("after prune: %v", err)
	}
}

// A build on top of an OCI image pulled from a registry in this process:
// the image's config (Env) still applies in the built environment.
func TestEnvBuildOCI(t *testing.T) {
	host := testutil.Registry(t, "", "")
	ref := host + "/pyro-test/bb:1"
	testutil.Push(t, ref, testutil.Image(t, []string{"PATH=/bin", "GREETING=hello"}, testutil.BusyboxLayer(t)))
	c, _ := buildClient(t, pyro.WithInsecureRegistries(host))
	req := pyro.BuildEnvironmentRequest{Name: "tboci", From: ref, DiskSize: 1 << 20, VCPUCount: 2,
		// The step already sees the grown file system, and the machine asked for.
		Steps: []string{"mkdir -p /opt/x && echo \"$GREETING-built\" > /opt/x/file && df -m / | awk 'NR==2{print $2}' > /opt/x/size && " +
			"grep -c ^processor /proc/cpuinfo > /opt/x/cpus"}}
	if _, err := c.BuildEnvironment(t.Context(), req); errdefs.CodeOf(err) != errdefs.CodeInvalidArgument || !strings.Contains(err.Error(), "disk_size") {
		t.Fatalf("disk size below the base's: %v", err)
	}
	req.DiskSize = 1 << 30
	res, err := c.BuildEnvironment(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cached || res.Manifest.Image == nil || res.Manifest.Build.From != ref || res.Manifest.Rootfs.Size != 1<<30 {
		t.Fatalf("result %+v", res)
	}
	req.Force = true
	forced, err := c.BuildEnvironment(t.Context(), req)
	if err != nil || forced.Cached || forced.Version == res.Version || forced.Digest != res.Digest {
		t.Fatalf("forced rebuild: %v %+v (first %s)", err, forced, res.Version)
	}
	run, err := c.Run(t.Context(), pyro.RunRequest{Environment: "tboci", Command: "cat /opt/x/file; echo $GREETING; cat /opt/x/size /opt/x/cpus"})
	lines := strings.Fields(run.Stdout)
	if err != nil || len(lines) != 4 || lines[0] != "hello-built" || lines[1] != "hello" || lines[3] != "2" {
		t.Fatalf("run: %v %+v", err, run)
	}
	if mib, _ := strconv.Atoi(lines[2]); mib < 900 || mib > 1024 {
		t.Fatalf("the step saw a %s MiB file system, want the 1 GiB asked for", lines[2])
	}
}

// An environment file: named on create, found in the seed directory, and
// refused when malformed.
func TestEnvFile(t *testing.T) {
	c, _ := buildClient(t)
	proj := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proj, ".pyro"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(proj, pyro.ProjectEnvFile)
	body := "# test\nfrom = \"debian:12\"\nsteps = [\"echo from-file > /etc/envfile-marker\"]\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proj, "README"), []byte("project\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws, err := c.CreateWorkspace(t.Context(), pyro.CreateWorkspaceRequest{SeedPath: proj})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteWorkspace(t.Context(), ws.WorkspaceID)
	if !strings.HasPrefix(ws.Environment, "envfile-") {
		t.Fatalf("workspace environment %q, want the env file's", ws.Environment)
	}
	out, err := c.ExecWorkspace(t.Context(), pyro.WorkspaceExecRequest{Workspace: ws.WorkspaceID, Command: "cat /etc/envfile-marker README"})
	if err != nil || out.Stdout != "from-file\nproject\n" {
		t.Fatalf("exec: %v %+v", err, out)
	}
	res, err := c.BuildEnvironment(t.Context(), pyro.BuildEnvironmentRequest{EnvFile: file})
	if err != nil || !res.Cached || res.Environment != ws.Environment || res.Manifest.Build.EnvFile != file {
		t.Fatalf("the same file again: %v %+v", err, res)
	}
	// A named environment wins over the project's file.
	ws2, err := c.CreateWorkspace(t.Context(), pyro.CreateWorkspaceRequest{Environment: "debian:12", SeedPath: proj})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteWorkspace(t.Context(), ws2.WorkspaceID)
	if ws2.Environment != "debian:12" {
		t.Fatalf("environment %q", ws2.Environment)
	}

	for _, bad := range []string{"from = \"debian:12\"\n", "steps = [\"true\"]\n", "from = \"debian:12\"\nsteps = [\"true\"]\nimage = \"x\"\n", "from = [\n"} {
		if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := c.CreateWorkspace(t.Context(), pyro.CreateWorkspaceRequest{EnvFile: file})
		if errdefs.CodeOf(err) != errdefs.CodeInvalidArgument || !strings.Contains(err.Error(), "env_file") {
			t.Errorf("file %q: %v", bad, err)
		}
	}
}

// A custom environment made with another guest agent is built again from
// its recorded definition (its base re-packed first) on its next use.
func TestEnvRebuildOnAgent(t *testing.T) {
	c, cache := buildClient(t)
	first, err := c.BuildEnvironment(t.Context(), pyro.BuildEnvironmentRequest{Name: "tr", From: "debian:12", Steps: []string{"echo again > /etc/marker"}})
	if err != nil {
		t.Fatal(err)
	}
	// Another agent build: the same program with other bytes at its end.
	agent, err := os.ReadFile(filepath.Join(testutil.Binaries(t), "pyro-agent"))
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "pyro-agent")
	if err := os.WriteFile(other, append(agent, "\x00another build"...), 0o755); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	c2, err := pyro.New(pyro.WithStateDir(state), pyro.WithCacheDir(cache), pyro.WithAgentPath(other))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var msgs []string
	ctx := pyro.ContextWithProgress(t.Context(), func(e pyro.ProgressEvent) {
		mu.Lock()
		msgs = append(msgs, e.Message)
		mu.Unlock()
	})
	res, err := c2.Run(ctx, pyro.RunRequest{Environment: "tr", Command: "cat /etc/marker"})
	if err != nil || res.Stdout != "again\n" {
		t.Fatalf("run after the agent changed: %v %+v", err, res)
	}
	m, err := c2.InspectEnvironment(t.Context(), "tr")
	if err != nil || m.Version == first.Version || m.Digest == first.Digest || m.AgentSHA256 == first.Manifest.AgentSHA256 {
		t.Fatalf("not rebuilt: %v %+v (first %s %s)", err, m, first.Version, first.Digest)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.ContainsFunc(msgs, func(s string) bool { return strings.Contains(s, "building it again from its definition") }) {
		t.Errorf("no progress said why: %q", msgs)
	}
}

// The cost of asking for an environment that is already built: the
// definition's key over the installed base, and the lookup (the first
// build is reported as first_build_s).
func BenchmarkEnvBuildCached(b *testing.B) {
	c, _ := buildClient(b)
	req := pyro.BuildEnvironmentRequest{Name: "tbench", From: "debian:12", Steps: []string{"echo bench > /etc/bench"}}
	first, err := c.BuildEnvironment(b.Context(), req)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := c.BuildEnvironment(b.Context(), req)
		if err != nil || !res.Cached {
			b.Fatalf("%v %+v", err, res)
		}
	}
	b.ReportMetric(float64(first.DurationMs)/1000, "first_build_s")
}

// A client that gives guests no network refuses builds whose steps ask for
// one, before anything boots (also a stale build's rebuild, same path).
func TestEnvBuildNoNetwork(t *testing.T) {
	c, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithCacheDir(t.TempDir()), pyro.WithNoBuildNetwork())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.BuildEnvironment(t.Context(), pyro.BuildEnvironmentRequest{Name: "nn", From: "debian:12", Network: true, Steps: []string{"true"}})
	if errdefs.CodeOf(err) != errdefs.CodeNetworkDisabled {
		t.Fatalf("%v, want network_disabled", err)
	}
}
