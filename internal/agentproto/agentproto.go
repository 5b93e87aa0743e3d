// Package agentproto is the wire protocol between the host and the guest agent.
// It is a dependency-light leaf imported by both sides (stdlib only).
//
// Transport: one byte stream (a virtio-serial port, or vsock) carrying a yamux
// session; the host is the yamux client, the guest agent the server. Every call
// is one yamux stream. On a stream, both sides exchange frames:
//
//	[kind: 1 byte][length: 4 bytes big-endian][payload: length bytes]
//
// The host opens a stream and writes one FrameRequest (JSON Request). The agent
// answers with frames that depend on the op, ending with exactly one FrameResult
// (JSON, op specific) or FrameError (JSON Error). Closing the stream from the
// host cancels the call: the agent kills whatever the call started.
package agentproto

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ProtocolVersion is bumped on every change of agent behaviour or wire format.
// The host refuses an agent that reports another version.
const ProtocolVersion = 2

// PortName is the virtio-serial port name the agent listens on.
const PortName = "org.pyro.agent"

// MaxFramePayload bounds every frame; a peer sending more is broken or hostile.
const MaxFramePayload = 1 << 20

// Frame kinds.
const (
	FrameRequest byte = 1 // host -> agent: JSON Request
	FrameResult  byte = 2 // agent -> host: JSON result, last frame
	FrameError   byte = 3 // agent -> host: JSON Error, last frame
	FrameStdout  byte = 4 // agent -> host: raw bytes
	FrameStderr  byte = 5 // agent -> host: raw bytes
	FrameStarted byte = 6 // agent -> host: JSON Started
	FrameData    byte = 7 // either way: raw bytes of an archive (tar) stream
	FrameDataEnd byte = 8 // host -> agent: the archive stream is complete
)

// Ops.
const (
	OpHello    = "hello"
	OpExec     = "exec"
	OpShutdown = "shutdown"
	// OpPutArchive: after the request the host sends FrameData frames with a
	// tar stream, then FrameDataEnd; the agent extracts it under Archive.Path.
	OpPutArchive = "put_archive"
	// OpGetArchive: the agent answers with FrameData frames holding a tar of
	// Archive.Path, then FrameResult.
	OpGetArchive = "get_archive"
	// OpSync flushes the guest's filesystems (before a stop or a disk copy).
	OpSync = "sync"
)

// WorkspaceRoot is the only directory archive ops may touch.
const WorkspaceRoot = "/workspace"

// Request is the first frame of every stream.
type Request struct {
	Op      string          `json:"op"`
	Exec    *ExecRequest    `json:"exec,omitempty"`
	Archive *ArchiveRequest `json:"archive,omitempty"`
}

// ArchiveRequest names a path under WorkspaceRoot: the directory to extract
// into (put) or the file or directory to pack (get). MaxBytes bounds the
// total file content either way (0 = the agent's default limit).
type ArchiveRequest struct {
	Path     string `json:"path"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
}

// ArchiveResult is the result of OpPutArchive and OpGetArchive.
type ArchiveResult struct {
	Entries int   `json:"entries"` // files, dirs and symlinks
	Bytes   int64 `json:"bytes"`   // file content bytes
}

// Hello is the result of OpHello.
type Hello struct {
	ProtocolVersion int    `json:"protocol_version"`
	AgentVersion    string `json:"agent_version"`
	KernelRelease   string `json:"kernel_release"`
	BootMs          int64  `json:"boot_ms"` // guest uptime when the agent answered
}

// ExecRequest runs Argv (no shell added by the agent) in its own process group.
type ExecRequest struct {
	Argv      []string `json:"argv"`
	Env       []string `json:"env,omitempty"` // KEY=VALUE, added to a minimal default env
	Cwd       string   `json:"cwd,omitempty"`
	Stdin     []byte   `json:"stdin,omitempty"`
	TimeoutMs int64    `json:"timeout_ms,omitempty"` // 0 = no timeout
	MaxStdout int64    `json:"max_stdout"`           // bytes forwarded at most
	MaxStderr int64    `json:"max_stderr"`
}

// Started is sent once the process runs.
type Started struct {
	Pid int `json:"pid"`
}

// ExecResult is the result of OpExec.
type ExecResult struct {
	ExitCode        int    `json:"exit_code"`        // -1 when killed by a signal
	Signal          string `json:"signal,omitempty"` // e.g. "KILL" when killed
	TimedOut        bool   `json:"timed_out"`
	StdoutBytes     int64  `json:"stdout_bytes"` // total produced by the command
	StderrBytes     int64  `json:"stderr_bytes"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	DurationMs      int64  `json:"duration_ms"`
}

// ShutdownResult is the result of OpShutdown; the agent powers off after it.
type ShutdownResult struct{}

// Error is the payload of FrameError.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Wire error codes.
const (
	ErrCodeBadRequest  = "bad_request"
	ErrCodeUnknownOp   = "unknown_op"
	ErrCodeExecFailed  = "exec_failed" // could not start the process
	ErrCodeInternal    = "internal"
	ErrCodeUnsupported = "unsupported"
	ErrCodeOutside     = "path_outside_workspace" // a path or archive entry escapes WorkspaceRoot
	ErrCodeNotFound    = "not_found"
	ErrCodeTooLarge    = "too_large"
	ErrCodeBadArchive  = "bad_archive" // malformed tar, or an entry type that is refused
)

func (e *Error) Error() string { return fmt.Sprintf("agent: %s: %s", e.Code, e.Message) }

// ErrFrameTooLarge is returned when a peer announces a frame above the limit.
var ErrFrameTooLarge = errors.New("agentproto: frame too large")

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	if len(payload) > MaxFramePayload {
		return ErrFrameTooLarge
	}
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if len(payload) == 0 {
		return nil
	}
	_, err := w.Write(payload)
	return err
}

// WriteJSON writes v as a JSON frame of the given kind.
func WriteJSON(w io.Writer, kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(w, kind, b)
}

// ReadFrame reads one frame, refusing payloads above MaxFramePayload.
func ReadFrame(r io.Reader) (kind byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFramePayload {
		return 0, nil, ErrFrameTooLarge
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], payload, nil
}
