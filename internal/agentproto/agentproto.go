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
	"time"
)

// ProtocolVersion is bumped on every change of agent behaviour or wire format.
// The host refuses an agent that reports another version.
// 4 adds HelloRequest.Network: the agent configures the guest's network interface.
// 5: exec, put_archive, service_start and shell flush the workspace's
// filesystem (syncfs) before their FrameResult: a result means "on disk";
// a slow flush is announced with FrameFlushing.
// 6: every command's environment starts from the image's Env (ImageEnvPath);
// output over its cap keeps its head and tail around an omission marker.
// 7: put_archive calls run one at a time and a failed one is undone; error
// code no_space; get_archive keeps hard links (TypeLink) and lists the
// special files it leaves out (ArchiveResult.Skipped).
// 8: ExecRequest.StdinStream (stdin as FrameData frames, FrameDataEnd
// closes it), NoOutputCap (forward all output; the host keeps it) and
// ExecRequest.Shell (a login shell's command, started from a cached login
// environment while the profile is unchanged).
// 9: ExecResult.Timing (where the exec's time went in the guest); commands
// run in reused cgroups.
// 10: HelloRequest.MachineID (a fork's restore gives the guest its own
// /etc/machine-id in the hello instead of a separate exec).
// 11: Request.SentUnixNano (the host's clock when it sent the call): the
// agent steps a guest clock that is behind it forward before the call runs.
// 12: a session starts with the Hail/Ack/Begin handshake before yamux
// (session.go), so a guest restored in the middle of a session (a fork of
// a running workspace) drops it and starts a fresh one.
// 13: OpPark; the agent keeps its port open from one session to the next
// (a session that a Hail or a park ended), so a machine saved after a park
// answers its restore's first Hail at once. ArchiveRequest.Remove: a
// put_archive also removes entries, in the same all-or-nothing step as its
// writes (a patch's deleted files).
const ProtocolVersion = 13

// ImageEnvPath is where an image environment's root filesystem carries its
// image config Env, one KEY=VALUE per line. The agent starts every
// command's environment from pyro's defaults overridden by these.
const ImageEnvPath = "/etc/pyro/env"

// ClockStepMin is how far a guest clock must be behind a request's
// SentUnixNano before the agent steps it: less is within the clock's own
// resolution under software emulation (4 ms jiffies).
const ClockStepMin = 2 * time.Millisecond

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
	// FrameControl: host -> agent on a shell stream: JSON ShellControl.
	FrameControl byte = 9
	// FrameFlushing: agent -> host, empty, before the FrameResult of a call
	// that writes (exec, put_archive, service_start, shell) when flushing the
	// workspace to disk is taking a while: the call's own work is done. The
	// host then allows FlushBound more for the result.
	FrameFlushing byte = 10
)

// FlushBound is how long the host waits for a result once the agent said it
// is flushing (FrameFlushing): a large write can take long to reach the disk
// under software emulation.
const FlushBound = 2 * time.Minute

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
	// OpPark: the agent answers, ends the session without closing its port
	// and waits on that port for the next host's Hail. The host then saves
	// the machine with its own end still connected (pause, fast-start
	// snapshots): the restored guest answers its next host's first Hail from
	// a read it was already blocked in, with no port to reopen or find.
	OpPark = "park"

	// OpShell starts a program on a new PTY and keeps the stream open for its
	// whole life. Agent -> host: FrameStarted, then FrameStdout frames with the
	// PTY's output, then (once the program exited and the PTY is drained)
	// FrameResult with a ShellExit. Host -> agent: FrameData frames are input
	// for the PTY, FrameControl frames resize it or signal the program. When
	// the host closes the stream the agent hangs the session up (SIGHUP to the
	// process group, SIGKILL after a grace period) and reaps it.
	OpShell = "shell"

	// Service ops manage long-running processes. Their state and logs live
	// under ServicesRoot, outside the workspace, and end with the guest.
	OpServiceStart  = "service_start"  // Request.Service; waits for readiness; result ServiceInfo
	OpServiceList   = "service_list"   // result ServiceList
	OpServiceStatus = "service_status" // Request.Service.Name; result ServiceInfo
	OpServiceLogs   = "service_logs"   // Request.Service.Name, TailLines, MaxBytes; result ServiceLogs
	OpServiceStop   = "service_stop"   // Request.Service.Name, StopGraceMs; result ServiceInfo
)

