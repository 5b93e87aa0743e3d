package pyro_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/testutil"
)

// Readiness goes missing -> warm through Prepare, Doctor counts a named
// environment that is not warm as a problem, a new guest agent makes the
// install stale, and Prepare with Force re-converts and remakes the snapshot.
func TestReadinessAndForce(t *testing.T) {
	testutil.RequiresVM(t)
	host := testutil.Registry(t, "", "")
	img := testutil.Image(t, nil, testutil.BusyboxLayer(t))
	ref := host + "/pyro-test/ready:1"
	testutil.Push(t, ref, img)
	bin := testutil.Binaries(t)
	state, cache := t.TempDir(), testutil.CacheWithKernel(t)
	client := func(agent string) *pyro.Client {
		c, err := pyro.New(pyro.WithStateDir(state), pyro.WithCacheDir(cache), pyro.WithAgentPath(agent), pyro.WithInsecureRegistries(host))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := client(bin + "/pyro-agent")
	t.Cleanup(func() { testutil.AssertNoLeaks(t, state) })
	ctx := t.Context()
	readiness := func(c *pyro.Client) *pyro.EnvironmentReadiness {
		t.Helper()
		r, err := c.EnvironmentReadiness(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	if r := readiness(c); r.State != pyro.ReadinessMissing || r.Fix != "pyro prepare "+ref || !strings.Contains(r.Reason, "is not pulled") {
		t.Fatalf("before any pull: %+v", r)
	}
	doc, err := c.Doctor(ctx, pyro.DoctorRequest{Environments: []string{ref}})
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Readiness) != 1 || doc.Readiness[0].State != pyro.ReadinessMissing || doc.OK || !hasProblem(doc, ref+" is missing") {
		t.Fatalf("doctor before pull: ok=%v readiness=%+v problems=%q", doc.OK, doc.Readiness, doc.Problems)
	}

	p, err := c.Prepare(ctx, pyro.PrepareRequest{Environment: ref})
	if err != nil || !p.SnapshotReady {
		t.Fatalf("prepare: %v %+v", err, p)
	}
	r := readiness(c)
	if r.State != pyro.ReadinessWarm || r.SnapshotID != p.SnapshotID || r.Fix != "" || r.MemMiB != pyro.DefaultMemMiB {
		t.Fatalf("after prepare: %+v (prepared %s)", r, p.SnapshotID)
	}
	if doc, err = c.Doctor(ctx, pyro.DoctorRequest{Environments: []string{ref}}); err != nil || hasProblem(doc, ref) || doc.Readiness[0].State != pyro.ReadinessWarm {
		t.Fatalf("doctor after prepare: %v %+v %q", err, doc.Readiness, doc.Problems)
	}
	stateInode := func() uint64 {
		t.Helper()
		st, err := os.Stat(filepath.Join(cache, "snapshots", p.SnapshotID, "state"))
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	before := stateInode()

	// Another agent (the same program plus a trailing byte, still a valid
	// ELF): the converted image is stale until it is converted again.
	other := filepath.Join(t.TempDir(), "pyro-agent")
	b, err := os.ReadFile(bin + "/pyro-agent")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := readiness(client(other)); r.State != pyro.ReadinessStale || !strings.Contains(r.Reason, "different guest agent") {
		t.Fatalf("with another agent: %+v", r)
	}

	forced, err := c.Prepare(ctx, pyro.PrepareRequest{Environment: ref, Force: true})
	if err != nil || !forced.SnapshotReady {
		t.Fatalf("prepare --force: %v %+v", err, forced)
	}
	if forced.SnapshotID == p.SnapshotID && stateInode() == before {
		t.Error("prepare --force kept the old snapshot")
	}
	if r := readiness(c); r.State != pyro.ReadinessWarm || r.SnapshotID != forced.SnapshotID {
		t.Fatalf("after prepare --force: %+v", r)
	}
	if res, err := c.Run(ctx, pyro.RunRequest{Environment: ref, Command: "echo ok"}); err != nil || res.Stdout != "ok\n" {
		t.Fatalf("run after prepare --force: %v %+v", err, res)
	}
}

func hasProblem(r *pyro.DoctorReport, prefix string) bool {
	for _, p := range r.Problems {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}
