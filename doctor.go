package pyro

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/vmm"
)

// DefaultEnvironment is used by doctor's probe boot and by examples.
const DefaultEnvironment = "debian:12"

// DoctorReport is what `pyro doctor` shows.
type DoctorReport struct {
	OK           bool              `json:"ok"`
	Problems     []string          `json:"problems"`
	Platform     PlatformInfo      `json:"platform"`
	Accelerator  AcceleratorInfo   `json:"accelerator"`
	Tools        []ToolCheck       `json:"tools"`
	Kernel       KernelStatus      `json:"kernel"`
	Environments []EnvironmentInfo `json:"environments"`
	// Readiness says how fast each environment starts (warm, cold, stale,
	// missing): the ones asked for, else every installed one.
	Readiness  []EnvironmentReadiness `json:"readiness"`
	Networking NetworkingInfo         `json:"networking"`
	StateDir   DirStatus              `json:"state_dir"`
	// MCPExportsDir is where `pyro mcp serve` lets a model export files
	// unless --exports-dir says otherwise.
	MCPExportsDir string    `json:"mcp_exports_dir"`
	CacheDir      DirStatus `json:"cache_dir"`
	// EnvRegistry is where missing catalog environments and the guest
	// kernel are pulled from first (PYRO_ENV_REGISTRY); "" = built locally.
	EnvRegistry string    `json:"env_registry"`
	Probe       ProbeBoot `json:"probe"`
	// Supervisor is the binary that runs workspace supervisors:
	// pyro-supervisor beside pyro, else pyro itself (more host memory per
	// running workspace; see WithPyroBinary).
	Supervisor string `json:"supervisor"`
}

type PlatformInfo struct {
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	HostKernel  string `json:"host_kernel"`
	CPUs        int    `json:"cpus"`
	MemTotalMiB int64  `json:"mem_total_mib"`
}

type AcceleratorInfo struct {
	Mode       string `json:"mode"` // "kvm" or "tcg"; "" until a kernel exists to probe with
	KVMDevice  bool   `json:"kvm_device"`
	KVMUsable  bool   `json:"kvm_usable"`
	Reason     string `json:"reason"`
	FromCache  bool   `json:"from_cache"`
	Forced     bool   `json:"forced"`
	VerdictFor string `json:"verdict_for,omitempty"` // host key the verdict is cached under
	// GuestClock is what guests keep time with: "kvm-clock", "tsc (host
	// TSC N kHz)" under software emulation where the host's TSC is fit,
	// else "jiffies (...)" with why (see docs/architecture.md, Guest clock).
	GuestClock string `json:"guest_clock,omitempty"`
}

type ToolCheck struct {
	Name    string `json:"name"`
	Path    string `json:"path,omitempty"`
	Version string `json:"version,omitempty"`
	OK      bool   `json:"ok"`
	Package string `json:"package"`
	Purpose string `json:"purpose"`
}

type KernelStatus struct {
	Built   bool   `json:"built"`
	Path    string `json:"path,omitempty"`
	Release string `json:"release,omitempty"`
}

// NetworkingInfo says how guests get a network. pyro runs its own
// user-mode network (no root, tap devices or firewall rules needed), so the
// policies work wherever QEMU runs.
type NetworkingInfo struct {
	UserMode bool     `json:"user_mode"` // pyro's user-mode network (gVisor netstack), built in
	Policies []string `json:"policies"`
	TunDev   bool     `json:"tun_device"` // not needed; shown for other backends
	Note     string   `json:"note"`
}

type DirStatus struct {
	Path     string `json:"path"`
	Writable bool   `json:"writable"`
}

type ProbeBoot struct {
	Ran           bool   `json:"ran"`
	OK            bool   `json:"ok"`
	Environment   string `json:"environment,omitempty"`
	BootMs        int64  `json:"boot_ms,omitempty"`
	DurationMs    int64  `json:"duration_ms,omitempty"`
	ExecutionMode string `json:"execution_mode,omitempty"`
	GuestKernel   string `json:"guest_kernel,omitempty"`
	Error         string `json:"error,omitempty"`
}

