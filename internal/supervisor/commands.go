package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// Workspace commands run through the command table (internal/command):
// foreground ones answer when they end (or stream their output while they
// run), background ones answer at once and run on until they end, are
// killed, or the VM stops. Internal scripts of the workspace manager (diff,
// file ops) are not tracked.

func (s *server) commandRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/commands", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.commands.List())
	})
	mux.HandleFunc("GET /v1/commands/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.commands.Info(r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/commands/{id}/logs", s.handleCommandLogs)
	mux.HandleFunc("POST /v1/commands/{id}/wait", func(w http.ResponseWriter, r *http.Request) {
		var req CommandWaitRequest
		if !s.decode(w, r, &req) {
			return
		}
		s.reply(w)(s.commands.Wait(r.Context(), r.PathValue("id"), time.Duration(req.TimeoutMs)*time.Millisecond))
	})
	mux.HandleFunc("POST /v1/commands/{id}/kill", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.commands.Kill(r.Context(), r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/commands/{id}/stdin", s.handleCommandStdin)
}

// ran is what a runner keeps for the answer: the agent client's result (its
// output capped) and how long the agent call took (for pyro bench).
type ran struct {
	res   *agentclient.ExecResult
	agent time.Duration
	err   error // why it did not run to its end
}

// runner runs req in the guest for the command table, keeping its result
// in out.
func (s *server) runner(req agentproto.ExecRequest, out *ran) command.Runner {
	return func(ctx context.Context, stdout, stderr io.Writer, stdin io.Reader) (*agentproto.ExecResult, error) {
		// The agent client bounds the call (timeout + agentclient.Grace) and
		// gives the session up past it; Main then stops the VM.
		start := time.Now()
		r, err := s.vm.Agent().ExecIO(ctx, req, agentclient.ExecStreams{Stdout: stdout, Stderr: stderr, Stdin: stdin})
		if err != nil {
			out.err = s.redact.Error(err)
			return nil, out.err
		}
		*out = ran{res: r, agent: time.Since(start)}
		return &r.ExecResult, nil
	}
}

func (s *server) handleExec(w http.ResponseWriter, r *http.Request) {
	var req ExecRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		s.writeErr(w, errdefs.InvalidArgument("request", "bad exec request: %v", err))
		return
	}
	if !req.Track && !req.Background && !req.Stream {
		s.execUntracked(w, r, req)
		return
	}
	if req.StdinStream && !req.Stream {
		s.writeErr(w, errdefs.InvalidArgument("stdin", "stdin needs a streamed exec"))
		return
	}
	var res ran
	ctx := r.Context()
	if req.Background {
		// The command outlives this call; the table kills it at shutdown.
		ctx = context.WithoutCancel(ctx)
	}
	var stdin io.Reader
	var feed *io.PipeWriter
	if req.StdinStream {
		var pr *io.PipeReader
		pr, feed = io.Pipe()
		stdin = pr
		defer pr.Close() // the command ended with this call: writes fail
		defer feed.Close()
	}
	info, err := s.commands.Start(ctx, req.Shell, req.Background, stdin, s.runner(req.ExecRequest, &res))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if !req.Background {
		defer s.commands.Release(info.CommandID)
	}
	if feed != nil {
		s.stdinMu.Lock()
		s.stdins[info.CommandID] = feed
		s.stdinMu.Unlock()
		defer func() {
			s.stdinMu.Lock()
			delete(s.stdins, info.CommandID)
			s.stdinMu.Unlock()
		}()
	}
	switch {
	case req.Background:
		writeJSON(w, info)
	case req.Stream:
		s.streamCommand(w, r, info, &res)
	default:
		done, _ := s.commands.Done(info.CommandID)
		<-done // the request's context ends the command too
		s.reply(w)(s.commandResult(info.CommandID, &res))
	}
}

// commandResult is the answer for a finished foreground command.
func (s *server) commandResult(id string, res *ran) (*ExecResult, error) {
	if res.res == nil {
		if res.err != nil {
			return nil, res.err
		}
		return nil, errdefs.New(errdefs.ErrUnavailable, agentclient.CodeAgentUnavailable, "command %s did not run to its end", id)
	}
	out := redactExecResult(s.redact, res.res)
	out.CommandID, out.AgentMs, out.AgentUs = id, res.agent.Milliseconds(), res.agent.Microseconds()
	out.Guest = boundTiming(res.res.Timing, out.AgentUs)
	return &out, nil
}

