// Package store is a workspace's files on the host: the directory's
// layout (Paths), the record, the lock, the command history and the stamp
// of the last pass over every workspace. It links nothing of the VMM, the
// network stack or the environments, so that the CLI's fast path
// (cmd/pyro) reads and records a workspace exactly as package workspace
// does, without the rest of pyro.
package store

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
	"github.com/pyrovm/pyro/internal/ident"
	"github.com/pyrovm/pyro/internal/network/egress"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/vmm"
)

// States of a workspace. A paused one has its machine (memory, devices)
// saved in its dir next to its disk: no host process runs for it.
const (
	StateRunning = "running"
	StateStopped = "stopped"
	StatePaused  = "paused"
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
	Egress           *egress.Rules  `json:"egress_rules,omitempty"`   // nil: no allow list; kept across stop/start
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
func (p Paths) SnapshotTmp(name string) string {
	return filepath.Join(p.SnapshotDir(), "."+name+SnapshotTmpSuffix)
}

// A snapshot being made is its reserved (flocked) temp file, plus the dir
// the guest's archive is extracted into, named after it.
const (
	SnapshotTmpSuffix = ".tar.tmp"
	ExtractDirSuffix  = ".d"
)

// PreResetDisk is where a reset keeps the disk it replaces until the new
// one is seeded; one left behind means a reset was interrupted.
func (p Paths) PreResetDisk() string {
	ext := filepath.Ext(p.DiskFile)
	return filepath.Join(p.Dir, strings.TrimSuffix(p.DiskFile, ext)+".pre-reset"+ext)
}

// DiskPattern matches the workspace's disk files (Disk, PreResetDisk).
func (p Paths) DiskPattern() string { return filepath.Join(p.Dir, "*"+filepath.Ext(p.DiskFile)) }

// ResetInterrupted reports whether a reset set the disk aside and never
// finished: the disk at PreResetDisk is the workspace's real one.
func (p Paths) ResetInterrupted() bool {
	_, err := os.Stat(p.PreResetDisk())
	return err == nil
}

func (p Paths) History() string       { return filepath.Join(p.Dir, "history.jsonl") }
func (p Paths) RunDir() string        { return filepath.Join(p.Dir, "run") }
func (p Paths) Socket() string        { return filepath.Join(p.Dir, "supervisor.sock") }
func (p Paths) Supervisor() string    { return filepath.Join(p.Dir, "supervisor.json") }
func (p Paths) SupervisorPid() string { return filepath.Join(p.Dir, "supervisor.pid") } // from launch on
func (p Paths) SupervisorLog() string { return filepath.Join(p.Dir, "supervisor.log") }

func ReadRecord(p Paths) (*Record, error) {
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

func WriteRecord(p Paths, r *Record) error { return fsutil.WriteJSONAtomic(p.Record(), r, 0o600) }

// Lock takes the workspace's mutation lock, waiting while another process
// holds it (bounded by the caller's context through tryLock polling).
func Lock(p Paths) (*flock.Flock, error) {
	l := ExistingLock(p)
	if err := l.Lock(); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, NotFound(filepath.Base(p.Dir))
		}
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "lock workspace")
	}
	// Deleted while we waited for the lock: the record is gone.
	if _, err := os.Stat(p.Record()); errors.Is(err, os.ErrNotExist) {
		l.Unlock()
		return nil, NotFound(filepath.Base(p.Dir))
	}
	return l, nil
}

// ExistingLock is the lock of a workspace that exists: its file is opened,
// never created, so a process that comes late cannot put a lock file back
// into a directory a delete is removing (which left the directory behind).
// Only Create makes the file.
func ExistingLock(p Paths) *flock.Flock {
	return flock.New(p.Lock(), flock.SetFlag(os.O_RDONLY))
}

// NotFound is the error for a workspace ref names none.
func NotFound(ref string) error {
	return errdefs.New(errdefs.ErrNotFound, CodeNotFound, "no workspace %q", ref).
		WithNext(": %s to see the workspaces", "pyro workspace list", "workspace_list")
}

// TTL actions: what happens to a workspace whose TTL has passed.
const (
	TTLDelete = "delete" // the default
	TTLPause  = "pause"
)

