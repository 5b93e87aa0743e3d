// Package wire holds the supervisor API's shapes that a client needs to run
// a command (the version, the supervisor's Info, exec requests, their
// streamed events and results, typed errors) and the reading of an exec's
// answer. It links no VMM or network code, so that the CLI's fast path
// (cmd/pyro) can run a command in a workspace without the rest of pyro.
package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// APIVersion numbers the supervisor's HTTP API (its request and answer
// shapes). A supervisor keeps running the pyro that started it, so after an
// upgrade a workspace may still run under an older one: callers compare
// Info.API first and refuse to talk past a difference (1 = before it was
// recorded; 2 = exec requests carry the guest's agentproto.ExecRequest;
// 3 = POST /v1/fork, and the agent session's handshake, protocol 12;
// 4 = POST /v1/archive takes remove= paths, agent protocol 13).
const APIVersion = 4

// Info describes a running supervisor; it is also the ready message.
type Info struct {
	API           int       `json:"api,omitempty"` // APIVersion of the pyro that runs it; 0 = 1
	Pid           int       `json:"pid"`
	PidStart      uint64    `json:"pid_start"`
	VMMPid        int       `json:"vmm_pid"`
	VMID          string    `json:"vm_id"`
	Socket        string    `json:"socket"`
	BootMs        int64     `json:"boot_ms"` // restore or boot, up to the agent's answer
	Restored      bool      `json:"restored,omitempty"`
	RestoreError  string    `json:"restore_error,omitempty"` // why a restore failed (then it booted cold)
	ExecutionMode string    `json:"execution_mode"`
	GuestKernel   string    `json:"guest_kernel"`
	StartedAt     time.Time `json:"started_at"`
}

// WireError carries a typed error across the API.
type WireError struct {
	Code    string `json:"code"`
	Class   string `json:"class,omitempty"` // errdefs.ClassName
	Message string `json:"message"`
	// Next is the call past the error; each face renders it (Message
	// holds the rest of the text).
	Next *errdefs.Next `json:"next,omitempty"`
}

// ExecRequest is a command in the workspace: the guest request as
// guestexec built it (the supervisor passes it to the agent as it is), and
// how the supervisor keeps and answers it.
type ExecRequest struct {
	agentproto.ExecRequest
	// Track keeps the command in the supervisor's command table while it
	// runs and a while after (ExecResult.CommandID): its whole output (up to
	// command.LogBytes per stream) can be read again by cursor.
	Track bool `json:"track,omitempty"`
	// Background answers at once with the command's Info; it runs on
	// after the caller is gone. Implies Track.
	Background bool `json:"background,omitempty"`
	// Stream answers with ExecEvent lines (NDJSON) while the command runs:
	// the command first, then its output as it comes, then the result.
	// Implies Track. With StdinStream, the command's stdin comes from
	// POST /v1/commands/{id}/stdin (its body, until EOF).
	Stream bool `json:"stream,omitempty"`
}

// ExecEvent is one line of a streamed exec answer; exactly one field is set.
type ExecEvent struct {
	Command *command.Info `json:"command,omitempty"`
	Stdout  []byte        `json:"stdout,omitempty"`
	Stderr  []byte        `json:"stderr,omitempty"`
	Result  *ExecResult   `json:"result,omitempty"`
	Error   *WireError    `json:"error,omitempty"`
}

// ExecResult is a finished command: the agent client's result, redacted,
// and where the supervisor keeps it.
type ExecResult struct {
	agentclient.ExecResult
	CommandID string `json:"command_id,omitempty"` // when tracked
	// AgentMs is how long the supervisor's call to the agent took (tracked
	// commands; pyro bench splits the exec's time with it), AgentUs the
	// same in microseconds, and Guest the agent's own split of it (the
	// guest's word, bounded by AgentUs; shown, never relied on).
	AgentMs int64                  `json:"agent_ms,omitempty"`
	AgentUs int64                  `json:"agent_us,omitempty"`
	Guest   *agentproto.ExecTiming `json:"guest_timing,omitempty"`
}

// fromWire rebuilds a typed error; the class travels with it (older
// supervisors sent only the code, from which it is derived).
func FromWire(w *WireError) error {
	class := errdefs.ClassByName(w.Class)
	if class == nil {
		class = classOf(w.Code)
	}
	return &errdefs.Error{Code: w.Code, Message: w.Message, Class: class, Next: w.Next}
}

