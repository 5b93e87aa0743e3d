package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

const ownerFile = "owner.json"

// owner records which host process owns a VM dir, so that a later pyro process
// can tell a live VM from one whose owner died (kill -9, crash, power loss).
type owner struct {
	VMID       string    `json:"vm_id"`
	Kind       string    `json:"kind"`
	OwnerPid   int       `json:"owner_pid"`
	OwnerStart uint64    `json:"owner_start"` // /proc/PID/stat starttime: guards against pid reuse
	VMMPid     int       `json:"vmm_pid,omitempty"`
	VMMStart   uint64    `json:"vmm_start,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// ValidID reports whether s is shaped like an id from NewID (VMs and
// workspaces): 12 lower-case hex digits. (No regexp: compiling one costs
// every CLI process that looks at its workspaces ~40 us.)
func ValidID(s string) bool { return len(s) == 12 && strings.Trim(s, "0123456789abcdef") == "" }

func writeOwner(dir string, o owner) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "create VM dir")
	}
	o.OwnerPid = os.Getpid()
	o.OwnerStart = ProcStart(o.OwnerPid)
	o.CreatedAt = time.Now().UTC()
	return fsutil.WriteJSONAtomic(filepath.Join(dir, ownerFile), o, 0o600)
}

func updateOwnerVMM(dir string, pid int) error {
	o, err := readOwner(dir)
	if err != nil {
		return err
	}
	o.VMMPid, o.VMMStart = pid, ProcStart(pid)
	return fsutil.WriteJSONAtomic(filepath.Join(dir, ownerFile), o, 0o600)
}

func readOwner(dir string) (owner, error) {
	var o owner
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return o, err
	}
	return o, json.Unmarshal(b, &o)
}

// procStat returns the state letter and start time (clock ticks since boot)
// of pid, or ("", 0) if it is gone.
func procStat(pid int) (state string, start uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0
	}
	// The command name may contain spaces and parens: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return "", 0
	}
	start, _ = strconv.ParseUint(fields[19], 10, 64) // field 22 overall
	return fields[0], start
}

// ProcStart identifies pid's run for Alive: its start time in clock ticks
// since boot, tagged with this boot (ProcStartOfBoot), 0 if gone.
func ProcStart(pid int) uint64 { return ProcStartOfBoot(pid, thisBoot()) }

// ProcStartOfBoot is ProcStart as it reads during the boot bootID names.
// Records (supervisor.json, owner.json...) outlive a host reboot, and the
// next boot counts pids and ticks from the start again: without the tag, a
// record could name an unrelated process of the new boot that has the same
// pid and start tick, which pyro would then take for its own (and kill).
// The top 24 bits hold a hash of the boot id; ticks at 100 Hz reach 2^40
// only after 348 years.
func ProcStartOfBoot(pid int, bootID string) uint64 {
	_, start := procStat(pid)
	if start == 0 {
		return 0
	}
	return start&(1<<40-1) | bootTag(bootID)
}

func bootTag(bootID string) uint64 {
	if bootID == "" {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(bootID))
	return (h.Sum64()&(1<<24-1) | 1) << 40 // never 0: a tagged start never equals an untagged one
}

// thisBoot is the kernel's id of the running boot ("" when unreadable:
// starts are then untagged, as before tags).
var thisBoot = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// Alive reports whether pid still is the process that started at start. A
// zombie (dead, not yet reaped by its parent) is not alive.
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, st := procStat(pid)
	if state == "Z" || state == "X" || state == "" {
		return false
	}
	// An untagged start is a record written before boot tags: taken as is.
	return start == 0 || st|bootTag(thisBoot()) == start || st == start
}

// ReapOrphans removes every VM under root whose owner process is gone: it
// kills the VMM (if it still runs and still is that VMM) and deletes the dir.
// Dirs without an owner record older than a minute are half-created leftovers.
func ReapOrphans(root string) (reaped []string, err error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !ValidID(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		o, rerr := readOwner(dir)
		if rerr != nil {
			info, serr := e.Info()
			if serr != nil || time.Since(info.ModTime()) < time.Minute {
				continue
			}
		} else if Alive(o.OwnerPid, o.OwnerStart) {
			continue
		}
		if o.VMMPid > 0 && Alive(o.VMMPid, o.VMMStart) {
			if err := syscall.Kill(o.VMMPid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("kill VMM %d of %s: %w", o.VMMPid, e.Name(), err))
				continue
			}
			waitGone(o.VMMPid, o.VMMStart, 3*time.Second)
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		reaped = append(reaped, e.Name())
	}
	return reaped, errors.Join(errs...)
}

func waitGone(pid int, start uint64, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && Alive(pid, start) {
		time.Sleep(20 * time.Millisecond)
	}
}
