package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
	"github.com/pyrovm/pyro/internal/network"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/shell"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
	"github.com/pyrovm/pyro/internal/vm"
	"github.com/pyrovm/pyro/internal/vmm"
	"github.com/pyrovm/pyro/internal/vmm/backends"
)

// Named timeouts.
const (
	shutdownGrace = 15 * time.Second // guest sync + power-off
)

// Main runs a supervisor until its VM is shut down or dies. It reports
// readiness (or the boot error) as one JSON line on ready, then closes it.
func Main(specPath string, ready *os.File, log *slog.Logger) error {
	var spec Spec
	b, err := os.ReadFile(specPath)
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		return sendReady(ready, Ready{Error: &WireError{Code: errdefs.CodeInternal, Message: "read supervisor spec: " + err.Error()}})
	}
	// Read before booting: a damaged file need not cost a boot.
	set, err := loadSecrets(spec.SecretsPath)
	if err != nil {
		return sendReady(ready, Ready{Error: toWire(err)})
	}
	redact := set.Redactor()
	log = redactingLogger(log, redact)
	broker, err := loadBroker(spec.BrokerCAPath, set)
	if err != nil {
		return sendReady(ready, Ready{Error: toWire(redact.Error(err))})
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()

	// Until ready is sent, a launcher that dies abandons the boot.
	bootCtx, abandon := context.WithCancel(ctx)
	defer abandon()
	watch := watchLauncher(ready, abandon)
	defer watch.stop()
	// The workspace directory holds the info file (and disk, socket, log).
	home, err := watchHome(filepath.Dir(spec.InfoPath), abandon)
	if err != nil {
		return sendReady(ready, Ready{Error: toWire(err)})
	}
	defer home.stop()
	backend, err := backends.ByName(spec.Backend)
	if err != nil {
		return sendReady(ready, Ready{Error: toWire(err)})
	}
	began := time.Now()
	v, restoreErr, err := boot(bootCtx, backend, spec, broker, log)
	if err != nil {
		return sendReady(ready, Ready{Error: toWire(redact.Error(err))})
	}
	booted := time.Now()
	// After every boot, cold or restored (the saved machine has none).
	if err := installSecrets(bootCtx, v.Agent(), set.Installed()); err != nil {
		v.Close()
		return sendReady(ready, Ready{Error: toWire(redact.Error(err))})
	}
	if err := InstallBrokerCA(bootCtx, v.Agent(), broker); err != nil {
		v.Close()
		return sendReady(ready, Ready{Error: toWire(redact.Error(err))})
	}
	watch.stop()
	if bootCtx.Err() != nil && ctx.Err() == nil {
		// Before the socket and the info file: a newer supervisor of this
		// workspace may own those paths by now.
		v.Close()
		return errors.New("the launcher died before the supervisor was ready: nobody will use this VM")
	}
	s := &server{
		spec: spec, vm: v, log: log, shutdown: make(chan struct{}), redact: redact,
		shells:   shell.NewManager(shell.Options{Redact: redact}),
		commands: command.NewManager(command.Options{Redact: redact}),
		stdins:   map[string]*io.PipeWriter{},
		ports:    newPortTable(v.Network(), spec.NetworkPolicy),
		pauser:   newPauser(spec.IdlePauseSeconds),
		dropped:  make(chan struct{}),
	}
	if spec.Resume == nil {
		close(s.dropped) // nothing restored from the pause dir
	}
	if spec.Resume != nil && restoreErr == nil {
		s.republish(bootCtx, spec.Resume.Ports)
	}
	// Where a boot or resume goes (supervisor.log).
	log.Info("vm up", "restored", spec.RestoreStatePath != "" && restoreErr == nil, "boot_ms", booted.Sub(began).Milliseconds(),
		"vmm_start_ms", v.Phases.VMMStart.Milliseconds(), "agent_ms", v.Phases.Agent.Milliseconds(), "sync_ms", v.Phases.Sync.Milliseconds(),
		"setup_ms", time.Since(booted).Milliseconds())
	defer s.cleanup()

	_ = os.Remove(spec.Socket)
	ln, err := net.Listen("unix", spec.Socket)
	if err != nil {
		v.Close()
		return sendReady(ready, Ready{Error: s.wireErr(errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "listen on supervisor socket"))})
	}
	info := &Info{
		API: APIVersion,
		Pid: os.Getpid(), PidStart: vm.ProcStart(os.Getpid()), VMID: v.ID, Socket: spec.Socket,
		BootMs: v.BootDur.Milliseconds(), ExecutionMode: v.ExecutionMode(),
		GuestKernel: v.Hello.KernelRelease, StartedAt: time.Now().UTC(),
		Restored: spec.RestoreStatePath != "" && restoreErr == nil,
	}
	if restoreErr != nil {
		info.RestoreError = redact.String(restoreErr.Error())
	}
	info.VMMPid = v.VMMPid()
	if err := fsutil.WriteJSONAtomic(spec.InfoPath, info, 0o600); err != nil {
		v.Close()
		return sendReady(ready, Ready{Error: s.wireErr(err)})
	}
	// Room in the request line for a put's paths to remove (up to
	// agentproto.MaxRemoveBytes, query-escaped).
	srv := &http.Server{Handler: s.pauser.track(s.routes(), s), MaxHeaderBytes: 4 << 20}
	go func() { _ = srv.Serve(ln) }()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go s.ports.watch(watchCtx, v.Agent().ServiceStatus)
	go s.watchIdle(watchCtx)
	if err := sendReady(ready, Ready{Info: info}); err != nil {
		// The launcher died in the last moment: nobody records this VM.
		_ = srv.Close()
		v.Close()
		return fmt.Errorf("the launcher is gone, nobody will use this VM: %w", err)
	}
	if spec.Resume != nil {
		go s.dropPausedState()
	}

	graceful := false
	select {
	case <-s.shutdown:
		graceful = true
	case <-ctx.Done():
		graceful = true // SIGTERM: flush and power off like a stop
	case <-v.Exited():
		if !s.pauser.isPausing() {
			log.Warn("VM exited on its own", "console", v.ConsoleTail(10))
		}
	case <-v.Agent().Done():
		if !s.pauser.isPausing() {
			// The guest broke the protocol or a bound, or the agent died: its
			// answers cannot be trusted any more. Answered writes are on disk
			// (the agent flushes before answering), so killing the VM loses
			// none; the workspace reads stopped and "start" boots it again.
			log.Warn("guest agent session lost: stopping the VM", "reason", agentLost(v), "console", v.ConsoleTail(10))
		}
	case <-s.pauser.done:
	case <-home.gone:
		log.Warn("the workspace directory is gone: ending its VM")
	}
	if s.pauser.isPausing() {
		// The pause closed the agent session and ends the VMM itself: wait
		// for the save to end (its answer written) before anything goes.
		<-s.pauser.done
		graceful = !vmGone(v) // a failed save left QEMU up: power it off cleanly
	}
	// Stop taking calls; in-flight ones end with the VM.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	s.shells.CloseAll() // hang up before the guest powers off
	s.commands.CloseAll()
	if graceful {
		return v.Shutdown(context.Background(), shutdownGrace)
	}
	return v.Close()
}

