package supervisor

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// Service bounds.
const (
	maxReadyTimeout  = 600 * time.Second
	serviceStopGrace = 5 * time.Second
	serviceLogTail   = 30 // lines of log in a failed start's answer
)

func (s *server) serviceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/services", s.handleServiceStart)
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		l, err := s.vm.Agent().ListServices(r.Context())
		s.reply(w)(redactServices(s.redact, l), err)
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.replyService(w)(s.vm.Agent().ServiceStatus(r.Context(), r.PathValue("name")))
	})
	mux.HandleFunc("GET /v1/services/{name}/logs", func(w http.ResponseWriter, r *http.Request) {
		tail, err := strconv.Atoi(r.URL.Query().Get("tail_lines"))
		if err != nil || tail < 0 {
			tail = 0
		}
		maxBytes, _ := strconv.ParseInt(r.URL.Query().Get("max_bytes"), 10, 64)
		l, err := s.vm.Agent().ServiceLogs(r.Context(), r.PathValue("name"), tail, maxBytes)
		if err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, ServiceLogs{Name: l.Name, Log: redactLog(s.redact, l.Log, l.Truncated), Truncated: l.Truncated})
	})
	mux.HandleFunc("POST /v1/services/{name}/stop", func(w http.ResponseWriter, r *http.Request) {
		s.replyService(w)(s.vm.Agent().StopService(r.Context(), r.PathValue("name"), serviceStopGrace))
	})
}

// replyService writes a service's info, redacted, or err when it is set.
func (s *server) replyService(w http.ResponseWriter) func(info *agentproto.ServiceInfo, err error) {
	return func(info *agentproto.ServiceInfo, err error) {
		if err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, redactService(s.redact, *info))
	}
}

func (s *server) handleServiceStart(w http.ResponseWriter, r *http.Request) {
	var req ServiceStartRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.Command == "" {
		s.writeErr(w, errdefs.InvalidArgument("command", "a service needs a command"))
		return
	}
	if req.Cwd == "" {
		req.Cwd = agentproto.WorkspaceRoot
	}
	timeout := time.Duration(req.ReadyTimeoutMs) * time.Millisecond
	if timeout <= 0 || timeout > maxReadyTimeout {
		s.writeErr(w, errdefs.InvalidArgument("ready_timeout_seconds", "must be 1..%d", int(maxReadyTimeout.Seconds())))
		return
	}
	// The agent gives up at the readiness deadline; the host waits a little
	// longer for its answer (stopping a failed service takes a moment).
	ctx, cancel := context.WithTimeout(r.Context(), timeout+execGrace+serviceStopGrace)
	defer cancel()
	info, err := s.vm.Agent().StartService(ctx, agentproto.ServiceRequest{
		Name: req.Name, Argv: []string{"/bin/sh", "-lc", req.Command}, Env: req.Env, Cwd: req.Cwd,
		ReadyKind: req.ReadyKind, ReadyTarget: req.ReadyTarget,
		ReadyTimeoutMs: req.ReadyTimeoutMs, ReadyIntervalMs: req.ReadyIntervalMs,
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	res := ServiceStartResult{Service: redactService(s.redact, *info)}
	if info.State != agentproto.ServiceReady {
		if l, err := s.vm.Agent().ServiceLogs(r.Context(), req.Name, serviceLogTail, 16<<10); err == nil {
			res.LogTail = redactLog(s.redact, l.Log, l.Truncated)
		}
	}
	writeJSON(w, res)
}