// DoctorRequest says what Doctor checks beyond the host.
type DoctorRequest struct {
	// Environments are reported with their readiness, each not warm
	// counted as a problem; nil = none (the report still lists every
	// installed environment's readiness).
	Environments []string `json:"environments,omitempty"`
}

// Doctor checks the host and, when the default environment is installed,
// boots it once. It never builds anything. Given environments, it reports
// their readiness and counts each that is not warm as a problem, with the
// command that warms it.
func (c *Client) Doctor(ctx context.Context, req DoctorRequest) (*DoctorReport, error) {
	environments := req.Environments
	r := &DoctorReport{Problems: []string{}}
	r.Platform = platform()
	r.Tools = checkTools(c.backend.HostTools())
	for _, t := range r.Tools {
		if !t.OK {
			r.Problems = append(r.Problems, fmt.Sprintf("%s is missing (%s): apt-get install -y %s", t.Name, t.Purpose, t.Package))
		}
	}
	r.StateDir = dirStatus(c.stateDir)
	r.MCPExportsDir = c.ExportsDir()
	r.CacheDir = dirStatus(c.cacheDir)
	r.EnvRegistry = c.envs.Registry()
	for _, d := range []DirStatus{r.StateDir, r.CacheDir} {
		if !d.Writable {
			r.Problems = append(r.Problems, d.Path+" is not writable: set PYRO_STATE_DIR / PYRO_CACHE_DIR to a writable directory")
		}
	}
	r.Networking = networking()
	r.Supervisor = c.supervisorBinary()

	_, kvmErr := os.Stat("/dev/kvm")
	r.Accelerator.KVMDevice = kvmErr == nil
	if k, ok := c.envs.CachedKernel(); ok {
		r.Kernel = KernelStatus{Built: true, Path: k.Path, Release: k.Release}
		v := c.accelFor(ctx, k.Path)
		r.Accelerator.Mode, r.Accelerator.KVMUsable = string(v.Accel), v.KVMUsable
		r.Accelerator.Reason, r.Accelerator.FromCache, r.Accelerator.VerdictFor = v.Reason, v.FromCache, v.HostKey
		r.Accelerator.Forced = c.accel != "auto"
		r.Accelerator.GuestClock = guestClock(v)
	} else {
		r.Accelerator.Reason = "not probed yet: the guest kernel is not built (run \"pyro env pull " + DefaultEnvironment + "\")"
	}

	envs, err := c.ListEnvironments(ctx)
	if err != nil {
		return nil, err
	}
	r.Environments = envs
	if err := c.doctorReadiness(ctx, r, environments); err != nil {
		return nil, err
	}
	installed := false
	for _, e := range envs {
		installed = installed || (e.Name == DefaultEnvironment && e.Installed)
	}
	if installed {
		r.Probe = c.probeBoot(ctx)
		if !r.Probe.OK {
			r.Problems = append(r.Problems, "probe boot failed: "+r.Probe.Error)
		}
	} else {
		r.Problems = append(r.Problems, DefaultEnvironment+" is not installed: run \"pyro env pull "+DefaultEnvironment+"\"")
	}
	r.OK = len(r.Problems) == 0
	return r, nil
}

func (c *Client) doctorReadiness(ctx context.Context, r *DoctorReport, names []string) error {
	asked := len(names) > 0
	if !asked {
		for _, e := range r.Environments {
			if e.Installed {
				names = append(names, e.Name)
			}
		}
	}
	r.Readiness = []EnvironmentReadiness{}
	for _, name := range names {
		rd, err := c.EnvironmentReadiness(ctx, name)
		if err != nil {
			return err
		}
		r.Readiness = append(r.Readiness, *rd)
		if asked && rd.State != ReadinessWarm {
			p := fmt.Sprintf("%s is %s (%s)", name, rd.State, rd.Reason)
			if rd.Fix != "" {
				p += ": run \"" + rd.Fix + "\""
			}
			r.Problems = append(r.Problems, p)
		}
	}
	return nil
}

