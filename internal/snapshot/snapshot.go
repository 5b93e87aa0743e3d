// Package snapshot keeps saved machines for fast one-shot runs: a guest booted
// once to its agent, paused, and written out as its memory and device state
// plus the root disk as it was at that moment. A restore of one answers in a
// fraction of a cold boot's time.
//
// On disk, under the cache root:
//
//	snapshots/<id>/<disk file>  root disk: the VMM backend's overlay over the environment's
//	                            read-only image (vmm.Disks.DiskFile, e.g. disk.qcow2)
//	snapshots/<id>/state        the machine's state (the VMM's own format)
//	snapshots/<id>/meta.json    Meta, written last
//	locks/snapshot-<id>.lock    flock held while creating or removing <id>
//
// The id hashes the Key: everything a restored machine depends on. Anything
// that changes (kernel, image, agent, machine size, accelerator, VMM, this
// package's format) gives another id, so a stale snapshot is never used; it
// is removed by Prune once its image is gone.
package snapshot

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// FormatVersion is bumped whenever what a snapshot holds, or how it is made,
// changes (the save procedure, the guest's state at save time, file layout).
// 2: the agent is parked (waiting in a read on its open port) when saved.
const FormatVersion = 2

// File names inside a snapshot dir (the disk's is the backend's: NewStore).
const (
	StateFile = "state"
	MetaFile  = "meta.json"
)

// Key is everything a restored machine depends on.
type Key struct {
	Environment  string `json:"environment"` // catalog name, e.g. "debian:12"
	EnvVersion   string `json:"env_version"`
	RootfsSHA256 string `json:"rootfs_sha256"`
	KernelSHA256 string `json:"kernel_sha256"`
	AgentSHA256  string `json:"agent_sha256"`
	VCPUs        int    `json:"vcpus"`
	MemMiB       int    `json:"mem_mib"`
	Accel        string `json:"accel"`
	// VMMVersion, Machine and Host are the backend's vmm.Identity. The JSON
	// names are part of the id's hash: renaming one re-keys every snapshot
	// (the one under QEMU, the only backend then, stays "qemu_version").
	VMMVersion string `json:"qemu_version"`
	// Machine digests the VMM's machine apart from paths (devices, CPU,
	// kernel command line).
	Machine string `json:"machine"`
	// Host identifies the host CPU and kernel where the guest depends on
	// them (KVM); empty under software emulation.
	Host string `json:"host,omitempty"`
	// Warmup digests what the guest ran before it was saved (WarmupDigest):
	// it decides what the saved memory holds, so a changed warm-up makes
	// new snapshots instead of restoring ones made by the old.
	Warmup string `json:"warmup,omitempty"`
}

// WarmupDigest names a warm-up command for Key.Warmup.
func WarmupDigest(cmd string) string {
	sum := sha256.Sum256([]byte(cmd))
	return hex.EncodeToString(sum[:8])
}

// Validate reports a key that cannot name a usable snapshot.
func (k Key) Validate() error {
	switch {
	case k.Environment == "" || k.EnvVersion == "":
		return errors.New("snapshot key: environment and version are required")
	case k.RootfsSHA256 == "" || k.KernelSHA256 == "" || k.AgentSHA256 == "":
		return errors.New("snapshot key: kernel, image and agent digests are required")
	case k.VCPUs < 1 || k.MemMiB < 1:
		return errors.New("snapshot key: machine size is required")
	case k.Accel == "" || k.VMMVersion == "" || k.Machine == "":
		return errors.New("snapshot key: accelerator, VMM version and machine digest are required")
	}
	return nil
}

