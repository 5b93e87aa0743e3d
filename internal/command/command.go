// Package command keeps a workspace's commands while they run and shortly
// after: their state and their output, followed by cursor. It lives in the
// workspace's supervisor, so a command outlives the CLI, SDK or MCP call
// that started it (background commands) and its output can be read again
// after the call returned a capped copy. Everything it holds is redacted.
package command

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/ident"
	"github.com/pyrovm/pyro/internal/ringlog"
	"github.com/pyrovm/pyro/internal/secrets"
)

// Bounds. Output past LogBytes per stream drops its oldest bytes (a read
// from a cursor before them says how many it missed); the oldest finished
// commands are forgotten past KeepFinished; MaxBackground bounds the
// background commands running at once.
const (
	LogBytes      = 4 << 20
	KeepFinished  = 8
	MaxBackground = 16
	MaxReadBytes  = 1 << 20 // one logs read returns at most this much per stream
	DefaultRead   = 64 << 10
	MaxWait       = 10 * time.Minute // one wait call
)

// States.
const (
	StateRunning  = "running"
	StateExited   = "exited"    // ended by itself (exit_code, or signal)
	StateTimedOut = "timed_out" // killed at its timeout
	StateKilled   = "killed"    // killed by a kill call
	StateFailed   = "failed"    // pyro could not run it to the end (see error)
)

// Error codes.
const (
	CodeNotFound      = errdefs.CodeCommandNotFound
	CodeInvalidCursor = errdefs.CodeInvalidCursor
	CodeTooMany       = errdefs.CodeTooManyCommands
)

// Runner runs the command in the guest until it ends or ctx ends, writing
// its output to stdout and stderr as it comes and reading stdin (nil: none).
// The guest's result says how it ended (the table keeps exit code, signal,
// timeout and duration).
type Runner func(ctx context.Context, stdout, stderr io.Writer, stdin io.Reader) (*agentproto.ExecResult, error)

// Info describes one command.
type Info struct {
	CommandID   string     `json:"command_id"`
	Command     string     `json:"command"`
	Background  bool       `json:"background"`
	State       string     `json:"state"`
	ExitCode    *int       `json:"exit_code,omitempty"` // once ended; -1 when killed by a signal
	Signal      string     `json:"signal,omitempty"`
	Error       string     `json:"error,omitempty"` // why it failed
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	DurationMs  int64      `json:"duration_ms"`
	StdoutBytes int64      `json:"stdout_bytes"` // all stdout so far: the cursor of its end
	StderrBytes int64      `json:"stderr_bytes"`
}

// Ended reports whether the command is over.
func (i *Info) Ended() bool { return i.State != StateRunning }

// Options configure a Manager.
type Options struct {
	Redact   *secrets.Redactor // hides the workspace's secret values; nil: none
	LogBytes int               // per stream; 0: LogBytes
}

// Manager holds the commands of one VM.
type Manager struct {
	opts Options
	mu   sync.Mutex
	cmds map[string]*cmd
}

// NewManager returns an empty Manager.
func NewManager(opts Options) *Manager {
	if opts.LogBytes <= 0 {
		opts.LogBytes = LogBytes
	}
	return &Manager{opts: opts, cmds: map[string]*cmd{}}
}

type cmd struct {
	mu     sync.Mutex
	info   Info
	out    [2]*stream
	cancel context.CancelFunc
	killed bool
	pinned bool // a foreground caller still answers from it: kept

	done    chan struct{} // closed when the run ended
	changed chan struct{} // closed and replaced on every change
}

// stream is one output of a command: its redaction state and its log.
type stream struct {
	redact *secrets.Stream
	log    *ringlog.Log
}

// Streams.
const (
	Stdout = 0
	Stderr = 1
)

