package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/vmm"
)

// ProbeDeadline bounds the KVM probe boot. A kernel that reaches its root-mount
// panic under real KVM does so in well under a second.
const ProbeDeadline = 6 * time.Second

// DetectAccel decides between KVM and TCG. /dev/kvm is never trusted by its
// presence: a nested or paravirtualised KVM can start a guest and then hang it,
// so a real guest kernel must boot to its end under KVM within a deadline. The
// verdict is cached in cacheFile, keyed by host, QEMU and kernel; a TCG
// verdict carries the host TSC frequency its guests keep time with.
func DetectAccel(ctx context.Context, kernelPath, cacheFile string) vmm.AccelVerdict {
	key := hostKey(kernelPath)
	if b, err := os.ReadFile(cacheFile); err == nil {
		var v vmm.AccelVerdict
		if json.Unmarshal(b, &v) == nil && v.HostKey == key && (v.Accel == vmm.AccelKVM || v.Accel == vmm.AccelTCG) {
			if v.Accel == vmm.AccelKVM || v.TSCChecked {
				v.FromCache = true
				return v
			}
			// A verdict cached before the guest clock was measured.
			addTSC(&v)
			saveVerdict(cacheFile, v)
			return v
		}
	}
	v := probe(ctx, kernelPath)
	v.HostKey, v.ProbedAt = key, time.Now().UTC()
	if v.Accel == vmm.AccelTCG {
		addTSC(&v)
	}
	if ctx.Err() == nil { // an interrupted probe proves nothing
		saveVerdict(cacheFile, v)
	}
	return v
}

// addTSC measures the host TSC for a TCG verdict's guests (see tsc.go).
func addTSC(v *vmm.AccelVerdict) {
	v.GuestTSCKHz, v.TSCReason = MeasureTSC()
	v.TSCChecked = true
}

// saveVerdict writes v to cacheFile atomically; a failure only costs a
// probe next time.
func saveVerdict(cacheFile string, v vmm.AccelVerdict) {
	if b, err := json.MarshalIndent(v, "", "  "); err == nil {
		_ = os.MkdirAll(filepath.Dir(cacheFile), 0o755)
		tmp := cacheFile + fmt.Sprintf(".%d.tmp", os.Getpid())
		if os.WriteFile(tmp, b, 0o644) == nil {
			_ = os.Rename(tmp, cacheFile)
		}
	}
}

func probe(ctx context.Context, kernelPath string) vmm.AccelVerdict {
	tcg := func(reason string) vmm.AccelVerdict {
		return vmm.AccelVerdict{Accel: vmm.AccelTCG, Reason: reason + "; using software emulation (TCG)"}
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return tcg("/dev/kvm is not usable: " + err.Error())
	}
	f.Close()
	bin, err := LookPath()
	if err != nil {
		return tcg(err.Error())
	}
	dir, err := os.MkdirTemp("", "pyro-kvm-probe-")
	if err != nil {
		return tcg("cannot create probe dir: " + err.Error())
	}
	defer os.RemoveAll(dir)
	console := filepath.Join(dir, "console.log")
	// No root disk: the kernel boots to "VFS: Unable to mount root fs", panics,
	// and panic=-1 with -no-reboot ends QEMU. Reaching that line proves the
	// whole kernel boot ran under KVM.
	pctx, cancel := context.WithTimeout(ctx, ProbeDeadline)
	defer cancel()
	cmd := exec.CommandContext(pctx, bin,
		"-M", "microvm,acpi=off,rtc=on,isa-serial=on,x-option-roms=off",
		"-accel", "kvm", "-cpu", "host", "-m", "256M", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", kernelPath,
		"-append", "console=ttyS0 panic=-1 reboot=t",
		"-chardev", "file,id=console,path="+escapeOpt(console),
		"-serial", "chardev:console")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	ms := time.Since(start).Milliseconds()
	text, _ := os.ReadFile(console)
	booted := strings.Contains(string(text), "Kernel panic") || strings.Contains(string(text), "VFS:")
	switch {
	case pctx.Err() != nil:
		v := tcg(fmt.Sprintf("a probe guest under KVM did not finish booting within %s (nested or paravirtualised KVM that cannot run this guest)", ProbeDeadline))
		v.ProbeMs = ms
		return v
	case !booted:
		v := tcg(fmt.Sprintf("a probe guest under KVM failed: %v %s", err, strings.TrimSpace(string(out))))
		v.ProbeMs = ms
		return v
	}
	return vmm.AccelVerdict{Accel: vmm.AccelKVM, KVMUsable: true, ProbeMs: ms,
		Reason: fmt.Sprintf("KVM booted a probe guest in %d ms", ms)}
}

// hostKey identifies what the verdict depends on: host kernel, CPU, QEMU
// binary and guest kernel.
func hostKey(kernelPath string) string {
	h := sha256.New()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Write(u.Release[:])
		h.Write(u.Version[:])
	}
	writeCPUInfo(h)
	for _, p := range []string{Binary, kernelPath} {
		if p == Binary {
			p, _ = exec.LookPath(Binary)
		}
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintf(h, "%s|%d|%d", p, st.Size(), st.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
