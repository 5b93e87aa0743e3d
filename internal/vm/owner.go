package vm

import (
	"github.com/pyrovm/pyro/internal/ident"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// The ids and process runs of package ident, named here for the VM code's
// many callers.
var (
	NewID           = ident.NewID
	ValidID         = ident.ValidID
	Alive           = ident.Alive
	ProcStart       = ident.ProcStart
	ProcStartOfBoot = ident.ProcStartOfBoot
)
