package workspace

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gofrs/flock"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/archive"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/guestexec"
	"github.com/pyrovm/pyro/internal/hostpath"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/supervisor"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/workspace/store"
)

// Named timeouts.
const (
	bootTimeout = 3 * time.Minute
	stopTimeout = 30 * time.Second
)

// Manager runs workspace operations over the state dir.
type Manager struct {
	root          string // $STATE/workspaces
	supervisorBin string // the pyro binary, run as `pyro __supervise`
	backend       vmm.Backend
	log           *slog.Logger
	// checkResolved: the pass over every workspace was skipped (TidyDue),
	// so Resolve checks each workspace it returns.
	checkResolved atomic.Bool
	checked       sync.Map // workspace ids Resolve checked (checkTarget)
}

// NewManager keeps workspaces under root, their VMs run by backend (its
// supervisors are told its name; its disk operations make, fork and export
// the workspaces' disks).
func NewManager(root, supervisorBin string, backend vmm.Backend, log *slog.Logger) *Manager {
	return &Manager{root: root, supervisorBin: supervisorBin, backend: backend, log: log}
}

func (m *Manager) paths(id string) Paths {
	return Paths{Dir: filepath.Join(m.root, id), DiskFile: m.backend.DiskFile()}
}

// CreateSpec is a validated create request with its environment resolved.
type CreateSpec struct {
	Name        string
	Labels      map[string]string
	Environment string
	EnvVersion  string
	KernelPath  string
	RootfsPath  string
	VCPUCount   int
	MemMiB      int
	Accel       string
	GuestTSCKHz int // under TCG: the host TSC the guest keeps time with (vmm.Config)
	TTLSeconds  int
	TTLAction   string // TTLDelete ("") or TTLPause
	// IdlePauseSeconds, when > 0, pauses the workspace after that long
	// without a call.
	IdlePauseSeconds int
	Seed             *hostpath.Source // nil: an empty /workspace
	SeedFiles        []string         // when set: only these files (relative to a directory Seed) are packed, e.g. Git-tracked ones
	NoBoot           bool             // record it stopped; Start boots it (the low-level vm_create)
	// Restore, when set, is the saved machine the first boot restores
	// instead of booting cold (a memory snapshot of this very machine).
	Restore *Restore
	// Secrets are kept for the workspace's life (stop, start and reset
	// keep them) and installed in the guest at every boot.
	Secrets secrets.Set
	// NetworkPolicy is the VM's network (a network.Policy; "" = off). It is
	// fixed for the workspace's life.
	NetworkPolicy string
	// Egress, when set, allows only what its rules name (validated for
	// NetworkPolicy); SetEgress changes it later.
	Egress *network.Rules
}

// Restore is a saved machine a create restores. Its disk is copied into the
// workspace, which never depends on the snapshot afterwards; its state is
// read by the VMM at once. If the restore fails the VM boots cold from a
// fresh overlay, and Failed (when set) is told why.
type Restore struct {
	StatePath string
	DiskPath  string // the backend's overlay over the workspace's RootfsPath
	Failed    func(error)
}

var (
	namePattern  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`) }) // also a safe file name
	labelPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`) })
)

// SafeName reports whether s follows the name rules shared by workspaces,
// their snapshots and services: 1-63 letters, digits, '.', '_' or '-',
// starting with a letter or digit (so it is also one safe file name).
func SafeName(s string) bool { return namePattern().MatchString(s) }

// ValidateName checks a workspace name (it must not look like an id).
func ValidateName(name string) error {
	if !namePattern().MatchString(name) || vm.ValidID(name) {
		return errdefs.InvalidArgument("name", "%q must be 1-63 letters, digits, '.', '_' or '-', start with a letter or digit, and not look like a workspace id", name)
	}
	return nil
}