func (c *Client) probeBoot(ctx context.Context) ProbeBoot {
	p := ProbeBoot{Ran: true, Environment: DefaultEnvironment}
	res, err := c.Run(ctx, RunRequest{Environment: DefaultEnvironment, Command: "uname -r", MemMiB: 256, TimeoutSeconds: 30})
	if err != nil {
		p.Error = errdefs.CodeOf(err) + ": " + firstLine(err.Error())
		return p
	}
	p.OK = res.ExitCode == 0
	p.BootMs, p.DurationMs, p.ExecutionMode = res.BootMs, res.DurationMs, res.ExecutionMode
	p.GuestKernel = strings.TrimSpace(res.Stdout)
	if !p.OK {
		p.Error = fmt.Sprintf("uname -r exited %d: %s", res.ExitCode, firstLine(res.Stderr))
	}
	return p
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func platform() PlatformInfo {
	p := PlatformInfo{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		p.HostKernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int64
			if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
				p.MemTotalMiB = kb / 1024
				break
			}
		}
		f.Close()
	}
	return p
}

// checkTools looks up the VMM backend's tools (the VMM first) and pyro's own.
func checkTools(vmmTools []vmm.HostTool) []ToolCheck {
	var specs []ToolCheck
	for _, t := range vmmTools {
		specs = append(specs, ToolCheck{Name: t.Name, Package: t.Package, Purpose: t.Purpose})
	}
	specs = append(specs, []ToolCheck{
		{Name: "mmdebstrap", Package: "mmdebstrap", Purpose: "builds environments"},
		{Name: "mkfs.ext4", Package: "e2fsprogs", Purpose: "builds environment images"},
		{Name: "debugfs", Package: "e2fsprogs", Purpose: "offline disk inspection"},
		{Name: "make", Package: "build-essential", Purpose: "builds the guest kernel"},
		{Name: "flex", Package: "flex", Purpose: "builds the guest kernel"},
		{Name: "bison", Package: "bison", Purpose: "builds the guest kernel"},
	}...)
	for i := range specs {
		t := &specs[i]
		p, err := exec.LookPath(t.Name)
		t.OK, t.Path = err == nil, p
	}
	if specs[0].OK {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, specs[0].Path, "--version").Output(); err == nil {
			specs[0].Version = firstLine(string(out))
		}
	}
	return specs
}

func dirStatus(dir string) DirStatus {
	d := DirStatus{Path: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err == nil {
		d.Writable = true
		f.Close()
		os.Remove(f.Name())
	}
	return d
}

func networking() NetworkingInfo {
	_, tunErr := os.Stat("/dev/net/tun")
	return NetworkingInfo{
		UserMode: true, TunDev: tunErr == nil,
		Policies: []string{string(network.PolicyOff), string(network.PolicyEgress), string(network.PolicyEgressPublish)},
		Note: "user-mode network in pyro (gVisor netstack): egress is NAT to anywhere but this host, its loopback " +
			"services, link-local addresses and metadata services; published ports bind 127.0.0.1 only; IPv4 TCP/UDP; only the gateway answers ping",
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// guestClock says what guests of verdict v keep time with.
func guestClock(v vmm.AccelVerdict) string {
	switch {
	case v.Accel == vmm.AccelKVM:
		return "kvm-clock"
	case v.GuestTSCKHz > 0:
		return fmt.Sprintf("tsc (host TSC %d kHz)", v.GuestTSCKHz)
	case v.TSCReason != "":
		return "jiffies (" + v.TSCReason + "); each command steps the clock to the host's"
	default:
		return "jiffies (the host TSC is measured only with the accelerator probe, not when PYRO_ACCEL forces one); each command steps the clock to the host's"
	}
}