func classOf(code string) error {
	switch code {
	case errdefs.CodeInvalidArgument, errdefs.CodePathOutsideWorkspace, errdefs.CodeTooLarge, errdefs.CodeBadArchive:
		return errdefs.ErrInvalidArgument
	case errdefs.CodeNotFound, errdefs.CodeWorkspaceNotFound:
		return errdefs.ErrNotFound
	case errdefs.CodeTimeout:
		return errdefs.ErrDeadlineExceeded
	case errdefs.CodeCanceled:
		return errdefs.ErrCanceled
	case errdefs.CodeBootFailed, errdefs.CodeAgentUnavailable, errdefs.CodeVMCrashed, errdefs.CodeVMMFailed:
		return errdefs.ErrUnavailable
	case errdefs.CodeExecFailed, errdefs.CodeAgentProtocol, errdefs.CodeHostToolMissing, errdefs.CodeSecretsInstallFailed:
		return errdefs.ErrFailedPrecondition
	}
	return errdefs.ErrInternal
}

func DecodeErr(resp *http.Response) error {
	var e struct {
		Error *WireError `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e); err != nil || e.Error == nil {
		return errdefs.New(errdefs.ErrInternal, errdefs.CodeInternal, "supervisor answered %s", resp.Status)
	}
	return FromWire(e.Error)
}

// PostExec sends req as a streamed exec (POST /v1/exec) and returns the
// answer's body, the events ReadExec reads. A transport failure comes back
// as it is, for the caller to explain; a refusal (any status but 200: the
// command did not start) as the supervisor's typed error.
func PostExec(ctx context.Context, c *http.Client, req ExecRequest) (io.ReadCloser, error) {
	req.Stream = true
	b, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://supervisor/v1/exec", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(hreq)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, &Refused{Err: DecodeErr(resp)}
	}
	return resp.Body, nil
}

// Refused is a supervisor's refusal of an exec: the command did not start.
type Refused struct{ Err error }

func (r *Refused) Error() string { return r.Err.Error() }
func (r *Refused) Unwrap() error { return r.Err }

// ReadExec reads a streamed exec's events until its result: the command
// (passed to started, when set), then its output as it comes (to the
// sink's writers), then the result or a typed error.
func ReadExec(ctx context.Context, body io.Reader, sink agentclient.ExecStreams, started func(*command.Info)) (*ExecResult, error) {
	dec := json.NewDecoder(bufio.NewReader(body))
	for {
		var ev ExecEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeSupervisorUnavailable, "the command's output stream ended early")
		}
		switch {
		case ev.Command != nil:
			if started != nil {
				started(ev.Command)
			}
		case ev.Stdout != nil:
			write(sink.Stdout, ev.Stdout)
		case ev.Stderr != nil:
			write(sink.Stderr, ev.Stderr)
		case ev.Result != nil:
			return ev.Result, nil
		case ev.Error != nil:
			return nil, FromWire(ev.Error)
		}
	}
}

func write(w io.Writer, p []byte) {
	if w != nil {
		_, _ = w.Write(p)
	}
}

// ReadInfo reads a supervisor's Info file (supervisor.json).
func ReadInfo(path string) (*Info, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var i Info
	return &i, json.Unmarshal(b, &i)
}

// Unanswered is the error of a call its supervisor did not answer (a
// transport failure; a typed error passes as it is).
func Unanswered(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var e *errdefs.Error
	if errors.As(err, &e) {
		return e
	}
	return errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeSupervisorUnavailable, "the workspace's supervisor does not answer")
}

// Files of a paused machine, in its pause dir. PausedMetaFile (the
// supervisor's Paused) is written last, atomically: a pause dir without it
// is a pause that never finished, and its state is worthless.
const (
	PausedStateFile = "state"
	PausedMetaFile  = "paused.json"
)

// DiskID identifies a disk file's content as of a moment: a file that was
// replaced or written since has another.
type DiskID struct {
	Inode   uint64 `json:"inode"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
}

// DiskIDOf reads path's identity.
func DiskIDOf(path string) (DiskID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return DiskID{}, err
	}
	return DiskID{Inode: st.Ino, Size: st.Size, MtimeNs: st.Mtim.Nano()}, nil
}

// PausedValid reports whether dir holds a complete saved machine of the
// disk at diskPath as that disk is now: its description, a state file of the
// size it gives, and the disk unchanged since the save.
func PausedValid(dir, diskPath string) bool {
	b, err := os.ReadFile(filepath.Join(dir, PausedMetaFile))
	if err != nil {
		return false
	}
	var meta struct { // the fields of the supervisor's Paused this needs
		StateBytes int64  `json:"state_bytes"`
		Disk       DiskID `json:"disk"`
	}
	if json.Unmarshal(b, &meta) != nil {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, PausedStateFile))
	if err != nil || st.Size() != meta.StateBytes {
		return false
	}
	id, err := DiskIDOf(diskPath)
	return err == nil && id == meta.Disk
}