// ValidateLabels checks label keys and values.
func ValidateLabels(labels map[string]string) error {
	for k, v := range labels {
		if !labelPattern().MatchString(k) {
			return errdefs.InvalidArgument("labels", "key %q must be 1-63 letters, digits, '.', '_', '/' or '-'", k)
		}
		if len(v) > 256 {
			return errdefs.InvalidArgument("labels", "value of %q is longer than 256 bytes", k)
		}
	}
	return nil
}

// Create boots a new workspace, seeds /workspace and records the baseline.
// On any error nothing is left behind.
func (m *Manager) Create(ctx context.Context, s CreateSpec) (_ *Record, err error) {
	if s.Name != "" {
		if _, err := m.Resolve(s.Name); err == nil {
			return nil, errdefs.New(errdefs.ErrAlreadyExists, errdefs.CodeNameTaken, "a workspace named %q already exists: pick another name or delete it", s.Name)
		}
	}
	if err := os.MkdirAll(m.root, 0o700); err != nil {
		return nil, err
	}
	id := vm.NewID()
	p := m.paths(id)
	if err := os.Mkdir(p.Dir, 0o700); err != nil {
		return nil, err
	}
	// Held until the create ends, so that Recover can tell a create in
	// progress from one whose process died (the kernel drops the lock).
	l := flock.New(p.Lock())
	if err := l.Lock(); err != nil {
		os.RemoveAll(p.Dir)
		return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "lock the new workspace")
	}
	defer l.Unlock()
	defer func() {
		if err != nil {
			m.destroy(p)
		}
	}()
	now := time.Now().UTC()
	rec := &Record{
		ID: id, Name: s.Name, Labels: s.Labels, Environment: s.Environment, EnvVersion: s.EnvVersion,
		KernelPath: s.KernelPath, RootfsPath: s.RootfsPath, VCPUCount: s.VCPUCount, MemMiB: s.MemMiB,
		Accel: s.Accel, Backend: m.backend.Name(), AgentProtocol: agentproto.ProtocolVersion, GuestTSCKHz: s.GuestTSCKHz, TTLSeconds: s.TTLSeconds, State: StateStopped, CreatedAt: now, LastActivityAt: now,
		Creating: true, NetworkPolicy: s.NetworkPolicy, Egress: s.Egress,
		TTLAction: s.TTLAction, IdlePauseSeconds: s.IdlePauseSeconds,
	}
	// The baseline is the normalized seed archive, kept on the host for good.
	stats, err := writeBaseline(ctx, p.Baseline(), s.Seed, s.SeedFiles)
	if err != nil {
		return nil, err
	}
	rec.Seed = SeedInfo{Source: s.Seed.Name(), Entries: stats.Entries, Bytes: stats.Bytes, Skipped: stats.Skipped}
	if len(s.Secrets) > 0 {
		if err := secrets.Save(p.Secrets(), s.Secrets); err != nil {
			return nil, err
		}
		rec.Secrets = s.Secrets.Infos()
		if err := writeBrokerCA(p.BrokerCA(), id, s.Secrets.Brokered()); err != nil {
			return nil, err
		}
	}
	if err := store.WriteRecord(p, rec); err != nil {
		return nil, err
	}
	if rec.TTLSeconds > 0 {
		m.tidyStale()
	}
	if !s.NoBoot {
		if err := m.boot(ctx, p, rec, s.Restore); err != nil {
			return nil, err
		}
		if err := m.seed(ctx, p, p.Baseline(), stats.Entries); err != nil {
			return nil, err
		}
		rec.State = StateRunning
	}
	rec.Creating = false
	rec.LastActivityAt = time.Now().UTC() // the TTL counts from the end of a create, however long it took
	return rec, store.WriteRecord(p, rec)
}