// Start registers command and runs it in the background of ctx (which the
// caller cancels to end it, as Kill does). stdin, when set, feeds it. A
// foreground command stays pinned (never forgotten) until Release.
func (m *Manager) Start(ctx context.Context, command string, background bool, stdin io.Reader, run Runner) (*Info, error) {
	c := &cmd{
		info: Info{
			CommandID: ident.NewID(), Command: m.opts.Redact.String(command), Background: background,
			State: StateRunning, StartedAt: time.Now().UTC(),
		},
		done: make(chan struct{}), changed: make(chan struct{}), pinned: !background,
	}
	for i := range c.out {
		c.out[i] = &stream{redact: m.opts.Redact.NewStream(), log: ringlog.New(m.opts.LogBytes)}
	}
	m.mu.Lock()
	if background && m.runningBackground() >= MaxBackground {
		m.mu.Unlock()
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, CodeTooMany,
			"%d background commands are running already: wait for one or kill one first", MaxBackground)
	}
	m.cmds[c.info.CommandID] = c
	m.forgetOldLocked()
	m.mu.Unlock()

	ctx, c.cancel = context.WithCancel(ctx)
	info := c.snapshot()
	go func() {
		c.run(ctx, run, stdin)
		m.mu.Lock()
		m.forgetOldLocked()
		m.mu.Unlock()
	}()
	return info, nil
}

func (m *Manager) runningBackground() int {
	n := 0
	for _, c := range m.cmds {
		c.mu.Lock()
		if c.info.Background && c.info.State == StateRunning {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// forgetOldLocked drops the oldest finished commands past KeepFinished.
func (m *Manager) forgetOldLocked() {
	var ended []*cmd
	for _, c := range m.cmds {
		c.mu.Lock()
		if c.info.EndedAt != nil && !c.pinned {
			ended = append(ended, c)
		}
		c.mu.Unlock()
	}
	if len(ended) <= KeepFinished {
		return
	}
	slices.SortFunc(ended, func(a, b *cmd) int { return a.info.EndedAt.Compare(*b.info.EndedAt) })
	for _, c := range ended[:len(ended)-KeepFinished] {
		delete(m.cmds, c.info.CommandID)
	}
}

func (c *cmd) run(ctx context.Context, run Runner, stdin io.Reader) {
	defer c.cancel()
	res, err := run(ctx, writer{c, Stdout}, writer{c, Stderr}, stdin)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.out {
		s.log.Write(s.redact.Flush())
	}
	now := time.Now().UTC()
	c.info.EndedAt = &now
	c.info.DurationMs = now.Sub(c.info.StartedAt).Milliseconds()
	switch {
	case c.killed:
		c.info.State, c.info.Signal = StateKilled, "KILL"
		c.info.ExitCode = ptr(-1)
	case err != nil:
		c.info.State, c.info.Error = StateFailed, err.Error()
		if errors.Is(err, context.Canceled) {
			c.info.Error = "the call that ran it was canceled"
		}
	default:
		c.info.State = StateExited
		if res.TimedOut {
			c.info.State = StateTimedOut
		}
		c.info.ExitCode, c.info.Signal, c.info.DurationMs = ptr(res.ExitCode), res.Signal, res.DurationMs
	}
	close(c.done)
	c.notifyLocked()
}

func ptr[T any](v T) *T { return &v }

// writer passes output through the stream's redaction into its log.
type writer struct {
	c     *cmd
	which int
}

func (w writer) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	s := w.c.out[w.which]
	s.log.Write(s.redact.Push(p))
	w.c.notifyLocked()
	return len(p), nil
}

func (c *cmd) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *cmd) snapshot() *Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.infoLocked()
}

func (c *cmd) infoLocked() *Info {
	i := c.info
	i.StdoutBytes, i.StderrBytes = c.out[Stdout].log.End(), c.out[Stderr].log.End()
	return &i
}

func (m *Manager) get(id string) (*cmd, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.cmds[id]
	if !ok {
		return nil, errdefs.New(errdefs.ErrNotFound, CodeNotFound, "no command %q", id)
	}
	return c, nil
}

// Release unpins a foreground command once its caller has its answer; from
// then on it is forgotten like any finished command.
func (m *Manager) Release(id string) {
	c, err := m.get(id)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.pinned = false
	c.mu.Unlock()
	m.mu.Lock()
	m.forgetOldLocked()
	m.mu.Unlock()
}

// Info describes one command.
func (m *Manager) Info(id string) (*Info, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, err
	}
	return c.snapshot(), nil
}

