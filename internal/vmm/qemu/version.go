package qemu

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/vmm"
)

// versionRecord caches `qemu-system-x86_64 --version` for one binary, so
// that asking costs a stat, not a process start.
type versionRecord struct {
	Binary  string `json:"binary"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	Version string `json:"version"`
}

// Version returns the first line of QEMU's --version output, e.g. "QEMU
// emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". It is cached
// in cacheFile, keyed by the binary's path, size and mtime.
func Version(ctx context.Context, cacheFile string) (string, error) {
	bin, err := LookPath()
	if err != nil {
		return "", err
	}
	st, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	want := versionRecord{Binary: bin, Size: st.Size(), MtimeNs: st.ModTime().UnixNano()}
	if b, err := os.ReadFile(cacheFile); err == nil {
		var r versionRecord
		if json.Unmarshal(b, &r) == nil && r.Version != "" {
			got := r
			got.Version = ""
			if got == want {
				return r.Version, nil
			}
		}
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(vctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line == "" {
		return "", fmt.Errorf("%s --version printed nothing", bin)
	}
	want.Version = line
	if b, err := json.Marshal(want); err == nil {
		_ = os.MkdirAll(filepath.Dir(cacheFile), 0o755)
		tmp := fmt.Sprintf("%s.%d.tmp", cacheFile, os.Getpid())
		if os.WriteFile(tmp, b, 0o644) == nil {
			_ = os.Rename(tmp, cacheFile)
		}
	}
	return line, nil
}

// HostID identifies what a KVM guest's saved state depends on beyond QEMU:
// the host CPU (model and feature flags: the guest has "-cpu host") and the
// host kernel (KVM itself).
func HostID() string {
	h := sha256.New()
	writeCPUInfo(h)
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Write(u.Release[:])
		h.Write(u.Version[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// writeCPUInfo writes the first CPU's model name and flags lines to w.
func writeCPUInfo(w interface{ Write([]byte) (int, error) }) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "model name") || strings.HasPrefix(line, "flags") {
			_, _ = w.Write([]byte(line))
		}
		if line == "" {
			break // first CPU is enough
		}
	}
}

// MachineDigest identifies the machine Args(cfg) describes apart from file
// paths and names: devices and their order, CPU, memory, kernel command
// line. A saved machine can only be restored into the same one, so this
// goes into snapshot keys: a change to the arguments makes new snapshots
// by itself.
func MachineDigest(cfg vmm.Config) string {
	cfg.ID, cfg.RuntimeDir, cfg.KernelPath, cfg.RootfsPath = "x", "/x", "/x/kernel", "/x/rootfs"
	cfg.DiskMode, cfg.OverlayPath, cfg.Saveable, cfg.Restore = vmm.DiskEphemeral, "", false, nil
	if cfg.Network != nil {
		cfg.Network = &vmm.NetDevice{MAC: cfg.Network.MAC}
	}
	h := sha256.New()
	for _, a := range Args(cfg, "/x/agent.sock", "/x/console.log") {
		h.Write([]byte(a))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
