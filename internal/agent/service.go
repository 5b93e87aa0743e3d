//go:build linux

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// Defaults and bounds of the service ops.
const (
	defaultReadyTimeout  = 30 * time.Second
	maxReadyTimeout      = 10 * time.Minute
	defaultReadyInterval = 200 * time.Millisecond
	minReadyInterval     = 20 * time.Millisecond
	maxReadyInterval     = 10 * time.Second
	maxProbeTimeout      = 5 * time.Second
	minProbeTimeout      = 50 * time.Millisecond
	defaultStopGrace     = 5 * time.Second
	maxStopGrace         = time.Minute
	// startKillGrace: TERM -> KILL for a start that failed or was canceled.
	startKillGrace = 2 * time.Second
	// portCheckTimeout bounds the dial that tells whether a readiness port
	// is already taken before the start.
	portCheckTimeout = 200 * time.Millisecond
	defaultLogBytes  = 1 << 20
	maxLogBytes      = 8 << 20
)

// serviceRegistry is every service of one services root. The agent has one
// (the root never changes); it outlives sessions, as the services do.
type serviceRegistry struct {
	root string

	mu       sync.Mutex
	services map[string]*service
	pending  map[string]bool // names whose start is being set up
}

var (
	registriesMu sync.Mutex
	registries   = map[string]*serviceRegistry{}
)

func servicesRoot(opts Options) string {
	if opts.ServicesRoot != "" {
		return filepath.Clean(opts.ServicesRoot)
	}
	return agentproto.ServicesRoot
}

// registryFor returns the process-wide registry of root.
func registryFor(root string) *serviceRegistry {
	registriesMu.Lock()
	defer registriesMu.Unlock()
	reg := registries[root]
	if reg == nil {
		reg = &serviceRegistry{root: root, services: map[string]*service{}, pending: map[string]bool{}}
		registries[root] = reg
	}
	return reg
}

// service is one run of a named process. Its fields are guarded by the
// registry's mutex.
type service struct {
	info      agentproto.ServiceInfo
	dir       string
	readyPort int  // the tcp or http readiness port; 0 for other kinds
	stopping  bool // an OpServiceStop is ending it
	// done is closed once the process has been reaped and info updated.
	done chan struct{}
}

func (svc *service) ended() bool {
	select {
	case <-svc.done:
		return true
	default:
		return false
	}
}

// running: a start call is still at it, or the process runs. (A process
// that ends while starting stays so until its start call decides why.)
func (svc *service) running() bool {
	return svc.info.State == agentproto.ServiceStarting || svc.info.State == agentproto.ServiceReady
}

// startSpec is a validated OpServiceStart.
type startSpec struct {
	name     string
	path     string // argv[0] resolved
	argv     []string
	env      []string
	cwd      string
	kind     string
	target   string
	host     string // tcp and http: where the port is dialed
	port     int    // tcp and http: the readiness port
	url      string // http
	file     string // file: the target resolved against cwd
	timeout  time.Duration
	interval time.Duration
}

func (s *server) parseServiceStart(req *agentproto.ServiceRequest) (*startSpec, error) {
	if req == nil {
		return nil, wireError(agentproto.ErrCodeBadRequest, "service start needs a service")
	}
	if err := checkServiceName(req.Name); err != nil {
		return nil, err
	}
	if len(req.Argv) == 0 {
		return nil, wireError(agentproto.ErrCodeBadRequest, "service start needs a non-empty argv")
	}
	sp := &startSpec{name: req.Name, argv: req.Argv, kind: req.ReadyKind, target: req.ReadyTarget}
	var err error
	if sp.timeout, err = millis("ready_timeout_ms", req.ReadyTimeoutMs, defaultReadyTimeout, time.Millisecond, maxReadyTimeout); err != nil {
		return nil, err
	}
	if sp.interval, err = millis("ready_interval_ms", req.ReadyIntervalMs, defaultReadyInterval, minReadyInterval, maxReadyInterval); err != nil {
		return nil, err
	}
	if sp.env, err = buildEnv(req.Env); err != nil {
		return nil, wireError(agentproto.ErrCodeBadRequest, "%v", err)
	}
	def := s.defaultServiceCwd()
	sp.cwd = req.Cwd
	switch {
	case sp.cwd == "":
		sp.cwd = def
	case !filepath.IsAbs(sp.cwd):
		sp.cwd = filepath.Join(def, sp.cwd)
	default:
		sp.cwd = filepath.Clean(sp.cwd)
	}
	if err := sp.parseReadiness(); err != nil {
		return nil, err
	}
	if err := checkDir(sp.cwd); err != nil {
		return nil, err
	}
	if sp.path, err = lookPath(req.Argv[0], sp.env, sp.cwd); err != nil {
		return nil, wireError(agentproto.ErrCodeExecFailed, "%v", err)
	}
	return sp, nil
}