// boot starts a fresh VM for the workspace on the disk at p.Disk() (created
// by the supervisor when missing): when restore is set, its saved machine
// is restored into a copy of its disk (cold boot if the copy fails; the
// supervisor falls back to a cold boot itself if the restore fails, and
// restore.Failed is told why). Create and Reset share it.
func (m *Manager) boot(ctx context.Context, p Paths, rec *Record, restore *Restore) error {
	var restoreState string
	if restore != nil {
		// The copy becomes the workspace's own disk: the pair it forms with
		// the state is exactly what was saved.
		if err := fsutil.CopyFile(restore.DiskPath, p.Disk(), 0o600); err != nil {
			m.log.Warn("copying the snapshot's disk: booting cold", "workspace", rec.ID, "err", err)
			os.Remove(p.Disk())
		} else {
			restoreState = restore.StatePath
		}
	}
	info, err := m.launch(ctx, p, rec, restoreState)
	if err != nil {
		return err
	}
	if info != nil && info.RestoreError != "" && restore != nil && restore.Failed != nil {
		restore.Failed(errors.New(info.RestoreError))
	}
	return nil
}

// seed streams a normalized tar kept on the host (the baseline or a
// snapshot) into the running workspace's /workspace; an archive without
// entries (possibly an empty file) sends nothing.
func (m *Manager) seed(ctx context.Context, p Paths, tarPath string, entries int) error {
	if entries == 0 {
		return nil
	}
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := supervisor.Dial(p.Socket())
	defer sc.Close()
	_, err = sc.PutArchive(ctx, Root, nil, f)
	return err
}

func writeBaseline(ctx context.Context, path string, seed *hostpath.Source, files []string) (archive.Stats, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return archive.Stats{}, err
	}
	defer f.Close()
	if seed == nil {
		return archive.Stats{}, nil
	}
	var stats archive.Stats
	switch {
	case files != nil && seed.Dir != nil:
		stats, err = archive.PackFiles(ctx, seed.Dir, files, f, archive.Limits{})
	case files != nil:
		return stats, errdefs.InvalidArgument("seed_path", "%s is a file; only a directory (a Git checkout) can be seeded with its tracked files", seed.Path)
	default:
		stats, err = seedSource(ctx, seed, f)
	}
	if err != nil {
		return stats, err
	}
	return stats, f.Sync()
}

// seedSource packs a host seed (a directory or an archive) into w.
func seedSource(ctx context.Context, src *hostpath.Source, w io.Writer) (archive.Stats, error) {
	if src.Dir != nil {
		return archive.SeedDir(ctx, src.Dir, w, archive.Limits{})
	}
	return archive.SeedArchive(ctx, src.File, src.Path, w, archive.Limits{})
}

// launch starts the workspace's supervisor (booting its VM, or restoring the
// state at restoreState into the disk copy at p.Disk()) and waits until it
// serves.
func (m *Manager) launch(ctx context.Context, p Paths, rec *Record, restoreState string, opts ...func(*supervisor.Spec)) (*supervisor.Info, error) {
	if err := agentCompatible(rec); err != nil {
		return nil, err
	}
	// Whatever a dead supervisor left (its VMM, runtime dirs) goes first.
	if _, err := vm.ReapOrphans(p.RunDir()); err != nil {
		m.log.Warn("reaping workspace VM", "workspace", rec.ID, "err", err)
	}
	spec := supervisor.Spec{
		WorkspaceID: rec.ID, Backend: m.backend.Name(), KernelPath: rec.KernelPath, RootfsPath: rec.RootfsPath, OverlayPath: p.Disk(),
		VCPUs: rec.VCPUCount, MemMiB: rec.MemMiB, Accel: rec.Accel, GuestTSCKHz: rec.GuestTSCKHz,
		RunDir: p.RunDir(), Socket: p.Socket(), InfoPath: p.Supervisor(), RestoreStatePath: restoreState,
		SecretsPath: p.Secrets(), BrokerCAPath: brokerCAPath(p), NetworkPolicy: rec.NetworkPolicy, Egress: rec.Egress,
		PauseDir: p.PauseDir(), LockPath: p.Lock(), IdlePauseSeconds: rec.IdlePauseSeconds,
	}
	for _, o := range opts {
		o(&spec)
	}
	specPath := filepath.Join(p.Dir, "supervisor-spec.json")
	if err := fsutil.WriteJSONAtomic(specPath, spec, 0o600); err != nil {
		return nil, err
	}
	return supervisor.Launch(ctx, m.supervisorBin, specPath, p.SupervisorLog(), p.SupervisorPid(), bootTimeout)
}

