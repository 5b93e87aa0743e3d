package pyro_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// publishBase pushes debian:12-base of the shared cache to a registry in
// this process, as a team would once, and returns the registry host and
// the published manifest.
func publishBase(t testing.TB) (string, *pyro.EnvironmentManifest) {
	t.Helper()
	testutil.RequiresVM(t)
	bin := testutil.Binaries(t)
	host := testutil.Registry(t, "", "")
	pub, err := pyro.New(pyro.WithStateDir(t.TempDir()), pyro.WithAgentPath(bin+"/pyro-agent"),
		pyro.WithInsecureRegistries(host), pyro.WithEnvRegistry(""))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pub.PullEnvironment(t.Context(), pyro.PullEnvironmentRequest{Environment: "debian:12-base"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := pub.PushEnvironment(t.Context(), pyro.PushEnvironmentRequest{Environment: "debian:12-base", Reference: host + "/pyro/debian:12-base"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != m.Version || r.RootfsBytes <= 0 || r.RootfsBytes >= m.Rootfs.Size {
		t.Fatalf("push: %+v", r)
	}
	return host, m
}

// A host with an empty cache and no way to build (no mmdebstrap, no
// dpkg-query, no compiler) runs debian:12-base from the environment
// registry, with its guest kernel, and from its fast-start snapshot next.
func TestPublishedEnv(t *testing.T) {
	host, pm := publishBase(t)
	testutil.PathWithout(t, testutil.LocalBuilders...)
	bin := testutil.Binaries(t)
	state, cache := t.TempDir(), t.TempDir()
	logs := &logBuffer{}
	c, err := pyro.New(pyro.WithStateDir(state), pyro.WithCacheDir(cache), pyro.WithAgentPath(bin+"/pyro-agent"),
		pyro.WithInsecureRegistries(host), pyro.WithEnvRegistry(host+"/pyro"),
		pyro.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })

	res, err := c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12-base", Command: "uname -r", TimeoutSeconds: 120})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Stdout != pm.Kernel.Release+"\n" {
		t.Fatalf("uname -r: %+v, want %s", res, pm.Kernel.Release)
	}
	m, err := c.InspectEnvironment(t.Context(), "debian:12-base")
	if err != nil || m.Published == nil || m.Published.Reference != host+"/pyro/debian:12-base" || m.Rootfs.SHA256 != pm.Rootfs.SHA256 {
		t.Fatalf("inspect: %v %+v", err, m)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "bases", "*")); len(left) > 0 {
		t.Errorf("something was bootstrapped: %v", left)
	}
	if _, err := os.Stat(filepath.Join(cache, "kernels", pm.Kernel.ConfigHash, "vmlinux")); err != nil {
		t.Errorf("kernel not in the kernel cache: %v", err)
	}
	logs.take()
	res, err = c.Run(t.Context(), pyro.RunRequest{Environment: "debian:12-base", Command: "echo again"})
	if err != nil || res.Stdout != "again\n" {
		t.Fatalf("second run: %v %+v", err, res)
	}
	if !strings.Contains(logs.take(), restoredLine) {
		t.Errorf("the second run did not start from the fast-start snapshot")
	}
}