// ID is the snapshot's directory name: a hash of the key and FormatVersion.
func (k Key) ID() string {
	b, _ := json.Marshal(struct {
		Format int `json:"format"`
		Key
	}{FormatVersion, k})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// Meta is meta.json.
type Meta struct {
	FormatVersion int       `json:"format_version"`
	ID            string    `json:"id"`
	Key           Key       `json:"key"`
	RootfsPath    string    `json:"rootfs_path"` // the disk's backing file (absolute)
	StateSize     int64     `json:"state_size"`
	CreatedAt     time.Time `json:"created_at"`
	CreateMs      int64     `json:"create_ms"`
	// Nonce tells this snapshot from a later one of the same id, so that
	// Invalidate never removes a snapshot it did not see fail.
	Nonce string `json:"nonce"`
}

// Snapshot is a valid snapshot on disk.
type Snapshot struct {
	Dir       string
	DiskPath  string
	StatePath string
	Meta      Meta
}

// Store is the snapshot cache under a pyro cache dir. It is safe for
// concurrent use, also across processes.
type Store struct {
	root     string // <cache>/snapshots
	locks    string // <cache>/locks
	diskFile string // the disk's name in a snapshot dir
}

// NewStore returns the store under cacheDir (pyro's cache root) for
// snapshots whose disk is a file named diskFile (vmm.Disks.DiskFile).
func NewStore(cacheDir, diskFile string) *Store {
	return &Store{root: filepath.Join(cacheDir, "snapshots"), locks: filepath.Join(cacheDir, "locks"), diskFile: diskFile}
}

// DiskFile is the name of the disk a BuildFunc must leave in its dir.
func (s *Store) DiskFile() string { return s.diskFile }

// Root is the directory holding the snapshots.
func (s *Store) Root() string { return s.root }

func (s *Store) dir(id string) string      { return filepath.Join(s.root, id) }
func (s *Store) lockPath(id string) string { return filepath.Join(s.locks, "snapshot-"+id+".lock") }

// ErrNotFound: no valid snapshot for the key.
var ErrNotFound = errors.New("no valid snapshot")

// ErrBusy: another process is creating or removing this snapshot.
var ErrBusy = errors.New("another process is creating this snapshot")

// ErrRecentlyFailed: making or restoring this snapshot failed a short while
// ago; Create does not try again before FailureBackoff has passed.
var ErrRecentlyFailed = errors.New("this snapshot failed recently")

// FailureBackoff is how long after a failed creation or restore Create
// refuses to try again, so that a host where snapshots cannot work pays for
// a failed attempt once in a while, not on every run.
const FailureBackoff = 10 * time.Minute

func (s *Store) failedPath(id string) string { return filepath.Join(s.root, ".failed-"+id) }

// recordFailure leaves a marker saying why id failed; its mtime is when.
func (s *Store) recordFailure(id string, cause error) {
	if os.MkdirAll(s.root, 0o755) == nil {
		_ = os.WriteFile(s.failedPath(id), []byte(cause.Error()+"\n"), 0o644)
	}
}

// recentFailure returns the failure recorded for id within FailureBackoff.
func (s *Store) recentFailure(id string) error {
	p := s.failedPath(id)
	st, err := os.Stat(p)
	if err != nil || time.Since(st.ModTime()) > FailureBackoff {
		return nil
	}
	b, _ := os.ReadFile(p)
	return fmt.Errorf("%w (%s ago): %s", ErrRecentlyFailed, time.Since(st.ModTime()).Round(time.Second), strings.TrimSpace(string(b)))
}

// Lookup returns the valid snapshot for k over the image at rootfsPath, or
// an error wrapping ErrNotFound that says what is wrong with the one there.
// It only reads small files and stats: it is on every run's path.
func (s *Store) Lookup(k Key, rootfsPath string) (*Snapshot, error) {
	return s.load(s.dir(k.ID()), &k, rootfsPath)
}

// load reads and checks a snapshot dir. want and rootfsPath, when given,
// must match what the snapshot was made for.
func (s *Store) load(dir string, want *Key, rootfsPath string) (*Snapshot, error) {
	bad := func(format string, args ...any) (*Snapshot, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrNotFound, dir, fmt.Sprintf(format, args...))
	}
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return bad("none")
		}
		return bad("%v", err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return bad("meta: %v", err)
	}
	switch {
	case m.FormatVersion != FormatVersion:
		return bad("format version %d, want %d", m.FormatVersion, FormatVersion)
	case m.ID != filepath.Base(dir) || m.Key.ID() != m.ID:
		return bad("meta does not match its id")
	case want != nil && m.Key != *want:
		return bad("made for another machine")
	case !filepath.IsAbs(m.RootfsPath):
		return bad("bad rootfs path %q", m.RootfsPath)
	case rootfsPath != "" && m.RootfsPath != rootfsPath:
		return bad("made over %s, the image is now %s", m.RootfsPath, rootfsPath)
	}
	if st, err := os.Stat(m.RootfsPath); err != nil || !st.Mode().IsRegular() {
		return bad("its image %s is gone", m.RootfsPath)
	}
	snap := &Snapshot{Dir: dir, DiskPath: filepath.Join(dir, s.diskFile), StatePath: filepath.Join(dir, StateFile), Meta: m}
	if st, err := os.Stat(snap.StatePath); err != nil || !st.Mode().IsRegular() || st.Size() != m.StateSize || m.StateSize == 0 {
		return bad("state file missing or of the wrong size")
	}
	if st, err := os.Stat(snap.DiskPath); err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return bad("disk missing")
	}
	return snap, nil
}