// Resolve finds a workspace by id or unique name.
func (m *Manager) Resolve(ref string) (*Record, error) {
	r, err := m.resolve(ref)
	if err == nil && m.checkTarget(r) {
		r, err = m.resolve(r.ID)
	}
	return r, err
}

func (m *Manager) resolve(ref string) (*Record, error) { return store.Find(m.root, ref) }

func (m *Manager) scan() ([]*Record, error) { return store.Scan(m.root) }

// List returns every workspace, newest activity first, with live state.
func (m *Manager) List(ctx context.Context) ([]*Record, error) {
	recs, err := m.scan()
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		r.State = m.liveState(ctx, r)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].LastActivityAt.After(recs[j].LastActivityAt) })
	return recs, nil
}

// Status returns one workspace with its live state and supervisor info.
func (m *Manager) Status(ctx context.Context, ref string) (*Record, *supervisor.Info, error) {
	r, err := m.Resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	r.State = m.liveState(ctx, r)
	var info *supervisor.Info
	if r.State == StateRunning {
		info, _ = readInfo(m.paths(r.ID))
	}
	return r, info, nil
}

// liveState is the recorded state corrected by reality: a workspace whose
// supervisor died (kill -9, crash) is stopped, not lost; one whose
// supervisor saved its machine and ended (a pause, also one whose caller
// died, or an idle pause) is paused.
func (m *Manager) liveState(ctx context.Context, r *Record) string {
	state, _ := m.liveStateInfo(r)
	return state
}

// liveStateInfo is liveState with the live supervisor's info when running.
func (m *Manager) liveStateInfo(r *Record) (string, *supervisor.Info) {
	switch r.State {
	case StateRunning:
		info, err := readInfo(m.paths(r.ID))
		if err == nil && vm.Alive(info.Pid, info.PidStart) {
			return StateRunning, info
		}
	case StatePaused:
	default:
		return r.State, nil
	}
	return pausedLive(m.paths(r.ID)), nil
}

func readInfo(p Paths) (*supervisor.Info, error) { return wire.ReadInfo(p.Supervisor()) }

// running returns a client for a running workspace, or a typed error.
func (m *Manager) running(ctx context.Context, ref string) (*Record, *supervisor.Client, error) {
	r, err := m.Resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	if err := m.ownBackend(r); err != nil {
		return nil, nil, err
	}
	switch state, info := m.liveStateInfo(r); state {
	case StatePaused:
		// Any call that needs the VM resumes it.
		if err := m.resumeForCall(ctx, r.ID); err != nil {
			return nil, nil, err
		}
	case StateRunning:
		if max(info.API, 1) != supervisor.APIVersion {
			return nil, nil, errOutdated(r, info.API)
		}
	default:
		return nil, nil, errStopped(r)
	}
	sc := supervisor.Dial(m.paths(r.ID).Socket()).WhenGone(func() error {
		// A supervisor that closed its socket is usually dying: give its
		// exit a moment to finish so the caller hears "stopped", not a
		// transport error.
		info, err := readInfo(m.paths(r.ID))
		if err != nil || waitGone(info.Pid, info.PidStart, 2*time.Second) {
			return errStopped(r)
		}
		return nil
	})
	return r, sc, nil
}