// List describes every command held, oldest first.
func (m *Manager) List() []Info {
	m.mu.Lock()
	cmds := make([]*cmd, 0, len(m.cmds))
	for _, c := range m.cmds {
		cmds = append(cmds, c)
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(cmds))
	for _, c := range cmds {
		out = append(out, *c.snapshot())
	}
	slices.SortFunc(out, func(a, b Info) int { return a.StartedAt.Compare(b.StartedAt) })
	return out
}

// Kill ends a running command (the guest kills its process group) and
// waits for it to end; an ended command is reported as it is.
func (m *Manager) Kill(ctx context.Context, id string) (*Info, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.info.State == StateRunning {
		c.killed = true
		c.cancel()
	}
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.snapshot(), nil
}

// Wait waits until the command ended or timeout passed (then it is still
// running), and describes it.
func (m *Manager) Wait(ctx context.Context, id string, timeout time.Duration) (*Info, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, err
	}
	if timeout < 0 || timeout > MaxWait {
		return nil, errdefs.InvalidArgument("timeout", "%s is out of range [0, %s]", timeout, MaxWait)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.snapshot(), nil
}

// Done is closed when the command ended.
func (m *Manager) Done(id string) (<-chan struct{}, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, err
	}
	return c.done, nil
}

// Changed returns a channel closed at the command's next change (output or
// end).
func (m *Manager) Changed(id string) (<-chan struct{}, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed, nil
}

// LogsRequest reads both streams from their cursors.
type LogsRequest struct {
	StdoutCursor int64
	StderrCursor int64
	MaxBytes     int // per stream; 0: DefaultRead
}

// Chunk is what one read of a stream returns.
type Chunk struct {
	Data    []byte
	Cursor  int64 // where Data starts: later than asked when older bytes were dropped
	Next    int64 // the cursor of the next read
	Dropped int64 // bytes lost between the asked cursor and Cursor
	More    bool  // more is held past Next
}

// Logs reads both streams of a command from their cursors.
func (m *Manager) Logs(id string, req LogsRequest) (*Info, [2]Chunk, error) {
	var out [2]Chunk
	c, err := m.get(id)
	if err != nil {
		return nil, out, err
	}
	max := req.MaxBytes
	switch {
	case max < 0:
		return nil, out, errdefs.InvalidArgument("max_bytes", "%d is negative: use 0 for the default (%d) or up to %d", max, DefaultRead, MaxReadBytes)
	case max == 0:
		max = DefaultRead
	case max > MaxReadBytes:
		max = MaxReadBytes
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cur := range []int64{req.StdoutCursor, req.StderrCursor} {
		log := c.out[i].log
		if cur < 0 || cur > log.End() {
			name := [2]string{"cursor", "stderr_cursor"}[i]
			return nil, out, errdefs.New(errdefs.ErrInvalidArgument, CodeInvalidCursor,
				"%s %d is out of range: command %s has written %d bytes there, so valid cursors are 0..%d; pass the next cursor of your last read (or 0 for the start)",
				name, cur, id, log.End(), log.End())
		}
		out[i] = read(log, cur, max)
	}
	return c.infoLocked(), out, nil
}

// read takes at most max bytes from cur, ending on a UTF-8 boundary when it
// stops short of the end (so text is not cut inside a character).
func read(log *ringlog.Log, cur int64, max int) Chunk {
	ch := Chunk{Cursor: max64(cur, log.Start())}
	ch.Dropped = ch.Cursor - cur
	end := min(log.End(), ch.Cursor+int64(max))
	if end < log.End() {
		for back := 0; back < utf8.UTFMax-1 && end > ch.Cursor; back++ {
			if b := log.Slice(end, end+1)[0]; utf8.RuneStart(b) {
				break
			}
			end--
		}
	}
	ch.Data = log.Slice(ch.Cursor, end)
	ch.Next, ch.More = end, end < log.End()
	return ch
}

func max64(a, b int64) int64 { return max(a, b) }

// CloseAll kills every running command (the VM is going away).
func (m *Manager) CloseAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.cmds {
		c.mu.Lock()
		if c.info.State == StateRunning {
			c.killed = true
			c.cancel()
		}
		c.mu.Unlock()
	}
}
