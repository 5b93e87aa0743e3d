package supervisor

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
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
		if err != nil {
			s.writeErr(w, err)
			return
		}
		out := make([]Service, len(l))
		for i, info := range l {
			out[i] = s.service(info)
		}
		writeJSON(w, out)
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
		writeJSON(w, agentproto.ServiceLogs{Name: l.Name, Log: []byte(redactLog(s.redact, l.Log, l.Truncated)), Truncated: l.Truncated})
	})
	mux.HandleFunc("POST /v1/services/{name}/stop", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		info, err := s.vm.Agent().StopService(r.Context(), name, serviceStopGrace)
		if err == nil {
			s.ports.unpublishAll(name)
		}
		s.replyService(w)(info, err)
	})
}

// replyService writes a service's info, redacted, or err when it is set.
func (s *server) replyService(w http.ResponseWriter) func(info *agentproto.ServiceInfo, err error) {
	return func(info *agentproto.ServiceInfo, err error) {
		if err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, s.service(*info))
	}
}

// service is what the host answers for a guest's service: redacted, with
// the ports the host publishes for it.
func (s *server) service(info agentproto.ServiceInfo) Service {
	return Service{ServiceInfo: redactService(s.redact, info), PublishedPorts: s.ports.of(info.Name)}
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
	// Ports first: a host port that is taken fails the start before the
	// service runs, and a published port is there the moment it is ready.
	// A previous run of this name that has ended gives its ports back first,
	// so that it can be started again on the same host ports.
	if len(req.Publish) > 0 && len(s.ports.of(req.Name)) > 0 {
		if info, err := s.vm.Agent().ServiceStatus(r.Context(), req.Name); errdefs.IsNotFound(err) || err == nil && !running(info.State) {
			s.ports.unpublishAll(req.Name)
		}
	}
	published, err := s.ports.publish(req.Publish)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	// The agent gives up at the readiness deadline; the host waits a little
	// longer for its answer (stopping a failed service takes a moment).
	ctx, cancel := context.WithTimeout(r.Context(), timeout+agentclient.Grace+serviceStopGrace)
	defer cancel()
	info, err := s.vm.Agent().StartService(ctx, agentproto.ServiceRequest{
		Name: req.Name, Argv: []string{"/bin/sh", "-lc", req.Command}, Env: req.Env, Cwd: req.Cwd,
		ReadyKind: req.ReadyKind, ReadyTarget: req.ReadyTarget,
		ReadyTimeoutMs: req.ReadyTimeoutMs, ReadyIntervalMs: req.ReadyIntervalMs,
	})
	if err != nil {
		s.ports.release(published)
		s.writeErr(w, err)
		return
	}
	if info.State == agentproto.ServiceReady {
		s.ports.commit(req.Name, info, published)
	} else {
		s.ports.release(published) // a failed start leaves nothing behind
	}
	res := ServiceStartResult{Service: s.service(*info)}
	if info.State != agentproto.ServiceReady {
		if l, err := s.vm.Agent().ServiceLogs(r.Context(), req.Name, serviceLogTail, 16<<10); err == nil {
			res.LogTail = redactLog(s.redact, l.Log, l.Truncated)
		}
	}
	writeJSON(w, res)
}