// agentCompatible refuses to boot a workspace whose image carries a guest
// agent of another protocol: the agent lives in the image its disk reads
// through, so it never changes, and an agent older than 12 would not even
// answer the session handshake (the boot would wait out its deadline).
func agentCompatible(r *Record) error {
	if r.AgentProtocol == agentproto.ProtocolVersion {
		return nil
	}
	made := fmt.Sprint(r.AgentProtocol)
	if r.AgentProtocol == 0 {
		made = "older than 12"
	}
	return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeAgentProtocol,
		"workspace %s was made by a pyro whose guest agent speaks protocol %s and this pyro speaks %d: the agent is part of the image its disk reads through, so it cannot boot under this pyro; its files are intact",
		r.ID, made, agentproto.ProtocolVersion).
		WithNext(": %s copies them out without a VM (or use the pyro that made it), then create a new workspace", "pyro workspace disk export "+r.ID+" --output DISK.img", "workspace_disk_export")
}

// errOutdated refuses to talk to a supervisor of another API version: it
// would misread requests, or answer them with a confusing bad_request.
func errOutdated(r *Record, api int) error {
	return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeSupervisorOutdated,
		"workspace %s runs under a supervisor started by another pyro version (API %d, this pyro speaks %d); its disk is intact, its running processes end with the stop",
		r.ID, max(api, 1), supervisor.APIVersion).
		WithNext(": %s, then start it again", "pyro workspace stop "+r.ID, "workspace_stop")
}

func errStopped(r *Record) error {
	return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeWorkspaceStopped, "workspace %s is stopped", r.ID).
		WithNext(": %s first", "pyro workspace start "+r.ID, "workspace_start")
}

// Exec runs a command (req as guestexec.Shell built it; its cwd relative
// to /workspace or absolute under it) and records it in the history (with
// secret values redacted, as the returned entry). secretEnv maps secret
// names to the environment variables that carry them for this command only.
// Many execs may run at once: only the record update takes the lock.
// With sink set, the output streams to it while the command runs.
func (m *Manager) Exec(ctx context.Context, ref string, ereq agentproto.ExecRequest, secretEnv map[string]string, sink *agentclient.ExecStreams) (*Record, *supervisor.ExecResult, HistoryEntry, error) {
	cwd, err := GuestPath("cwd", ereq.Cwd)
	if err != nil {
		return nil, nil, HistoryEntry{}, err
	}
	ereq.Cwd = cwd
	r, sc, err := m.running(ctx, ref)
	if err != nil {
		return nil, nil, HistoryEntry{}, err
	}
	defer sc.Close()
	red, err := m.execEnv(r.ID, &ereq, secretEnv)
	if err != nil {
		return nil, nil, HistoryEntry{}, err
	}
	started := time.Now().UTC()
	// The activity (the command count, which is this command's sequence,
	// and the last activity, its start) is recorded while the command runs:
	// a locked read and an fsynced replace of the record, ~1.5 ms that
	// would otherwise come after the answer. Every path waits for it, so
	// no process exits in the middle of the write.
	type reservation struct {
		seq int
		err error
	}
	reserved := make(chan reservation, 1)
	id := r.ID // r is replaced below when a pause refused the call
	go func() {
		seq, err := store.RecordExecStart(m.paths(id), started)
		reserved <- reservation{seq, err}
	}()
	// Tracked: its output stays readable by cursor for a while.
	req := supervisor.ExecRequest{ExecRequest: ereq, Track: true}
	exec := func(sc *supervisor.Client) (*supervisor.ExecResult, error) {
		if sink != nil {
			return sc.ExecStream(ctx, req, *sink)
		}
		return sc.Exec(ctx, req)
	}
	res, err := exec(sc)
	if refusedByPause(err) {
		var sc2 *supervisor.Client
		if r, sc2, err = m.afterPause(ctx, ref); err == nil {
			defer sc2.Close()
			res, err = exec(sc2)
		}
	}
	rv := <-reserved
	if err == nil {
		err = rv.err
	}
	if err != nil {
		return nil, nil, HistoryEntry{}, err
	}
	entry := HistoryEntry{
		Sequence: rv.seq, Command: red.String(req.Shell), ExitCode: res.ExitCode, TimedOut: res.TimedOut,
		DurationMs: res.DurationMs, StartedAt: started,
	}
	return r, res, entry, store.AppendHistory(m.paths(r.ID), entry)
}

