// Package workspace manages persistent workspaces: their on-disk state (one
// directory each), the per-workspace supervisor process that owns the VM, and
// the lifecycle (create, exec, stop, start, delete).
package workspace

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"

	"github.com/pyrovm/pyro/internal/archive"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
)

// States of a workspace.
const (
	StateRunning = "running"
	StateStopped = "stopped"
)

// Record is the persisted state of one workspace, written atomically.
type Record struct {
	ID          string            `json:"workspace_id"`
	Name        string            `json:"name,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Environment string            `json:"environment"`
	EnvVersion  string            `json:"environment_version"`
	KernelPath  string            `json:"kernel_path"` // pinned: the overlay depends on this exact image
	RootfsPath  string            `json:"rootfs_path"`
	VCPUCount   int               `json:"vcpu_count"`
	MemMiB      int               `json:"mem_mib"`
	Accel       string            `json:"accel"`
	// Backend names the VMM backend that made the disk and runs the VM
	// (vmm.Backend.Name); "" in records older than it: vmm.FirstBackend.
	Backend string `json:"backend,omitempty"`
	// AgentProtocol is the guest agent protocol of the image the disk
	// reads through (agentproto.ProtocolVersion when it was made: an image
	// always carries the agent of the pyro that installed it); 0 in records
	// older than it, all made before protocol 12.
	AgentProtocol int `json:"agent_protocol,omitempty"`
	// GuestTSCKHz: the host TSC frequency the guest was booted with (under
	// TCG; 0: none, as in records older than it).
	GuestTSCKHz int    `json:"guest_tsc_khz,omitempty"`
	TTLSeconds  int    `json:"ttl_seconds"`
	TTLAction   string `json:"ttl_action,omitempty"` // TTLDelete ("") or TTLPause
	// IdlePauseSeconds, when > 0, pauses the running workspace after that
	// long without a call (its supervisor does).
	IdlePauseSeconds int            `json:"idle_pause_seconds,omitempty"`
	State            string         `json:"state"`
	CreatedAt        time.Time      `json:"created_at"`
	LastActivityAt   time.Time      `json:"last_activity_at"`
	Seed             SeedInfo       `json:"seed"`
	Commands         int            `json:"command_count"`
	Snapshots        []SnapshotInfo `json:"snapshots,omitempty"`      // oldest first
	Secrets          []secrets.Info `json:"secrets,omitempty"`        // names only; values live in Paths.Secrets
	NetworkPolicy    string         `json:"network_policy,omitempty"` // "" = off: no network device
	Egress           *network.Rules `json:"egress_rules,omitempty"`   // nil: no allow list; kept across stop/start
	// Creating is set until Create returns: a record that still has it,
	// with nobody holding the lock, is a create whose process died.
	Creating bool `json:"creating,omitempty"`
}

// SeedInfo says what /workspace started from.
type SeedInfo struct {
	Source  string            `json:"source,omitempty"`
	Entries int               `json:"entries"`
	Bytes   int64             `json:"bytes"`
	Skipped []archive.Skipped `json:"skipped,omitempty"` // unreadable or special files left out
}

// ExpiresAt is when the workspace expires, or zero for never.
func (r *Record) ExpiresAt() time.Time {
	if r.TTLSeconds <= 0 {
		return time.Time{}
	}
	return r.LastActivityAt.Add(time.Duration(r.TTLSeconds) * time.Second)
}

// Paths names every file of one workspace. DiskFile is the VMM backend's
// name for a disk (vmm.Disks.DiskFile); its extension marks the disk files.
type Paths struct {
	Dir      string
	DiskFile string
}

func (p Paths) Record() string      { return filepath.Join(p.Dir, "workspace.json") }
func (p Paths) Lock() string        { return filepath.Join(p.Dir, "lock") }
func (p Paths) Disk() string        { return filepath.Join(p.Dir, p.DiskFile) }
func (p Paths) Baseline() string    { return filepath.Join(p.Dir, "baseline.tar") }
func (p Paths) Secrets() string     { return filepath.Join(p.Dir, "secrets.json") }  // owner-only
func (p Paths) BrokerCA() string    { return filepath.Join(p.Dir, "broker-ca.pem") } // owner-only: the CA's key
func (p Paths) SnapshotDir() string { return filepath.Join(p.Dir, "snapshots") }
func (p Paths) Snapshot(name string) string {
	return filepath.Join(p.SnapshotDir(), name+".tar")
}
func (p Paths) snapshotTmp(name string) string {
	return filepath.Join(p.SnapshotDir(), "."+name+snapshotTmpSuffix)
}

// A snapshot being made is its reserved (flocked) temp file, plus the dir
// the guest's archive is extracted into, named after it.
const (
	snapshotTmpSuffix = ".tar.tmp"
	extractDirSuffix  = ".d"
)

// PreResetDisk is where a reset keeps the disk it replaces until the new
// one is seeded; one left behind means a reset was interrupted.
func (p Paths) PreResetDisk() string {
	ext := filepath.Ext(p.DiskFile)
	return filepath.Join(p.Dir, strings.TrimSuffix(p.DiskFile, ext)+".pre-reset"+ext)
}

// diskPattern matches the workspace's disk files (Disk, PreResetDisk).
func (p Paths) diskPattern() string { return filepath.Join(p.Dir, "*"+filepath.Ext(p.DiskFile)) }

// resetInterrupted reports whether a reset set the disk aside and never
// finished: the disk at PreResetDisk is the workspace's real one.
func (p Paths) resetInterrupted() bool {
	_, err := os.Stat(p.PreResetDisk())
	return err == nil
}

func (p Paths) History() string       { return filepath.Join(p.Dir, "history.jsonl") }
func (p Paths) RunDir() string        { return filepath.Join(p.Dir, "run") }
func (p Paths) Socket() string        { return filepath.Join(p.Dir, "supervisor.sock") }
func (p Paths) Supervisor() string    { return filepath.Join(p.Dir, "supervisor.json") }
func (p Paths) SupervisorPid() string { return filepath.Join(p.Dir, "supervisor.pid") } // from launch on
func (p Paths) SupervisorLog() string { return filepath.Join(p.Dir, "supervisor.log") }

func readRecord(p Paths) (*Record, error) {
	b, err := os.ReadFile(p.Record())
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "workspace record %s is damaged", p.Record())
	}
	return &r, nil
}

func writeRecord(p Paths, r *Record) error { return fsutil.WriteJSONAtomic(p.Record(), r, 0o600) }

// lock takes the workspace's mutation lock, waiting while another process
// holds it (bounded by the caller's context through tryLock polling).
func lock(p Paths) (*flock.Flock, error) {
	l := existingLock(p)
	if err := l.Lock(); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notFound(filepath.Base(p.Dir))
		}
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "lock workspace")
	}
	// Deleted while we waited for the lock: the record is gone.
	if _, err := os.Stat(p.Record()); errors.Is(err, os.ErrNotExist) {
		l.Unlock()
		return nil, notFound(filepath.Base(p.Dir))
	}
	return l, nil
}

// existingLock is the lock of a workspace that exists: its file is opened,
// never created, so a process that comes late cannot put a lock file back
// into a directory a delete is removing (which left the directory behind).
// Only Create makes the file.
func existingLock(p Paths) *flock.Flock {
	return flock.New(p.Lock(), flock.SetFlag(os.O_RDONLY))
}

func notFound(ref string) error {
	return errdefs.New(errdefs.ErrNotFound, CodeNotFound, "no workspace %q", ref).
		WithNext(": %s to see the workspaces", "pyro workspace list", "workspace_list")
}