// vmGone reports whether the VMM has exited.
func vmGone(v *vm.VM) bool {
	select {
	case <-v.Exited():
		return true
	default:
		return false
	}
}

// agentLost says why the agent session ended, for the log.
func agentLost(v *vm.VM) string {
	if err := v.Agent().Err(); err != nil {
		return err.Error()
	}
	return "the channel closed"
}

// boot starts the workspace's VM: restored from spec.RestoreStatePath into
// the disk copy at spec.OverlayPath when given, else (or when that fails)
// booted cold from the overlay. restoreErr is why a restore failed. The VM's
// BootDur covers a failed restore too.
func boot(ctx context.Context, b vmm.Backend, spec Spec, broker *network.Broker, log *slog.Logger) (v *vm.VM, restoreErr, err error) {
	vs := vm.Spec{
		KernelPath: spec.KernelPath, RootfsPath: spec.RootfsPath, OverlayPath: spec.OverlayPath,
		VCPUs: spec.VCPUs, MemMiB: spec.MemMiB, Accel: vmm.Accel(spec.Accel), GuestTSCKHz: spec.GuestTSCKHz, Kind: "workspace",
		Network: network.Policy(spec.NetworkPolicy), Egress: spec.Egress, Broker: broker, Pausable: true,
	}
	start := time.Now()
	RemoveStaleTops(spec.OverlayPath)
	if spec.RestoreStatePath != "" {
		rs := vs
		rs.Snapshot = &vmm.Restore{StatePath: spec.RestoreStatePath, DiskPath: spec.OverlayPath, Writable: true}
		rs.BootTimeout = vm.RestoreTimeout
		if spec.Resume != nil {
			// A paused workspace's memory is all its processes: wait as long
			// as for a boot before giving it up for a cold boot (a state QEMU
			// refuses fails at once anyway).
			rs.BootTimeout = vm.DefaultBootTimeout
			if spec.Resume.NewMachineID {
				rs.MachineID = vm.NewMachineID()
			}
		}
		v, err := vm.Boot(ctx, b, spec.RunDir, rs, log)
		if err == nil {
			log.Debug("vm restored from snapshot", "vm", v.ID, "boot_ms", v.BootDur.Milliseconds())
			return v, nil, nil
		}
		if ctx.Err() != nil {
			return nil, nil, err
		}
		what := "the snapshot"
		if spec.Resume != nil {
			what = "the paused machine"
		}
		log.Warn("restoring "+what+" failed: booting cold", "err", err)
		// The restored guest may have written to the copy: a cold boot
		// starts over from a fresh overlay. A paused workspace's disk is its
		// own, though: it boots cold as it is (like after a crash).
		if spec.Resume == nil {
			if rerr := os.Remove(spec.OverlayPath); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				return nil, nil, errors.Join(err, rerr)
			}
		}
		restoreErr = err
	}
	v, err = vm.Boot(ctx, b, spec.RunDir, vs, log)
	if err != nil {
		return nil, nil, err
	}
	if restoreErr != nil {
		v.BootDur = time.Since(start)
	}
	return v, restoreErr, nil
}

