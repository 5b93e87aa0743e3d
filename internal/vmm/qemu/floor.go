package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/vmm"
)

// BootFloor boots cfg's kernel and image raw (FloorArgs: init as PID 1, no
// agent channel, writes discarded) until QEMU exits, and returns QEMU's
// wall time and the guest's console.
func (Backend) BootFloor(ctx context.Context, cfg vmm.Config, init string) (time.Duration, string, error) {
	bin, err := LookPath()
	if err != nil {
		return 0, "", err
	}
	dir, err := os.MkdirTemp("", "pyro-bench-")
	if err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	console := filepath.Join(dir, "console.log")
	cfg.DiskMode = vmm.DiskEphemeral
	cmd := exec.CommandContext(ctx, bin, FloorArgs(cfg, init, console)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, "", fmt.Errorf("floor boot: %v: %s", err, strings.TrimSpace(string(out)))
	}
	text, _ := os.ReadFile(console)
	return d, string(text), nil
}
