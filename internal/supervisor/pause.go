package supervisor

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
)

// Pause bounds.
const (
	// pauseDrain is how long a pause waits for calls in flight to end;
	// calls still running then are cut (their guest processes killed).
	pauseDrain = 10 * time.Second
	// pauseTimeout bounds the save itself (a 1 GiB guest writes its
	// non-zero pages; under TCG on a loaded host that takes seconds).
	pauseTimeout = 5 * time.Minute
	idleTick     = time.Second
)

// Files of a paused machine, in Spec.PauseDir (wire.PausedMetaFile is
// written last, atomically).
const (
	PausedStateFile = wire.PausedStateFile
	PausedMetaFile  = wire.PausedMetaFile
	pausedStateTmp  = "state.tmp"
)

// CodePausing answers calls that arrive while the workspace is being paused.
const CodePausing = errdefs.CodeWorkspacePausing

// Paused describes a saved machine: what the supervisor that restores it
// must put back on the host side (the guest keeps the rest in its memory).
type Paused struct {
	PausedAt   time.Time `json:"paused_at"`
	PauseMs    int64     `json:"pause_ms"`    // from the request to the state on disk
	StateBytes int64     `json:"state_bytes"` // size of the state file
	// Disk identifies the root disk as the save left it: a restore is
	// valid only onto that very file, unchanged.
	Disk DiskID `json:"disk"`
	// Ports are the published ports of services that were running.
	Ports []ServicePorts `json:"ports,omitempty"`
	// Shells were open and ended with the pause.
	Shells []string `json:"shells,omitempty"`
	// Fork marks a fork's copy of its source's saved machine: its restore
	// gives the guest its own machine id.
	Fork bool `json:"fork,omitempty"`
}

// ServicePorts are the ports one run of a service had published.
type ServicePorts struct {
	Service  string              `json:"service"`
	Instance string              `json:"instance"`
	Ports    []network.Published `json:"ports"`
}

// DiskID identifies a disk file's content as of a moment (wire.DiskID).
type DiskID = wire.DiskID

// DiskIDOf reads path's identity.
var DiskIDOf = wire.DiskIDOf

// pauser tracks the calls in flight and the last call, for pause and for
// the idle auto-pause.
type pauser struct {
	mu       sync.Mutex
	active   int
	last     time.Time
	pausing  bool
	idle     time.Duration // 0: never pause by itself
	done     chan struct{} // closed once the machine is saved (or the save failed)
	doneOnce sync.Once
}

func newPauser(idleSeconds int) *pauser {
	return &pauser{last: time.Now(), idle: time.Duration(idleSeconds) * time.Second, done: make(chan struct{})}
}

// observations are the calls that only look (workspace status and list ask
// them): they neither keep a workspace awake nor wait for a pause.
var observations = map[string]bool{"GET /v1/status": true, "GET /v1/commands": true}

// track counts calls and refuses new ones once a pause began.
func (p *pauser) track(next http.Handler, s *server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/pause" || observations[r.Method+" "+r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		p.mu.Lock()
		if p.pausing {
			p.mu.Unlock()
			s.writeErr(w, errdefs.New(errdefs.ErrUnavailable, CodePausing,
				"the workspace is being paused: retry the call, which resumes it"))
			return
		}
		p.active++
		p.last = time.Now()
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.active--
			p.last = time.Now()
			p.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

// begin marks the pause; false when one is already under way.
func (p *pauser) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pausing {
		return false
	}
	p.pausing = true
	return true
}

func (p *pauser) isPausing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pausing
}

func (p *pauser) finish() { p.doneOnce.Do(func() { close(p.done) }) }