// ServicesRoot holds one directory per service: "state.json" and "log".
const ServicesRoot = "/run/pyro-services"

// WorkspaceRoot is the only directory archive ops may touch.
const WorkspaceRoot = "/workspace"

// Request is the first frame of every stream.
type Request struct {
	Op string `json:"op"`
	// SentUnixNano is the host's CLOCK_REALTIME when it wrote the request.
	// It is a lower bound of the host's time when the agent reads it, so
	// the agent steps a guest clock that is behind it forward to it (see
	// ClockStepMin) and never back: a slow guest clock is right again at
	// every call, and a guest never ends up ahead of the host by it.
	SentUnixNano int64           `json:"sent_unix_nano,omitempty"`
	Hello        *HelloRequest   `json:"hello,omitempty"`
	Exec         *ExecRequest    `json:"exec,omitempty"`
	Archive      *ArchiveRequest `json:"archive,omitempty"`
	Shell        *ShellRequest   `json:"shell,omitempty"`
	Service      *ServiceRequest `json:"service,omitempty"`
}

// ShellRequest starts Argv (no shell added by the agent) on a new PTY as the
// leader of a new session, with the PTY as its controlling terminal.
// TERM=xterm-256color is set unless Env names TERM.
type ShellRequest struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
	Cwd  string   `json:"cwd,omitempty"`
	Cols int      `json:"cols"`
	Rows int      `json:"rows"`
}

// ShellControl resizes the PTY (Cols and Rows both > 0) and/or sends Signal
// (INT, TERM, HUP, KILL, QUIT, ...) to the shell's foreground process group.
type ShellControl struct {
	Cols   int    `json:"cols,omitempty"`
	Rows   int    `json:"rows,omitempty"`
	Signal string `json:"signal,omitempty"`
}

// ShellExit is the result of OpShell once its program has exited.
type ShellExit struct {
	ExitCode int    `json:"exit_code"`        // -1 when killed by a signal
	Signal   string `json:"signal,omitempty"` // e.g. "HUP"
}

// Readiness kinds of a service.
const (
	ReadyNone    = ""        // ready as soon as the process runs
	ReadyFile    = "file"    // Target: a path that must exist (relative to the service's cwd)
	ReadyTCP     = "tcp"     // Target: a port (or host:port) that accepts a connection
	ReadyHTTP    = "http"    // Target: an http:// URL answering with a status below 500
	ReadyCommand = "command" // Target: a shell command exiting 0 (run by /bin/sh -lc)
)

// Service states.
const (
	ServiceStarting = "starting"
	ServiceReady    = "ready"
	ServiceFailed   = "failed"  // readiness never came, or the start failed; process gone
	ServiceExited   = "exited"  // the process ended on its own
	ServiceStopped  = "stopped" // ended by OpServiceStop
)

// ServiceRequest carries the arguments of every service op.
type ServiceRequest struct {
	Name            string   `json:"name"`
	Argv            []string `json:"argv,omitempty"` // start: the program, run in its own session
	Env             []string `json:"env,omitempty"`
	Cwd             string   `json:"cwd,omitempty"`
	ReadyKind       string   `json:"ready_kind,omitempty"`
	ReadyTarget     string   `json:"ready_target,omitempty"`
	ReadyTimeoutMs  int64    `json:"ready_timeout_ms,omitempty"`
	ReadyIntervalMs int64    `json:"ready_interval_ms,omitempty"`
	StopGraceMs     int64    `json:"stop_grace_ms,omitempty"` // TERM -> KILL
	TailLines       int      `json:"tail_lines,omitempty"`    // logs: 0 = all (within MaxBytes)
	MaxBytes        int64    `json:"max_bytes,omitempty"`     // logs: at most this many bytes from the end
}