// BuildFunc makes a snapshot's files in dir: Store.DiskFile (the backend's
// overlay over the image) and StateFile. It runs with the snapshot's lock held.
type BuildFunc func(ctx context.Context, dir string) error

// Create makes the snapshot for k with build, unless a valid one appeared
// meanwhile (then that one is returned). It does not wait for another
// process creating the same snapshot: it returns ErrBusy, since booting
// without a snapshot is faster than waiting for one. The snapshot appears
// with one rename: a crash never leaves a half-made snapshot that looks valid.
func (s *Store) Create(ctx context.Context, k Key, rootfsPath string, build BuildFunc) (*Snapshot, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(rootfsPath) {
		return nil, fmt.Errorf("snapshot: rootfs path %q is not absolute", rootfsPath)
	}
	id := k.ID()
	unlock, ok, err := s.tryLock(id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBusy
	}
	defer unlock()
	if snap, err := s.Lookup(k, rootfsPath); err == nil {
		return snap, nil
	}
	if err := s.recentFailure(id); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return nil, err
	}
	s.removeTmp(id) // left by a creator that died: we hold the lock
	tmp, err := os.MkdirTemp(s.root, ".tmp-"+id+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // after a successful rename there is nothing left
	start := time.Now()
	if err := build(ctx, tmp); err != nil {
		if ctx.Err() == nil {
			s.recordFailure(id, fmt.Errorf("create: %w", err))
		}
		return nil, err
	}
	st, err := os.Stat(filepath.Join(tmp, StateFile))
	if err != nil {
		return nil, fmt.Errorf("snapshot: build left no state: %w", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, s.diskFile)); err != nil {
		return nil, fmt.Errorf("snapshot: build left no disk: %w", err)
	}
	m := Meta{FormatVersion: FormatVersion, ID: id, Key: k, RootfsPath: rootfsPath, StateSize: st.Size(),
		CreatedAt: time.Now().UTC(), CreateMs: time.Since(start).Milliseconds(), Nonce: nonce()}
	if err := fsutil.WriteJSONAtomic(filepath.Join(tmp, MetaFile), &m, 0o644); err != nil {
		return nil, err
	}
	for _, f := range []string{s.diskFile, StateFile} {
		if err := fsutil.SyncFile(filepath.Join(tmp, f)); err != nil {
			return nil, err
		}
	}
	dst := s.dir(id)
	if err := s.removeDir(dst); err != nil { // an invalid one
		return nil, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, err
	}
	_ = fsutil.SyncDir(s.root)
	os.Remove(s.failedPath(id))
	return s.load(dst, &k, rootfsPath)
}

// Invalidate removes snap because a restore from it failed (cause), unless
// it has been replaced since (another nonce) or someone else holds its lock.
// Create then waits FailureBackoff before it makes the snapshot again.
func (s *Store) Invalidate(snap *Snapshot, cause error) error {
	s.recordFailure(snap.Meta.ID, fmt.Errorf("restore: %w", cause))
	return s.Remove(snap)
}

// Remove removes snap (prepare --force), unless it has been replaced since
// or someone else holds its lock (ErrBusy). The next Create makes it anew.
func (s *Store) Remove(snap *Snapshot) error {
	unlock, ok, err := s.tryLock(snap.Meta.ID)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBusy
	}
	defer unlock()
	var m Meta
	if b, err := os.ReadFile(filepath.Join(snap.Dir, MetaFile)); err == nil && json.Unmarshal(b, &m) == nil && m.Nonce != snap.Meta.Nonce {
		return nil // already replaced by a new one
	}
	return s.removeDir(snap.Dir)
}