type server struct {
	spec     Spec
	vm       *vm.VM
	log      *slog.Logger
	once     sync.Once
	shutdown chan struct{}
	shells   *shell.Manager
	ports    *portTable
	redact   *secrets.Redactor // the workspace's secret values; nil when none
	commands *command.Manager
	pauser   *pauser
	forkMu   sync.Mutex    // fork saves, one at a time
	dropped  chan struct{} // closed once a resumed machine's pause dir is gone (see dropPausedState)

	stdinMu sync.Mutex
	stdins  map[string]*io.PipeWriter // command id -> its stdin, until fed
}

func (s *server) cleanup() {
	_ = os.Remove(s.spec.Socket)
	_ = os.Remove(s.spec.InfoPath)
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		info, err := wire.ReadInfo(s.spec.InfoPath)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, info)
	})
	mux.HandleFunc("GET /v1/network", func(w http.ResponseWriter, r *http.Request) {
		info := network.Info{Policy: network.PolicyOff}
		if st := s.vm.Network(); st != nil {
			info = st.Info()
		}
		writeJSON(w, info)
	})
	s.networkRoutes(mux)
	mux.HandleFunc("POST /v1/exec", s.handleExec)
	mux.HandleFunc("POST /v1/archive", s.handlePutArchive)
	mux.HandleFunc("GET /v1/archive", s.handleGetArchive)
	mux.HandleFunc("POST /v1/sync", func(w http.ResponseWriter, r *http.Request) {
		if err := s.vm.Agent().Sync(r.Context()); err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, struct{}{})
	})
	s.shellRoutes(mux)
	s.commandRoutes(mux)
	s.serviceRoutes(mux)
	mux.HandleFunc("POST /v1/pause", s.handlePause)
	mux.HandleFunc("POST /v1/fork", s.handleFork)
	mux.HandleFunc("PUT /v1/idle", func(w http.ResponseWriter, r *http.Request) {
		var req IdleRequest
		if !s.decode(w, r, &req) {
			return
		}
		s.pauser.setIdle(req.IdlePauseSeconds)
		writeJSON(w, struct{}{})
	})
	mux.HandleFunc("POST /v1/shutdown", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, struct{}{})
		s.once.Do(func() { close(s.shutdown) })
	})
	return mux
}

// execUntracked runs one of the workspace manager's own scripts.
func (s *server) execUntracked(w http.ResponseWriter, r *http.Request, req ExecRequest) {
	res, err := s.vm.Agent().Exec(r.Context(), req.ExecRequest)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, redactExecResult(s.redact, res))
}

func (s *server) handlePutArchive(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	res, err := s.vm.Agent().PutArchive(r.Context(), q.Get("path"), q["remove"], r.Body)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, archiveResult(res))
}

// handleGetArchive streams a tar of a guest path. An error before the first
// byte is a normal error answer; one after it travels in the trailer.
func (s *server) handleGetArchive(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	maxBytes, _ := strconv.ParseInt(r.URL.Query().Get("max_bytes"), 10, 64)
	w.Header().Set("Trailer", errorTrailer)
	lw := &lazyWriter{w: w}
	res, err := s.vm.Agent().GetArchive(r.Context(), path, maxBytes, lw)
	if err != nil {
		if !lw.started {
			s.writeErr(w, err)
			return
		}
		b, _ := json.Marshal(s.wireErr(err))
		w.Header().Set(errorTrailer, string(b))
		return
	}
	if !lw.started {
		lw.start()
	}
	b, _ := json.Marshal(archiveResult(res))
	w.Header().Set(resultTrailer, string(b))
}

// Trailers of a streamed archive.
const (
	errorTrailer  = "X-Pyro-Error"
	resultTrailer = "X-Pyro-Result"
)

type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) start() {
	l.started = true
	l.w.Header().Set("Content-Type", "application/x-tar")
	l.w.Header().Add("Trailer", resultTrailer)
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.w.Write(p)
}

func sendReady(f *os.File, r Ready) error {
	if f == nil {
		return nil
	}
	defer f.Close()
	b, _ := json.Marshal(r)
	_, err := f.Write(append(b, '\n'))
	if r.Error != nil {
		return fmt.Errorf("%s: %s", r.Error.Code, r.Error.Message)
	}
	return err
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// wireErr is err as the API carries it, with secret values redacted.
func (s *server) wireErr(err error) *WireError { return toWire(s.redact.Error(err)) }

// writeErr answers with err, its secret values redacted.
func (s *server) writeErr(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus(err))
	_ = json.NewEncoder(w).Encode(struct {
		Error *WireError `json:"error"`
	}{s.wireErr(err)})
}

func httpStatus(err error) int {
	switch {
	case errdefs.IsInvalidArgument(err):
		return http.StatusBadRequest
	case errdefs.IsNotFound(err):
		return http.StatusNotFound
	case errdefs.IsFailedPrecondition(err), errors.Is(err, errdefs.ErrAlreadyExists):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
