package supervisor

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/shell"
)

// shellOpenTimeout bounds starting a shell in the guest.
const shellOpenTimeout = 30 * time.Second

// loginShell prefers bash and falls back to the image's sh.
var loginShell = []string{"/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l"}

func (s *server) shellRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/shells", s.handleShellOpen)
	mux.HandleFunc("GET /v1/shells", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.shells.List())
	})
	mux.HandleFunc("GET /v1/shells/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.shells.Info(r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/shells/{id}/read", s.handleShellRead)
	mux.HandleFunc("POST /v1/shells/{id}/input", s.handleShellInput)
	mux.HandleFunc("DELETE /v1/shells/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.shells.Close(r.PathValue("id")))
	})
}

func (s *server) handleShellOpen(w http.ResponseWriter, r *http.Request) {
	var req ShellOpenRequest
	if !s.decode(w, r, &req) {
		return
	}
	// Checked here too, before anything starts in the guest.
	if req.Cols == 0 {
		req.Cols = shell.DefaultCols
	}
	if req.Rows == 0 {
		req.Rows = shell.DefaultRows
	}
	if err := shell.CheckSize(req.Cols, req.Rows); err != nil {
		s.writeErr(w, err)
		return
	}
	if req.Cwd == "" {
		req.Cwd = agentproto.WorkspaceRoot
	}
	ctx, cancel := context.WithTimeout(r.Context(), shellOpenTimeout)
	defer cancel()
	conn, err := s.vm.Agent().OpenShell(ctx, agentproto.ShellRequest{
		Argv: loginShell, Env: req.Env, Cwd: req.Cwd, Cols: req.Cols, Rows: req.Rows,
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	info, err := s.shells.Open(conn, req.Cwd, req.Cols, req.Rows)
	if err != nil {
		conn.Close()
	}
	s.reply(w)(info, err)
}

func (s *server) handleShellRead(w http.ResponseWriter, r *http.Request) {
	var req ShellReadRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.WaitForIdleMs < 0 || req.MaxChars < 0 {
		s.writeErr(w, errdefs.InvalidArgument("wait_for_idle_ms", "must not be negative"))
		return
	}
	s.reply(w)(s.shells.Read(r.Context(), r.PathValue("id"), shell.ReadRequest{
		Cursor: req.Cursor, MaxChars: req.MaxChars, Plain: req.Plain,
		WaitForIdle: time.Duration(req.WaitForIdleMs) * time.Millisecond,
	}))
}

// handleShellInput writes input, then signals, then resizes: whichever are set.
func (s *server) handleShellInput(w http.ResponseWriter, r *http.Request) {
	var req ShellInputRequest
	if !s.decode(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	var info *shell.Info
	var err error
	// With nothing else asked, an empty write: it only reports the shell
	// (and refuses a closed one, like any write).
	if req.Input != "" || (req.Signal == "" && req.Cols == 0 && req.Rows == 0) {
		info, err = s.shells.Write(id, []byte(req.Input))
	}
	if err == nil && req.Signal != "" {
		info, err = s.shells.Signal(id, req.Signal)
	}
	if err == nil && (req.Cols != 0 || req.Rows != 0) {
		info, err = s.shells.Resize(id, req.Cols, req.Rows)
	}
	s.reply(w)(info, err)
}

// decode reads a JSON request body of at most 4 MiB.
func (s *server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.writeErr(w, errdefs.InvalidArgument("request", "bad request body: %s", strings.TrimSpace(err.Error())))
		return false
	}
	return true
}

// reply writes v, or err when it is set.
func (s *server) reply(w http.ResponseWriter) func(v any, err error) {
	return func(v any, err error) {
		if err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, v)
	}
}