// defaultServiceCwd is the workspace root, or / when there is none.
func (s *server) defaultServiceCwd() string {
	ws := s.workspaceRoot()
	if st, err := os.Stat(ws); err == nil && st.IsDir() {
		return ws
	}
	return "/"
}

// validServiceName: ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ (no regexp package in
// the static agent for this).
func validServiceName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

func checkServiceName(name string) error {
	if !validServiceName(name) {
		return wireError(agentproto.ErrCodeBadRequest,
			"invalid service name %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// millis turns a millisecond field into a duration: 0 means def, anything
// outside lo..hi is refused.
func millis(field string, ms int64, def, lo, hi time.Duration) (time.Duration, error) {
	if ms == 0 {
		return def, nil
	}
	d := time.Duration(ms) * time.Millisecond
	if ms < 0 || d < lo || d > hi {
		return 0, wireError(agentproto.ErrCodeBadRequest, "%s %d is out of range (%d..%d)", field, ms, lo.Milliseconds(), hi.Milliseconds())
	}
	return d, nil
}

// serviceStart starts a service and waits until it is ready, failed, or the
// host cancels. It never leaves a half-started process behind: unless it
// answers with a ready service, the process group is gone.
func (s *server) serviceStart(stream net.Conn, fw *frameWriter, req *agentproto.ServiceRequest) error {
	sp, err := s.parseServiceStart(req)
	if err != nil {
		return err
	}
	reg := s.services
	if err := reg.reserve(sp.name); err != nil {
		return err
	}
	installed := false
	defer func() {
		if !installed {
			reg.mu.Lock()
			delete(reg.pending, sp.name)
			reg.mu.Unlock()
		}
	}()

	if sp.port != 0 && portAnswers(sp.host, sp.port) {
		return reg.portInUse(sp.port)
	}
	svc, exited, err := s.spawnService(sp)
	if err != nil {
		return err
	}
	reg.mu.Lock()
	reg.services[sp.name] = svc
	delete(reg.pending, sp.name)
	installed = true
	reg.writeState(svc)
	reg.mu.Unlock()
	go reg.wait(svc, exited)

	return s.awaitReady(stream, fw, svc, sp)
}

// reserve claims name for a start, unless a service of that name runs.
func (reg *serviceRegistry) reserve(name string) error {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	state := ""
	if reg.pending[name] {
		state = agentproto.ServiceStarting
	} else if svc := reg.services[name]; svc != nil && svc.running() {
		state = svc.info.State
	}
	if state != "" {
		return wireError(agentproto.ErrCodeExists, "service %s is already running (state %s); stop it first or pick another name", name, state)
	}
	reg.pending[name] = true
	return nil
}

func (reg *serviceRegistry) portInUse(port int) error {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	var owners []string
	for name, svc := range reg.services {
		if svc.running() && svc.readyPort == port {
			owners = append(owners, name)
		}
	}
	if len(owners) > 0 {
		slices.Sort(owners)
		return wireError(agentproto.ErrCodePortInUse, "port %d is already in use by service %s", port, strings.Join(owners, ", "))
	}
	return wireError(agentproto.ErrCodePortInUse, "port %d is already in use by another process", port)
}

// spawnService starts the process in its own session, with /dev/null as
// stdin and its log (truncated) as stdout and stderr.
func (s *server) spawnService(sp *startSpec) (*service, <-chan syscall.WaitStatus, error) {
	dir := filepath.Join(s.services.root, sp.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, wireError(agentproto.ErrCodeInternal, "service directory: %v", err)
	}
	logPath := filepath.Join(dir, "log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, wireError(agentproto.ErrCodeInternal, "service log: %v", err)
	}
	defer logf.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return nil, nil, wireError(agentproto.ErrCodeInternal, "%v", err)
	}
	defer null.Close()
	started := time.Now()
	pid, exited, err := s.reaper.start(sp.path, sp.argv, &syscall.ProcAttr{
		Dir:   sp.cwd,
		Env:   sp.env,
		Files: []uintptr{null.Fd(), logf.Fd(), logf.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return nil, nil, wireError(agentproto.ErrCodeExecFailed, "starting %s: %v", sp.argv[0], err)
	}
	svc := &service{
		dir:       dir,
		readyPort: sp.port,
		done:      make(chan struct{}),
		info: agentproto.ServiceInfo{
			Name:        sp.name,
			State:       agentproto.ServiceStarting,
			Pid:         pid,
			Argv:        slices.Clone(sp.argv),
			Cwd:         sp.cwd,
			ReadyKind:   sp.kind,
			ReadyTarget: sp.target,
			StartedAt:   timestamp(started),
			LogPath:     logPath,
		},
	}
	return svc, exited, nil
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// wait records the end of the process. A service that was ready has exited;
// one being stopped is stopped; one still starting is left to its start call,
// which knows why it ended.
func (reg *serviceRegistry) wait(svc *service, exited <-chan syscall.WaitStatus) {
	defer recoverLog("service waiter")
	ws := <-exited
	reg.mu.Lock()
	defer reg.mu.Unlock()
	code, sig := exitStatus(ws)
	svc.info.ExitCode = &code
	svc.info.Signal = sig
	svc.info.EndedAt = timestamp(time.Now())
	switch {
	case svc.stopping:
		svc.info.State = agentproto.ServiceStopped
	case svc.info.State == agentproto.ServiceReady:
		svc.info.State = agentproto.ServiceExited
	}
	reg.writeState(svc)
	close(svc.done)
}

// writeState replaces state.json atomically; reg.mu is held.
func (reg *serviceRegistry) writeState(svc *service) {
	b, err := json.MarshalIndent(svc.info, "", "  ")
	if err != nil {
		log.Printf("service %s: %v", svc.info.Name, err)
		return
	}
	path := filepath.Join(svc.dir, "state.json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		log.Printf("service %s: writing state: %v", svc.info.Name, err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		log.Printf("service %s: writing state: %v", svc.info.Name, err)
	}
}

// awaitReady runs the readiness checks until one passes, the process ends,
// the deadline passes or the host cancels.
func (s *server) awaitReady(stream net.Conn, fw *frameWriter, svc *service, sp *startSpec) error {
	reg := s.services
	hostGone := watchHost(stream)
	defer func() {
		_ = stream.SetReadDeadline(time.Now())
		<-hostGone
	}()
	// Probes end early when the host goes or the process ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-hostGone:
		case <-svc.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	// Whatever goes wrong (a panic included), the start ends in a state
	// other than starting, with the process gone.
	defer func() {
		reg.mu.Lock()
		starting := svc.info.State == agentproto.ServiceStarting
		reg.mu.Unlock()
		if starting {
			reg.fail(svc, "start failed: internal error")
		}
	}()

	canceled := func() error {
		fw.abort()
		reg.fail(svc, "start canceled")
		return errCanceled
	}
	deadline := time.Now().Add(sp.timeout)
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		if s.probe(ctx, sp, deadline) {
			reg.mu.Lock()
			// Ready only while the process runs and nobody stops it.
			if svc.info.State == agentproto.ServiceStarting && !svc.ended() && !svc.stopping {
				svc.info.State = agentproto.ServiceReady
				svc.info.ReadyAt = timestamp(time.Now())
				reg.writeState(svc)
				info := svc.info
				reg.mu.Unlock()
				return fw.json(agentproto.FrameResult, info)
			}
			reg.mu.Unlock()
		}
		// A cancel or an exit explains a failed check better than the
		// deadline does.
		select {
		case <-hostGone:
			return canceled()
		case <-svc.done:
			return fw.json(agentproto.FrameResult, reg.endedWhileStarting(svc))
		default:
		}
		if !time.Now().Before(deadline) {
			info := reg.fail(svc, fmt.Sprintf("not ready after %v (readiness: %s)", sp.timeout, sp.readiness()))
			return fw.json(agentproto.FrameResult, info)
		}
		tick.Reset(min(sp.interval, time.Until(deadline)))
		select {
		case <-hostGone:
			return canceled()
		case <-svc.done:
			return fw.json(agentproto.FrameResult, reg.endedWhileStarting(svc))
		case <-tick.C:
		}
	}
}

// fail ends a service that is still starting: its process group is killed
// (TERM, then KILL) and reaped, and the service failed for reason.
func (reg *serviceRegistry) fail(svc *service, reason string) agentproto.ServiceInfo {
	killAndReap(svc, startKillGrace)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if svc.info.State == agentproto.ServiceStarting {
		svc.info.State = agentproto.ServiceFailed
		svc.info.Reason = reason
		reg.writeState(svc)
	}
	return svc.info
}

// endedWhileStarting fails a service whose process exited before it was
// ready (unless a stop got there first). What the process left behind in its
// process group is killed: a failed start leaves nothing running.
func (reg *serviceRegistry) endedWhileStarting(svc *service) agentproto.ServiceInfo {
	killAndReap(svc, 0)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if svc.info.State == agentproto.ServiceStarting {
		svc.info.State = agentproto.ServiceFailed
		if svc.info.Signal != "" {
			svc.info.Reason = fmt.Sprintf("killed by SIG%s before it was ready", svc.info.Signal)
		} else {
			svc.info.Reason = fmt.Sprintf("exited with code %d before it was ready", *svc.info.ExitCode)
		}
		reg.writeState(svc)
	}
	return svc.info
}

// killAndReap sends TERM to the service's process group, KILL after grace,
// and returns once the process has been reaped. Whatever is left of the
// group then gets KILL too.
func killAndReap(svc *service, grace time.Duration) {
	pgid := svc.info.Pid // read-only after the spawn
	if !svc.ended() {
		_ = unix.Kill(-pgid, unix.SIGTERM)
		_ = unix.Kill(-pgid, unix.SIGCONT) // a stopped process acts on TERM only once continued
		t := time.NewTimer(grace)
		select {
		case <-svc.done:
		case <-t.C:
			_ = unix.Kill(-pgid, unix.SIGKILL)
			<-svc.done
		}
		t.Stop()
	}
	_ = unix.Kill(-pgid, unix.SIGKILL)
}

// lookup returns the service called req.Name.
func (s *server) lookupService(req *agentproto.ServiceRequest) (*service, error) {
	if req == nil {
		return nil, wireError(agentproto.ErrCodeBadRequest, "service ops need a service name")
	}
	if err := checkServiceName(req.Name); err != nil {
		return nil, err
	}
	reg := s.services
	reg.mu.Lock()
	defer reg.mu.Unlock()
	svc := reg.services[req.Name]
	if svc == nil {
		return nil, wireError(agentproto.ErrCodeNotFound, "no service named %s; list them with service list", req.Name)
	}
	return svc, nil
}

func (reg *serviceRegistry) info(svc *service) agentproto.ServiceInfo {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return svc.info
}

func (reg *serviceRegistry) list() agentproto.ServiceList {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	l := agentproto.ServiceList{Services: []agentproto.ServiceInfo{}}
	for _, svc := range reg.services {
		l.Services = append(l.Services, svc.info)
	}
	slices.SortFunc(l.Services, func(a, b agentproto.ServiceInfo) int { return strings.Compare(a.Name, b.Name) })
	return l
}

func (s *server) serviceStatus(fw *frameWriter, req *agentproto.ServiceRequest) error {
	svc, err := s.lookupService(req)
	if err != nil {
		return err
	}
	return fw.json(agentproto.FrameResult, s.services.info(svc))
}

// serviceStop ends a running service: TERM to its process group, KILL after
// the grace period, then it is reaped. A service that already ended is
// answered as it is.
func (s *server) serviceStop(fw *frameWriter, req *agentproto.ServiceRequest) error {
	svc, err := s.lookupService(req)
	if err != nil {
		return err
	}
	grace, err := millis("stop_grace_ms", req.StopGraceMs, defaultStopGrace, time.Millisecond, maxStopGrace)
	if err != nil {
		return err
	}
	reg := s.services
	reg.mu.Lock()
	running := svc.running()
	if running {
		svc.stopping = true
	}
	reg.mu.Unlock()
	if running {
		killAndReap(svc, grace)
	}
	return fw.json(agentproto.FrameResult, reg.info(svc))
}