// execEnv adds the variables of a secretEnv mapping to req.Env (refusing a
// name set both ways) and returns the redactor of the workspace's secrets.
func (m *Manager) execEnv(id string, req *agentproto.ExecRequest, secretEnv map[string]string) (*secrets.Redactor, error) {
	set, err := m.secrets(id) // once: for the variables and the redaction
	if err != nil {
		return nil, err
	}
	extra, err := set.Env(secretEnv)
	if err != nil {
		return nil, err
	}
	return set.Redactor(), guestexec.AddSecretEnv(req, extra)
}

// secrets loads a workspace's secrets (none when it has no secrets file).
func (m *Manager) secrets(id string) (secrets.Set, error) {
	return secrets.Load(m.paths(id).Secrets())
}

// redactor hides the workspace's secret values; nil when it has none. It
// fails closed: unreadable secrets fail the call rather than show values.
func (m *Manager) redactor(id string) (*secrets.Redactor, error) {
	set, err := m.secrets(id)
	if err != nil {
		return nil, err
	}
	return set.Redactor(), nil
}

// withSecretEnv adds the variables of a secret_env mapping (secret name ->
// variable name) to env.
func (m *Manager) withSecretEnv(id string, env []string, mapping map[string]string) ([]string, error) {
	if len(mapping) == 0 {
		return env, nil
	}
	set, err := m.secrets(id)
	if err != nil {
		return nil, err
	}
	extra, err := set.Env(mapping)
	if err != nil {
		return nil, err
	}
	return append(env, extra...), nil
}

func (m *Manager) recordActivity(id string, update func(*Record) (int, error)) (int, error) {
	return store.RecordActivity(m.paths(id), update)
}

