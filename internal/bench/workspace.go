package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pyrovm/pyro"
)

// WorkspaceReport holds the workspace figures; times in milliseconds.
type WorkspaceReport struct {
	Runs              int     `json:"runs"`
	SeedBytes         int64   `json:"seed_bytes"`
	CreateMs          []int64 `json:"create_ms"`
	ExecMs            []int64 `json:"exec_true_ms"`
	CreateMedianMs    int64   `json:"create_median_ms"`
	ExecMedianMs      int64   `json:"exec_true_median_ms"`
	CreateFloorRatio  float64 `json:"create_floor_ratio"`
	ExecFloorRatio    float64 `json:"exec_true_floor_ratio"`
	IdleHostMemMiB    int64   `json:"idle_host_mem_mib"` // supervisor + VMM resident memory of one idle workspace
	FloorMedianMsUsed int64   `json:"floor_median_ms"`
}

// Workspaces measures create (with a seed of seedBytes) and `exec true`
// round trips through the SDK, and the host memory of an idle workspace.
func Workspaces(ctx context.Context, c *pyro.Client, env string, runs int, seedBytes int64, floorMs int64) (*WorkspaceReport, error) {
	seed, err := os.MkdirTemp("", "pyro-bench-seed-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(seed)
	if err := writeRandomFiles(seed, seedBytes); err != nil {
		return nil, err
	}
	r := &WorkspaceReport{Runs: runs, SeedBytes: seedBytes, FloorMedianMsUsed: floorMs}
	for i := 0; i < runs; i++ {
		start := time.Now()
		w, err := c.CreateWorkspace(ctx, pyro.CreateWorkspaceRequest{Environment: env, SeedPath: seed})
		if err != nil {
			return nil, err
		}
		r.CreateMs = append(r.CreateMs, time.Since(start).Milliseconds())
		for j := 0; j < 3; j++ {
			s := time.Now()
			if _, err := c.ExecWorkspace(ctx, pyro.WorkspaceExecRequest{Workspace: w.WorkspaceID, Command: "true"}); err != nil {
				c.DeleteWorkspace(ctx, w.WorkspaceID)
				return nil, err
			}
			r.ExecMs = append(r.ExecMs, time.Since(s).Milliseconds())
		}
		if i == 0 {
			time.Sleep(2 * time.Second) // idle
			r.IdleHostMemMiB = workspaceRSS(c.StateDir(), w.WorkspaceID) >> 10
		}
		if _, err := c.DeleteWorkspace(ctx, w.WorkspaceID); err != nil {
			return nil, err
		}
	}
	r.CreateMedianMs, r.ExecMedianMs = Median(r.CreateMs), Median(r.ExecMs)
	if floorMs > 0 {
		r.CreateFloorRatio = float64(r.CreateMedianMs) / float64(floorMs)
		r.ExecFloorRatio = float64(r.ExecMedianMs) / float64(floorMs)
	}
	return r, nil
}

func writeRandomFiles(dir string, total int64) error {
	const per = 1 << 20
	for i := int64(0); i*per < total; i++ {
		b := make([]byte, min(per, total-i*per))
		if _, err := rand.Read(b); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("blob-%03d.bin", i)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// workspaceRSS sums VmRSS (KiB) of the processes whose command line names
// the workspace's dir: its supervisor and its VMM.
func workspaceRSS(stateDir, id string) int64 { return workspaceMemory(stateDir, id).RSS }

// memUse is the host memory of a workspace's processes (supervisor and VMM)
// in KiB, counted three ways: RSS (every resident page, also the shared
// file pages of the QEMU and pyro binaries and libraries, which every
// workspace maps), Anon (pages only this workspace has: guest RAM, heaps,
// TCG's code cache) and PSS (shared pages divided among their users).
type memUse struct{ RSS, Anon, PSS int64 }

func workspaceMemory(stateDir, id string) memUse {
	dir := filepath.Join(stateDir, "workspaces", id)
	var total memUse
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmd), dir) {
			continue
		}
		status, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		rollup, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "smaps_rollup"))
		total.RSS += kibField(status, "VmRSS:")
		total.Anon += kibField(status, "RssAnon:")
		total.PSS += kibField(rollup, "Pss:")
	}
	return total
}

// kibField reads "NAME: N kB" out of a /proc file.
func kibField(text []byte, name string) int64 {
	for _, line := range strings.Split(string(text), "\n") {
		var kb int64
		if n, _ := fmt.Sscanf(line, name+" %d kB", &kb); n == 1 {
			return kb
		}
	}
	return 0
}