// boundTiming keeps the guest's account of an exec within what the host
// measured: each part between 0 and the whole call.
func boundTiming(t *agentproto.ExecTiming, limitUs int64) *agentproto.ExecTiming {
	if t == nil {
		return nil
	}
	b := func(v int64) int64 { return min(max(v, 0), limitUs) }
	return &agentproto.ExecTiming{PlanUs: b(t.PlanUs), StartUs: b(t.StartUs), RunUs: b(t.RunUs), OutputUs: b(t.OutputUs),
		SyncUs: b(t.SyncUs), TotalUs: b(t.TotalUs)}
}

// streamCommand answers with ExecEvent lines: the command, its output as it
// comes, then its result (or error).
func (s *server) streamCommand(w http.ResponseWriter, r *http.Request, info *command.Info, res *ran) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	flush := func() {
		_ = bw.Flush()
		_ = http.NewResponseController(w).Flush()
	}
	_ = enc.Encode(ExecEvent{Command: info})
	flush()
	id := info.CommandID
	var cur [2]int64
	for {
		// Take the change channel before reading, so no change is missed.
		changed, err := s.commands.Changed(id)
		if err != nil {
			_ = enc.Encode(ExecEvent{Error: s.wireErr(err)})
			flush()
			return
		}
		cinfo, chunks, err := s.commands.Logs(id, command.LogsRequest{StdoutCursor: cur[0], StderrCursor: cur[1], MaxBytes: command.MaxReadBytes})
		if err != nil {
			_ = enc.Encode(ExecEvent{Error: s.wireErr(err)})
			flush()
			return
		}
		if len(chunks[0].Data) > 0 {
			_ = enc.Encode(ExecEvent{Stdout: chunks[0].Data})
		}
		if len(chunks[1].Data) > 0 {
			_ = enc.Encode(ExecEvent{Stderr: chunks[1].Data})
		}
		cur = [2]int64{chunks[0].Next, chunks[1].Next}
		more := chunks[0].More || chunks[1].More
		if cinfo.Ended() && !more {
			result, err := s.commandResult(id, res)
			if err != nil {
				_ = enc.Encode(ExecEvent{Error: s.wireErr(err)})
			} else {
				_ = enc.Encode(ExecEvent{Result: result})
			}
			flush()
			return
		}
		flush()
		if more {
			continue
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return // the command ends with the request's context
		}
	}
}

func (s *server) handleCommandLogs(w http.ResponseWriter, r *http.Request) {
	var req CommandLogsRequest
	if !s.decode(w, r, &req) {
		return
	}
	info, chunks, err := s.commands.Logs(r.PathValue("id"), command.LogsRequest{
		StdoutCursor: req.StdoutCursor, StderrCursor: req.StderrCursor, MaxBytes: req.MaxBytes,
	})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	chunk := func(c command.Chunk) LogChunk {
		return LogChunk{Data: c.Data, Cursor: c.Cursor, Next: c.Next, Dropped: c.Dropped, More: c.More}
	}
	writeJSON(w, CommandLogs{Command: *info, Stdout: chunk(chunks[0]), Stderr: chunk(chunks[1])})
}

// handleCommandStdin feeds the body to a streamed command's stdin; the end
// of the body closes it.
func (s *server) handleCommandStdin(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.stdinMu.Lock()
	pw := s.stdins[id]
	delete(s.stdins, id) // one feeder only
	s.stdinMu.Unlock()
	if pw == nil {
		s.writeErr(w, errdefs.New(errdefs.ErrNotFound, command.CodeNotFound,
			"command %q takes no stdin (only a running exec started with stdin does, once)", id))
		return
	}
	_, err := io.Copy(pw, r.Body)
	_ = pw.Close()
	if err != nil && err != io.ErrClosedPipe {
		s.writeErr(w, errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeStdinFailed, "reading the command's stdin failed"))
		return
	}
	writeJSON(w, struct{}{})
}