// drain waits until no call is in flight, at most d.
func (p *pauser) drain(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		n := p.active
		p.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// idleFor reports how long no call has been in flight; 0 while one is.
func (p *pauser) idleFor(now time.Time) (time.Duration, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.active > 0 {
		return 0, p.idle
	}
	return now.Sub(p.last), p.idle
}

func (p *pauser) setIdle(seconds int) {
	p.mu.Lock()
	p.idle = time.Duration(seconds) * time.Second
	p.last = time.Now()
	p.mu.Unlock()
}

// pause saves the machine into the pause dir and ends the VMM. On success
// the dir holds the state and PausedMetaFile; on failure nothing of it.
// Either way the supervisor then exits (Main waits on pauser.done).
func (s *server) pause(ctx context.Context) (*Paused, error) {
	start := time.Now()
	if s.spec.PauseDir == "" {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, errdefs.CodeInternal, "this supervisor has no pause dir")
	}
	if !s.pauser.begin() {
		return nil, errdefs.New(errdefs.ErrUnavailable, CodePausing, "the workspace is already being paused")
	}
	s.pauser.drain(pauseDrain)
	<-s.dropped // the restored state's removal, in the same dir
	meta := &Paused{Ports: s.ports.saved()}
	for _, sh := range s.shells.List() {
		meta.Shells = append(meta.Shells, sh.ShellID)
	}
	s.shells.CloseAll()
	if err := os.MkdirAll(s.spec.PauseDir, 0o700); err != nil {
		return nil, err
	}
	tmp := filepath.Join(s.spec.PauseDir, pausedStateTmp)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pauseTimeout)
	defer cancel()
	if err := s.vm.Pause(ctx, tmp); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	st, err := os.Stat(tmp)
	if err != nil {
		return nil, err
	}
	meta.StateBytes = st.Size()
	if meta.Disk, err = DiskIDOf(s.spec.OverlayPath); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(s.spec.PauseDir, PausedStateFile)); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	meta.PausedAt = time.Now().UTC()
	meta.PauseMs = time.Since(start).Milliseconds()
	if err := fsutil.WriteJSONAtomic(filepath.Join(s.spec.PauseDir, PausedMetaFile), meta, 0o600); err != nil {
		return nil, err
	}
	s.log.Info("paused", "ms", meta.PauseMs, "state_bytes", meta.StateBytes)
	return meta, nil
}

func (s *server) handlePause(w http.ResponseWriter, r *http.Request) {
	meta, err := s.pause(r.Context())
	if err != nil {
		s.writeErr(w, err)
	} else {
		writeJSON(w, meta)
	}
	if s.pauser.isPausing() {
		s.pauser.finish()
	}
}

// watchIdle pauses the workspace once no call came for its idle time, if
// it can take the workspace's lock (a lifecycle call holding it is
// activity too). Like a pause the workspace's CLI asks for, it ends this
// supervisor.
func (s *server) watchIdle(ctx context.Context) {
	tick := time.NewTicker(idleTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		idle, limit := s.pauser.idleFor(time.Now())
		if limit <= 0 || idle < limit || s.spec.LockPath == "" {
			continue
		}
		l := flock.New(s.spec.LockPath, flock.SetFlag(os.O_RDONLY))
		if got, err := l.TryLock(); err != nil || !got {
			continue
		}
		s.log.Info("idle: pausing", "idle_s", int(idle.Seconds()))
		_, err := s.pause(ctx)
		if err != nil && !s.pauser.isPausing() {
			l.Unlock()
			s.log.Warn("idle pause", "err", err)
			continue
		}
		if err != nil {
			s.log.Warn("idle pause failed: stopping", "err", err)
		}
		s.pauser.finish()
		// The lock stays held until this process exits, after the VM's end.
		return
	}
}

// dropPausedState removes the pause dir this supervisor's machine was
// resumed from, once the resume has been answered: the saved state is used
// up (its paused.json went before the launch), and unlinking a file of
// tens of MiB that was synced to disk took ~30 ms on a host with online
// discard, on the resume's path when the caller did it.
func (s *server) dropPausedState() {
	defer close(s.dropped)
	if s.spec.PauseDir == "" {
		return
	}
	if err := os.RemoveAll(s.spec.PauseDir); err != nil {
		s.log.Warn("removing the resumed machine's saved state", "err", err)
	}
}

// saved lists the ports of the services that own some.
func (t *portTable) saved() []ServicePorts {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ServicePorts
	for name, sp := range t.byName {
		out = append(out, ServicePorts{Service: name, Instance: sp.instance, Ports: append([]network.Published(nil), sp.ports...)})
	}
	return out
}

// republish opens again the ports of services restored with the machine
// (the same run of the service still running), on the same host ports when
// they are free (HostPort 0: any free port). A port that cannot be opened
// is logged and left out: the service runs, its published_ports tell.
func (s *server) republish(ctx context.Context, saved []ServicePorts) {
	for _, sp := range saved {
		info, err := s.vm.Agent().ServiceStatus(ctx, sp.Service)
		if err != nil || instanceOf(info) != sp.Instance || !running(info.State) {
			continue
		}
		var maps []PortMapping
		for _, p := range sp.Ports {
			maps = append(maps, PortMapping{GuestPort: p.GuestPort, HostPort: p.HostPort})
		}
		ps, err := s.ports.publish(maps)
		if err != nil && !errdefs.IsInvalidArgument(err) {
			for i := range maps {
				maps[i].HostPort = 0 // taken meanwhile: any free one
			}
			ps, err = s.ports.publish(maps)
		}
		if err != nil {
			s.log.Warn("publishing the ports of a restored service", "service", sp.Service, "err", err)
			continue
		}
		s.ports.commit(sp.Service, info, ps)
	}
}