// Removed is one snapshot Prune removed.
type Removed struct {
	ID          string `json:"id"`
	Environment string `json:"environment,omitempty"`
	Path        string `json:"path"`
	Bytes       int64  `json:"bytes"`
	Reason      string `json:"reason"`
}

// Prune removes every snapshot that is no longer valid (its image is gone,
// its files are damaged, its format is old) and leftovers of interrupted
// creations. keep, when not nil, may veto the removal of a valid snapshot
// (return false to remove it anyway). Snapshots being created are skipped.
func (s *Store) Prune(keep func(Meta) bool) []Removed {
	entries, _ := os.ReadDir(s.root)
	var out []Removed
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(s.root, name)
		if !e.IsDir() {
			if info, err := e.Info(); err == nil && strings.HasPrefix(name, ".failed-") && time.Since(info.ModTime()) > FailureBackoff {
				os.Remove(p)
			}
			continue
		}
		id := name
		if strings.HasPrefix(name, ".tmp-") || strings.HasPrefix(name, ".old-") {
			id, _, _ = strings.Cut(strings.TrimPrefix(strings.TrimPrefix(name, ".tmp-"), ".old-"), "-")
		}
		unlock, ok, err := s.tryLock(id)
		if err != nil || !ok {
			continue
		}
		reason := "leftover of an interrupted creation"
		var envName string
		if name == id {
			snap, err := s.load(p, nil, "")
			switch {
			case err == nil && (keep == nil || keep(snap.Meta)):
				unlock()
				continue
			case err == nil:
				reason, envName = "not wanted", snap.Meta.Key.Environment
			default:
				reason = strings.TrimPrefix(err.Error(), ErrNotFound.Error()+": "+p+": ")
				var m Meta
				if b, rerr := os.ReadFile(filepath.Join(p, MetaFile)); rerr == nil && json.Unmarshal(b, &m) == nil {
					envName = m.Key.Environment
				}
			}
		}
		size := fsutil.DiskUsage(p)
		if err := s.removeDir(p); err == nil {
			out = append(out, Removed{ID: id, Environment: envName, Path: p, Bytes: size, Reason: reason})
		}
		unlock()
	}
	return out
}

// removeDir makes dir disappear at once (a rename), then deletes it. A
// restore in progress keeps its open files.
func (s *Store) removeDir(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	old := filepath.Join(s.root, ".old-"+filepath.Base(dir)+"-"+nonce())
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// removeTmp deletes the temporary dirs of earlier creations of id.
func (s *Store) removeTmp(id string) {
	entries, _ := os.ReadDir(s.root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-"+id+"-") || strings.HasPrefix(e.Name(), ".old-"+id+"-") {
			os.RemoveAll(filepath.Join(s.root, e.Name()))
		}
	}
}

// tryLock takes the flock of id if it is free right now. Lock files are
// never deleted: removing one while another process waits on it would let
// two owners in.
func (s *Store) tryLock(id string) (unlock func(), ok bool, err error) {
	if err := os.MkdirAll(s.locks, 0o755); err != nil {
		return nil, false, err
	}
	l := flock.New(s.lockPath(id))
	got, err := l.TryLock()
	if err != nil || !got {
		l.Close()
		return nil, false, err
	}
	return func() { l.Unlock(); l.Close() }, true, nil
}

// Await waits while another process is making k's snapshot (its lock is
// held), then looks it up: the snapshot that process made, or an error
// (nothing made, or it failed). Nobody making it: it looks up at once.
func (s *Store) Await(ctx context.Context, k Key, rootfsPath string) (*Snapshot, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.locks, 0o755); err != nil {
		return nil, err
	}
	l := flock.New(s.lockPath(k.ID()))
	defer l.Close()
	if _, err := l.TryLockContext(ctx, 100*time.Millisecond); err != nil {
		return nil, err
	}
	_ = l.Unlock()
	return s.Lookup(k, rootfsPath)
}

func nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