// Logs returns the command history, oldest first.
func (m *Manager) Logs(ref string) (*Record, []HistoryEntry, error) {
	r, err := m.Resolve(ref)
	if err != nil {
		return nil, nil, err
	}
	b, err := os.ReadFile(m.paths(r.ID).History())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	var out []HistoryEntry
	for _, line := range splitLines(b) {
		var e HistoryEntry
		if json.Unmarshal(line, &e) == nil {
			out = append(out, e)
		}
	}
	// Lines are in the order commands ended; the sequence is the order
	// they started.
	slices.SortStableFunc(out, func(a, b HistoryEntry) int { return cmp.Compare(a.Sequence, b.Sequence) })
	return r, out, nil
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i > 0 {
			out = append(out, b[:i])
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

// ownBackend refuses a workspace another VMM backend made: its disk is in
// that backend's format, its saved machine only that backend restores, and
// its disk files go by another name. Its record (status, list, logs,
// update) and delete stay open to any backend.
func (m *Manager) ownBackend(r *Record) error {
	made := r.MadeBy()
	if made == m.backend.Name() {
		return nil
	}
	return errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeBackendMismatch,
		"workspace %s was made by the %s VMM backend and this pyro runs %s: its disk and saved machine are %s's; run pyro with PYRO_BACKEND=%s (SDK: WithBackend) to use it (status, list, logs, update and delete work from any backend)",
		r.ID, made, m.backend.Name(), made, made)
}

// locked resolves ref, takes the workspace's lock and reads its record
// fresh under it, refusing a workspace of another VMM backend. unlock
// releases the lock.
func (m *Manager) locked(ref string) (p Paths, rec *Record, unlock func(), err error) {
	p, rec, unlock, err = m.lockedRecord(ref)
	if err == nil {
		if err = m.ownBackend(rec); err != nil {
			unlock()
			return Paths{}, nil, nil, err
		}
	}
	return p, rec, unlock, err
}

// lockedRecord is locked for calls that only touch the record or remove
// the workspace, which any backend may do.
func (m *Manager) lockedRecord(ref string) (p Paths, rec *Record, unlock func(), err error) {
	r, err := m.Resolve(ref)
	if err != nil {
		return Paths{}, nil, nil, err
	}
	p = m.paths(r.ID)
	l, err := store.Lock(p)
	if err != nil {
		return Paths{}, nil, nil, err
	}
	if rec, err = store.ReadRecord(p); err != nil {
		l.Unlock()
		return Paths{}, nil, nil, err
	}
	return p, rec, func() { l.Unlock() }, nil
}

// Stop flushes and powers off the VM, keeping everything.
func (m *Manager) Stop(ctx context.Context, ref string) (*Record, error) {
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	m.stopSupervisor(ctx, p)
	discardPause(p) // its disk was flushed when it paused
	rec.State = StateStopped
	return rec, store.WriteRecord(p, rec)
}

// stopSupervisor asks a live supervisor to power off gracefully, waits for
// it, and escalates; it then reaps whatever is left.
func (m *Manager) stopSupervisor(ctx context.Context, p Paths) {
	info, err := readInfo(p)
	if err == nil && vm.Alive(info.Pid, info.PidStart) {
		sc := supervisor.Dial(p.Socket())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := sc.Shutdown(sctx); err != nil {
			_ = syscall.Kill(info.Pid, syscall.SIGTERM)
		}
		cancel()
		sc.Close()
		if !waitGone(info.Pid, info.PidStart, stopTimeout) {
			killSupervisor(info)
		}
	}
	if booting, err := wire.ReadInfo(p.SupervisorPid()); err == nil && vm.Alive(booting.Pid, booting.PidStart) {
		killSupervisor(booting) // launched, never ready: nothing to flush
	}
	_, _ = vm.ReapOrphans(p.RunDir())
	_ = os.Remove(p.Socket())
	_ = os.Remove(p.Supervisor())
	_ = os.Remove(p.SupervisorPid())
}

// killSupervisor kills a supervisor and waits for it (its VMM dies with it:
// parent-death signal).
func killSupervisor(info *supervisor.Info) {
	_ = syscall.Kill(info.Pid, syscall.SIGKILL)
	waitGone(info.Pid, info.PidStart, 5*time.Second)
}

func waitGone(pid int, start uint64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !vm.Alive(pid, start) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return !vm.Alive(pid, start)
}

// Start boots a stopped workspace from its kept disk.
func (m *Manager) Start(ctx context.Context, ref string) (*Record, error) {
	p, rec, unlock, err := m.locked(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	switch m.liveState(ctx, rec) {
	case StateRunning:
		return rec, nil
	case StatePaused:
		rec, _, err := m.resumeLocked(ctx, p, rec)
		return rec, err
	}
	m.stopSupervisor(ctx, p) // leftovers of a crashed supervisor
	discardPause(p)
	if p.ResetInterrupted() {
		m.rollbackReset(p) // an interrupted reset: back to the disk from before it
	}
	// Always cold: the disk has moved on from any saved machine.
	if _, err := m.launch(ctx, p, rec, ""); err != nil {
		return nil, err
	}
	rec.State = StateRunning
	return rec, store.WriteRecord(p, rec)
}

// Delete removes the workspace's VM and all its host state.
func (m *Manager) Delete(ctx context.Context, ref string) (*Record, error) {
	p, rec, unlock, err := m.lockedRecord(ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	m.destroy(p)
	m.gcLayers(ctx) // the layers only this workspace's disk read through
	return rec, nil
}

// destroy kills the supervisor (no flush: the disk goes too) and removes the dir.
func (m *Manager) destroy(p Paths) {
	for _, path := range []string{p.Supervisor(), p.SupervisorPid()} {
		if info, err := wire.ReadInfo(path); err == nil && vm.Alive(info.Pid, info.PidStart) {
			killSupervisor(info)
		}
	}
	_, _ = vm.ReapOrphans(p.RunDir())
	if err := os.RemoveAll(p.Dir); err != nil {
		m.log.Warn("removing workspace dir", "dir", p.Dir, "err", err)
	}
}