// ServiceInfo describes one service. Times are RFC 3339 UTC.
type ServiceInfo struct {
	Name        string   `json:"name"`
	State       string   `json:"state"`
	Pid         int      `json:"pid,omitempty"`
	Argv        []string `json:"argv"`
	Cwd         string   `json:"cwd"`
	ReadyKind   string   `json:"ready_kind,omitempty"`
	ReadyTarget string   `json:"ready_target,omitempty"`
	StartedAt   string   `json:"started_at"`
	ReadyAt     string   `json:"ready_at,omitempty"`
	EndedAt     string   `json:"ended_at,omitempty"`
	ExitCode    *int     `json:"exit_code,omitempty"` // set once the process ended: -1 when killed by a signal
	Signal      string   `json:"signal,omitempty"`
	Reason      string   `json:"reason,omitempty"` // why it failed
	LogPath     string   `json:"log_path"`
}

// ServiceList is the result of OpServiceList, sorted by name.
type ServiceList struct {
	Services []ServiceInfo `json:"services"`
}

// ServiceLogs is the result of OpServiceLogs.
type ServiceLogs struct {
	Name      string `json:"name"`
	Log       []byte `json:"log"`
	Truncated bool   `json:"truncated"` // older lines or bytes were left out
}

// ArchiveRequest names a path under WorkspaceRoot: the directory to extract
// into (put) or the file or directory to pack (get). MaxBytes bounds the
// total file content either way (0 = the agent's default limit).
type ArchiveRequest struct {
	Path     string `json:"path"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
	// Remove (put only) names entries under Path, relative to it, that the
	// put removes in the same all-or-nothing step as it writes the archive:
	// files or symlinks (never directories) that must exist. The archive
	// may write at a removed path or beneath it (a file replaced by a
	// directory). At most MaxRemoveBytes in all (RemoveSize).
	Remove []string `json:"remove,omitempty"`
}

// MaxRemoveBytes bounds RemoveSize(ArchiveRequest.Remove), so that the
// request stays well within MaxFramePayload.
const MaxRemoveBytes = 256 << 10

// RemoveSize is what names take of MaxRemoveBytes: their lengths plus one
// byte each (so that many empty or short names count too).
func RemoveSize(names []string) int {
	n := 0
	for _, s := range names {
		n += len(s) + 1
	}
	return n
}

// ArchiveResult is the result of OpPutArchive and OpGetArchive.
type ArchiveResult struct {
	Entries int   `json:"entries"` // files, dirs, symlinks and hard links
	Bytes   int64 `json:"bytes"`   // file content bytes
	// Special files (fifos, sockets, device nodes) get_archive left out:
	// the first MaxSkippedListed of them, and how many there were.
	Skipped      []SkippedEntry `json:"skipped,omitempty"`
	SkippedCount int            `json:"skipped_count,omitempty"`
}

// SkippedEntry is a special file an archive left out.
type SkippedEntry struct {
	Path string `json:"path"` // relative to the archived directory
	Kind string `json:"kind"` // one of the Kind* below
}

// Kinds of special files.
const (
	KindFifo        = "fifo"
	KindSocket      = "socket"
	KindCharDevice  = "char_device"
	KindBlockDevice = "block_device"
)

// MaxSkippedListed bounds ArchiveResult.Skipped.
const MaxSkippedListed = 100

// HelloRequest is optional on OpHello. A guest restored from a memory
// snapshot wakes with the snapshot's clock and random state: the host sends
// its time and fresh entropy, which the agent applies before answering.
type HelloRequest struct {
	HostTimeUnixNano int64  `json:"host_time_unix_nano,omitempty"` // set CLOCK_REALTIME to this
	Entropy          []byte `json:"entropy,omitempty"`             // credited to the kernel RNG, which then reseeds
	// Network, when set, configures the guest's network interface (the virtio-net device with this MAC): address, default route, MTU and /etc/resolv.conf. Sent on every boot and restore of a VM that has a network.
	Network *NetConfig `json:"network,omitempty"`
	// MachineID, when set (32 lowercase hex digits), replaces
	// /etc/machine-id where the image has a non-empty one: a fork's restore
	// gives each fork its own identity.
	MachineID string `json:"machine_id,omitempty"`
}

// NetConfig is the guest's IPv4 network configuration. The agent applies it
// idempotently: the link with MAC gets MTU (unless 0), exactly one IPv4
// address (Address; any other IPv4 address is removed), is set up, and the
// default route goes via Gateway, which must lie inside Address's subnet.
// /etc/resolv.conf is replaced by one "nameserver" line per DNS entry (at
// most 3); with no DNS it is left alone.
type NetConfig struct {
	MAC     string   `json:"mac"`           // e.g. "52:54:00:12:34:56"
	Address string   `json:"address"`       // CIDR, e.g. "10.0.2.15/24"
	Gateway string   `json:"gateway"`       // e.g. "10.0.2.2"
	DNS     []string `json:"dns,omitempty"` // nameservers for /etc/resolv.conf
	MTU     int      `json:"mtu,omitempty"` // 0 = leave as is; else 576..9000
}

// Hello is the result of OpHello.
type Hello struct {
	ProtocolVersion int    `json:"protocol_version"`
	AgentVersion    string `json:"agent_version"`
	KernelRelease   string `json:"kernel_release"`
	BootMs          int64  `json:"boot_ms"` // guest uptime when the agent answered
}

// ExecRequest runs Argv (no shell added by the agent) in its own process
// group, or Shell: one shell string, run as `/bin/sh -lc Shell` runs it (the
// agent may start it faster with the login environment it keeps; what the
// command sees is the same).
type ExecRequest struct {
	Argv      []string `json:"argv,omitempty"`
	Shell     string   `json:"shell,omitempty"`
	Env       []string `json:"env,omitempty"` // KEY=VALUE, added to a minimal default env
	Cwd       string   `json:"cwd,omitempty"`
	Stdin     []byte   `json:"stdin,omitempty"`
	TimeoutMs int64    `json:"timeout_ms,omitempty"` // 0 = no timeout
	MaxStdout int64    `json:"max_stdout"`           // bytes forwarded at most; NoOutputCap: all
	MaxStderr int64    `json:"max_stderr"`
	// StdinStream: after the request the host sends the command's stdin as
	// FrameData frames and closes it with FrameDataEnd (Stdin is then
	// unused). Closing the stream still cancels the call.
	StdinStream bool `json:"stdin_stream,omitempty"`
}

// NoOutputCap as MaxStdout or MaxStderr forwards all of that output: the
// host keeps (and caps) it itself, e.g. to follow a background command.
const NoOutputCap int64 = -1

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
	// Timing splits the call's time in the agent (protocol 9). It is the
	// guest's own account: the host shows it (pyro bench) and relies on it
	// for nothing.
	Timing *ExecTiming `json:"timing,omitempty"`
}

// ExecTiming is where an exec's time went in the agent, in microseconds,
// from the request frame read to the result frame written.
type ExecTiming struct {
	// PlanUs: request decoded to the command planned (cwd, login
	// environment, program lookup).
	PlanUs int64 `json:"plan_us"`
	// StartUs: planned to the process started (pipes, cgroup, fork, exec).
	StartUs int64 `json:"start_us"`
	// RunUs: process started to its exit reaped.
	RunUs int64 `json:"run_us"`
	// OutputUs: exit to the last output drained.
	OutputUs int64 `json:"output_us"`
	// SyncUs: the durability flush of the workspace's filesystem.
	SyncUs int64 `json:"sync_us"`
	// TotalUs: the whole call in the agent.
	TotalUs int64 `json:"total_us"`
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
	ErrCodeBadArchive  = "bad_archive"    // malformed tar, or an entry type that is refused
	ErrCodeExists      = "already_exists" // a service of that name is starting or ready
	ErrCodePortInUse   = "port_in_use"    // a readiness port already accepts connections before the start
	ErrCodeNoSpace     = "no_space"       // the workspace filesystem is full (ENOSPC, EDQUOT)
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