// PauseDir holds the saved machine of a paused workspace
// (supervisor.PausedStateFile, then supervisor.PausedMetaFile).
func (p Paths) PauseDir() string { return filepath.Join(p.Dir, "paused") }

// OutputsDir holds the records of exports under way (their temporaries).
func (p Paths) OutputsDir() string { return filepath.Join(p.Dir, "outputs") }

// SnapshotInfo is one named snapshot of /workspace: a normalized tar kept
// on the host beside the baseline.
type SnapshotInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Entries   int       `json:"entries"`
	Bytes     int64     `json:"bytes"`
	Skipped             // special files the guest left out
}

// Skipped tells which special files (fifos, sockets, device nodes) a
// transfer out of the guest left out: a tar of a workspace never carries
// them to the host. Files lists the first 100.
type Skipped struct {
	Count int               `json:"skipped,omitempty"`
	Files []archive.Skipped `json:"skipped_files,omitempty"`
}

// CodeNotFound is returned for an unknown or deleted workspace.
const CodeNotFound = errdefs.CodeWorkspaceNotFound

// HistoryEntry is one command in a workspace's log.
type HistoryEntry struct {
	Sequence   int       `json:"sequence"`
	Command    string    `json:"command"`
	ExitCode   int       `json:"exit_code"`
	TimedOut   bool      `json:"timed_out"`
	DurationMs int64     `json:"duration_ms"`
	StartedAt  time.Time `json:"started_at"`
}

// AppendHistory adds e as one line in one write: O_APPEND places each
// write whole at the end, so concurrent execs need no lock for it (they
// finish, and are appended, in any order; Logs sorts by sequence).
func AppendHistory(p Paths, e HistoryEntry) error {
	f, err := os.OpenFile(p.History(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	b, _ := json.Marshal(e)
	_, err = f.Write(append(b, '\n'))
	return err
}

// RecordActivity updates the record under the lock; update returns what
// the caller wants back (a command's sequence).
func RecordActivity(p Paths, update func(*Record) (int, error)) (int, error) {
	l, err := Lock(p)
	if err != nil {
		return 0, err
	}
	defer l.Unlock()
	rec, err := ReadRecord(p)
	if err != nil {
		return 0, err
	}
	n, err := update(rec)
	if err != nil {
		return 0, err
	}
	// Activity (the command count, the last activity) may be lost to a host
	// crash but never torn: no fsync of the directory on every exec.
	return n, fsutil.ReplaceJSON(p.Record(), rec, 0o600)
}

// RecordExecStart counts a command that started at started and returns its
// sequence (the new count). The last activity is its start, never moved
// back: another call may have recorded a later one.
func RecordExecStart(p Paths, started time.Time) (int, error) {
	return RecordActivity(p, func(rec *Record) (int, error) {
		rec.Commands++
		if started.After(rec.LastActivityAt) {
			rec.LastActivityAt = started
		}
		return rec.Commands, nil
	})
}

// MadeBy names the VMM backend that made the workspace's disk and runs its
// VM (records older than the field: the first backend).
func (r *Record) MadeBy() string {
	if r.Backend == "" {
		return vmm.FirstBackend
	}
	return r.Backend
}

// Find reads the record of the workspace ref names: its id, else its name,
// under root (the workspaces' dir).
func Find(root, ref string) (*Record, error) {
	if ident.ValidID(ref) {
		if r, err := ReadRecord(Paths{Dir: filepath.Join(root, ref)}); err == nil {
			return r, nil
		}
	}
	recs, _ := Scan(root)
	for _, r := range recs {
		if r.Name != "" && r.Name == ref {
			return r, nil
		}
	}
	return nil, NotFound(ref)
}

// Scan reads every workspace's record under root (unreadable ones are
// left out).
func Scan(root string) ([]*Record, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, e := range entries {
		if !e.IsDir() || !ident.ValidID(e.Name()) {
			continue
		}
		if r, err := ReadRecord(Paths{Dir: filepath.Join(root, e.Name())}); err == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// DefaultStateDir is where pyro keeps its state when PYRO_STATE_DIR (or the
// SDK's WithStateDir) names no other place: $XDG_STATE_HOME/pyro, else
// ~/.local/state/pyro.
func DefaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "pyro")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "pyro")
	}
	return filepath.Join(os.TempDir(), "pyro-state")
}
