// Package shell keeps the interactive PTY shells of one workspace on the host
// side. The guest agent runs each shell's program on a PTY; the Manager (held
// by the workspace's supervisor) pumps the PTY output into a bounded log with
// absolute byte offsets, so that many CLI, SDK and MCP calls can read it with
// cursors, write input, signal, resize and close the shell.
package shell

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/ringlog"
	"github.com/pyrovm/pyro/internal/secrets"
)

// Conn is one running shell in the guest (implemented by the agent client).
type Conn interface {
	// Read returns PTY output; io.EOF once the program exited (then Exit is
	// valid); any other error means the connection was lost.
	Read(p []byte) (int, error)
	// Write sends input to the PTY.
	Write(p []byte) (int, error)
	Resize(cols, rows int) error
	// Signal sends "INT", "TERM", "HUP" or "KILL".
	Signal(name string) error
	// Exit is valid after Read returned io.EOF; code is -1 when the program
	// was killed by a signal.
	Exit() (code int, signal string)
	// Close hangs up: the guest kills the program; Read unblocks.
	Close() error
}

// Shell states.
const (
	StateRunning = "running" // the program runs
	StateExited  = "exited"  // the program exited; its output stays readable
	StateClosed  = "closed"  // closed on request, or the connection was lost; output stays readable
)

// Limits and defaults.
const (
	DefaultBufferBytes = 4 << 20
	DefaultMaxShells   = 16
	DefaultMaxIdleWait = 30 * time.Second
	DefaultMaxChars    = 65536
	MaxMaxChars        = 1 << 20
	DefaultCols        = 120 // used by Open for cols == 0
	DefaultRows        = 30  // used by Open for rows == 0
	// Plain reads render on a screen of the shell's size: keep it bounded.
	MinCols, MaxCols = 10, 500
	MinRows, MaxRows = 2, 200

	// closeWait bounds how long Close waits for the pump to end.
	closeWait = 5 * time.Second
	// pumpChunk is the pump's read size.
	pumpChunk = 32 << 10
	// redactFlushDelay is how long a held-back tail of output (bytes that
	// may be the start of a secret value, see secrets.Stream) waits for the
	// rest before it is shown as it is. A program writes a value in one go,
	// so its pieces arrive milliseconds apart; but the tail is often just a
	// prompt that happens to begin like a value, and an interactive user
	// must not wait long to see it.
	redactFlushDelay = 300 * time.Millisecond
)

// Reasons a shell is closed.
const (
	reasonClosed   = "closed on request"
	reasonLost     = "the connection to the shell was lost: the workspace's VM or its guest agent went away"
	reasonShutdown = "the workspace's supervisor shut down"
)

// Error codes.
const (
	CodeShellNotFound = errdefs.CodeShellNotFound
	CodeShellClosed   = errdefs.CodeShellClosed
	CodeInvalidCursor = errdefs.CodeInvalidCursor
	CodeTooManyShells = errdefs.CodeTooManyShells
)

// Info describes a shell.
type Info struct {
	ShellID     string     `json:"shell_id"`
	State       string     `json:"state"`
	Cwd         string     `json:"cwd"`
	Cols        int        `json:"cols"`
	Rows        int        `json:"rows"`
	ExitCode    *int       `json:"exit_code,omitempty"` // set once the program exited: -1 when killed by a signal
	Signal      string     `json:"signal,omitempty"`    // the signal that killed it
	Reason      string     `json:"reason,omitempty"`    // why a closed shell is closed
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"` // when it stopped running
	OutputBytes int64      `json:"output_bytes"`       // output produced so far (== the end cursor)
}

// ReadRequest reads a shell's output from a cursor.
type ReadRequest struct {
	Cursor      int64         // byte offset into the shell's output since it opened
	MaxChars    int           // 0 = DefaultMaxChars; larger than MaxMaxChars is clamped
	Plain       bool          // render through a terminal emulator (no escape sequences)
	WaitForIdle time.Duration // 0 = read at once; capped at Options.MaxIdleWait
}

// ReadResult is a piece of a shell's output.
type ReadResult struct {
	Info                // state etc. at the time of the read
	Output       string `json:"output"`
	Cursor       int64  `json:"cursor"`        // where Output starts: the requested cursor, or later when older output was dropped
	NextCursor   int64  `json:"next_cursor"`   // pass as Cursor to the next read
	DroppedBytes int64  `json:"dropped_bytes"` // output lost between the requested cursor and Cursor
	More         bool   `json:"more"`          // output beyond NextCursor is already available (MaxChars reached)
}

// Options configure a Manager; zero fields take the defaults.
type Options struct {
	BufferBytes int           // output kept per shell; default 4 MiB
	MaxShells   int           // running shells at once; default 16
	MaxIdleWait time.Duration // cap of ReadRequest.WaitForIdle; default 30 s
	// Redact hides secret values from the output before it is kept, so that
	// no read (raw or plain, from any cursor) can show one. nil keeps the
	// output as it is.
	Redact *secrets.Redactor
}

// Manager holds the shells of one workspace. All methods are safe for
// concurrent use.
type Manager struct {
	opts       Options
	flushDelay time.Duration // redactFlushDelay; tests change it

	mu     sync.Mutex
	shells map[string]*shell
}

// shell is one shell. Lock order: Manager.mu before shell.mu.
type shell struct {
	id        string
	conn      Conn
	cwd       string
	startedAt time.Time

	ioMu      sync.Mutex // serialises Write, Signal and Resize on conn
	closeOnce sync.Once  // conn.Close
	pumpDone  chan struct{}
	ended     chan struct{} // closed when the shell stops running

	mu         sync.Mutex
	out        *ringlog.Log
	lastOutput time.Time
	redact     *secrets.Stream // output on its way into out
	flushDelay time.Duration   // the Manager's
	flushTimer *time.Timer     // flushes redact's held-back tail after a quiet time
	flushGen   uint64          // bumped by every chunk and flush: a stale timer does nothing
	flushDue   time.Time       // when flushTimer fires; zero when none is due
	state      string
	closing    string // why Close was called; "" until it is
	cols, rows int
	exitCode   *int
	signal     string
	reason     string
	endedAt    *time.Time
}

// NewManager returns an empty Manager.
func NewManager(opts Options) *Manager {
	if opts.BufferBytes <= 0 {
		opts.BufferBytes = DefaultBufferBytes
	}
	if opts.MaxShells <= 0 {
		opts.MaxShells = DefaultMaxShells
	}
	if opts.MaxIdleWait <= 0 {
		opts.MaxIdleWait = DefaultMaxIdleWait
	}
	return &Manager{opts: opts, flushDelay: redactFlushDelay, shells: map[string]*shell{}}
}

// Open registers a shell that runs in the guest and starts pumping its
// output. cols and rows of 0 mean DefaultCols and DefaultRows. On an error
// the Manager did not take conn: the caller closes it.
func (m *Manager) Open(conn Conn, cwd string, cols, rows int) (*Info, error) {
	if conn == nil {
		return nil, errdefs.InvalidArgument("conn", "no shell connection")
	}
	if cols == 0 {
		cols = DefaultCols
	}
	if rows == 0 {
		rows = DefaultRows
	}
	if err := CheckSize(cols, rows); err != nil {
		return nil, err
	}
	s := &shell{
		conn: conn, cwd: cwd, startedAt: time.Now(),
		pumpDone: make(chan struct{}), ended: make(chan struct{}),
		out: ringlog.New(m.opts.BufferBytes), redact: m.opts.Redact.NewStream(), flushDelay: m.flushDelay,
		state: StateRunning, cols: cols, rows: rows,
	}

	m.mu.Lock()
	for s.id == "" || m.shells[s.id] != nil {
		id, err := newID()
		if err != nil {
			m.mu.Unlock()
			return nil, errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "could not make a shell id")
		}
		s.id = id
	}
	running := 0
	for _, o := range m.shells {
		if o.isRunning() {
			running++
		}
	}
	if running >= m.opts.MaxShells {
		m.mu.Unlock()
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, CodeTooManyShells,
			"%d shells are already running in this workspace, the limit: close one you no longer need, then open a new one", running)
	}
	m.evictLocked()
	m.shells[s.id] = s
	m.mu.Unlock()

	go s.pump()
	return s.info(), nil
}

// evictLocked forgets the longest-ended shells beyond the number kept, so
// that ended shells' output does not pile up. m.mu is held.
func (m *Manager) evictLocked() {
	type ended struct {
		id string
		at time.Time
	}
	var old []ended
	for id, s := range m.shells {
		s.mu.Lock()
		if s.state != StateRunning && s.endedAt != nil {
			old = append(old, ended{id, *s.endedAt})
		}
		s.mu.Unlock()
	}
	keep := m.opts.MaxShells
	if len(old) <= keep {
		return
	}
	slices.SortFunc(old, func(a, b ended) int { return a.at.Compare(b.at) })
	for _, e := range old[:len(old)-keep] {
		delete(m.shells, e.id)
	}
}

// List returns every shell the Manager knows, sorted by StartedAt.
func (m *Manager) List() []Info {
	m.mu.Lock()
	all := make([]*shell, 0, len(m.shells))
	for _, s := range m.shells {
		all = append(all, s)
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(all))
	for _, s := range all {
		out = append(out, *s.info())
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ShellID, b.ShellID)
	})
	return out
}

// Info describes one shell.
func (m *Manager) Info(id string) (*Info, error) {
	s, err := m.get(id)
	if err != nil {
		return nil, err
	}
	return s.info(), nil
}

// Read returns the shell's output from req.Cursor, after waiting for it to
// go quiet when req.WaitForIdle is set.
func (m *Manager) Read(ctx context.Context, id string, req ReadRequest) (*ReadResult, error) {
	s, err := m.get(id)
	if err != nil {
		return nil, err
	}
	maxChars := req.MaxChars
	switch {
	case maxChars < 0:
		return nil, errdefs.InvalidArgument("max_chars", "%d is negative: use 0 for the default (%d) or up to %d", maxChars, DefaultMaxChars, MaxMaxChars)
	case maxChars == 0:
		maxChars = DefaultMaxChars
	case maxChars > MaxMaxChars:
		maxChars = MaxMaxChars
	}
	if req.WaitForIdle < 0 {
		return nil, errdefs.InvalidArgument("wait_for_idle", "%s is negative: use 0 to read at once", req.WaitForIdle)
	}
	s.mu.Lock()
	end := s.out.End()
	s.mu.Unlock()
	if req.Cursor < 0 || req.Cursor > end {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, CodeInvalidCursor,
			"cursor %d is out of range: shell %s has produced %d bytes, so valid cursors are 0..%d; pass next_cursor from your last read (or 0 to read from the start)",
			req.Cursor, id, end, end)
	}
	if req.WaitForIdle > 0 {
		m.waitIdle(ctx, s, req.WaitForIdle)
	}

	s.mu.Lock()
	start, end := s.out.Start(), s.out.End()
	ended := s.state != StateRunning
	cur := req.Cursor
	if cur < start {
		cur = start
		// The drop may have cut a character: skip its remaining bytes.
		for i := 0; i < utf8.UTFMax-1 && cur < end; i++ {
			if !isContinuation(s.out.Slice(cur, cur+1)[0]) {
				break
			}
			cur++
		}
	}
	limit := min(end, cur+int64(maxChars)*utf8.UTFMax)
	data := s.out.Slice(cur, limit)
	info := s.infoLocked()
	s.mu.Unlock()

	n, more := cut(data, maxChars, ended || limit < end, end-cur)
	res := &ReadResult{
		Info:         *info,
		Cursor:       cur,
		NextCursor:   cur + int64(n),
		DroppedBytes: cur - req.Cursor,
		More:         more,
	}
	var text string
	if req.Plain {
		// Again after rendering: escape sequences inside a value (colour
		// from grep, a line wrap) hide it from the byte stream, not here.
		text = m.opts.Redact.String(renderPlain(data[:n], info.Cols, info.Rows))
	} else {
		text = strings.ToValidUTF8(string(data[:n]), "\uFFFD")
	}
	if res.DroppedBytes > 0 {
		text = fmt.Sprintf("[pyro: %d bytes of older output were dropped]\n", res.DroppedBytes) + text
	}
	res.Output = text
	return res, nil
}

// cut returns how many bytes of data to return: at most maxChars characters
// (an invalid byte counts as one), not ending inside a UTF-8 sequence unless
// final says no more bytes can follow data. avail is how many bytes are
// available from data's start (data may be a prefix of them). more reports
// that maxChars cut the output short of them.
func cut(data []byte, maxChars int, final bool, avail int64) (n int, more bool) {
	chars := 0
	for n < len(data) && chars < maxChars {
		_, size := utf8.DecodeRune(data[n:])
		n += size
		chars++
	}
	if n == len(data) && !final {
		// Hold back a sequence whose remaining bytes may still come.
		for i := 1; i <= utf8.UTFMax-1 && i <= n; i++ {
			b := data[n-i]
			if isContinuation(b) {
				continue
			}
			if seqLen(b) > i {
				return n - i, false
			}
			break
		}
	}
	return n, chars == maxChars && int64(n) < avail
}

func isContinuation(b byte) bool { return b&0xc0 == 0x80 }

// seqLen is the length of the UTF-8 sequence that lead byte b starts, 1 for
// an ASCII or invalid byte.
func seqLen(b byte) int {
	switch {
	case b&0xe0 == 0xc0 && b >= 0xc2:
		return 2
	case b&0xf0 == 0xe0:
		return 3
	case b&0xf8 == 0xf0 && b <= 0xf4:
		return 4
	}
	return 1
}

// waitIdle blocks until no output arrived for idle (counted from the later
// of the call and the last output), the shell stopped running, MaxIdleWait
// passed or ctx is done.
func (m *Manager) waitIdle(ctx context.Context, s *shell, idle time.Duration) {
	begin := time.Now()
	idle = min(idle, m.opts.MaxIdleWait)
	deadline := begin.Add(m.opts.MaxIdleWait)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		running, last, due := s.state == StateRunning, s.lastOutput, s.flushDue
		s.mu.Unlock()
		if !running || !time.Now().Before(deadline) {
			return
		}
		if last.Before(begin) {
			last = begin
		}
		// Output held back for redaction is not idle yet: it is shown
		// (and counts as output) when its flush is due.
		if last.Before(due) {
			last = due
		}
		wake := last.Add(idle)
		if wake.After(deadline) {
			wake = deadline
		}
		d := time.Until(wake)
		if d <= 0 {
			if due.IsZero() {
				return
			}
			d = time.Millisecond // the flush is late (a busy host): wait for it
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
		case <-s.ended:
			return
		case <-ctx.Done():
			return
		}
	}
}

// Write sends input to the shell's PTY.
func (m *Manager) Write(id string, input []byte) (*Info, error) {
	s, err := m.get(id)
	if err != nil {
		return nil, err
	}
	err = s.do(func() error {
		for len(input) > 0 {
			n, err := s.conn.Write(input)
			if err != nil {
				return err
			}
			if n <= 0 {
				return io.ErrShortWrite
			}
			input = input[n:]
		}
		return nil
	}, "write to")
	if err != nil {
		return nil, err
	}
	return s.info(), nil
}

// Signal sends a signal to the shell's foreground program: INT, TERM, HUP or
// KILL, with or without a SIG prefix, in any case.
func (m *Manager) Signal(id, name string) (*Info, error) {
	s, err := m.get(id)
	if err != nil {
		return nil, err
	}
	sig, ok := canonicalSignal(name)
	if !ok {
		return nil, errdefs.InvalidArgument("signal", "%q is not a signal you can send to a shell: use INT, TERM, HUP or KILL", name)
	}
	if err := s.do(func() error { return s.conn.Signal(sig) }, "signal"); err != nil {
		return nil, err
	}
	return s.info(), nil
}

func canonicalSignal(name string) (string, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	n = strings.TrimPrefix(n, "SIG")
	switch n {
	case "INT", "TERM", "HUP", "KILL":
		return n, true
	}
	return "", false
}

// Resize changes the size of the shell's terminal.
func (m *Manager) Resize(id string, cols, rows int) (*Info, error) {
	s, err := m.get(id)
	if err != nil {
		return nil, err
	}
	if err := CheckSize(cols, rows); err != nil {
		return nil, err
	}
	err = s.do(func() error {
		if err := s.conn.Resize(cols, rows); err != nil {
			return err
		}
		s.mu.Lock()
		s.cols, s.rows = cols, rows
		s.mu.Unlock()
		return nil
	}, "resize")
	if err != nil {
		return nil, err
	}
	return s.info(), nil
}

// CheckSize checks a terminal size against the bounds above.
func CheckSize(cols, rows int) error {
	if cols < MinCols || cols > MaxCols {
		return errdefs.InvalidArgument("cols", "%d is out of range: use %d..%d (default %d)", cols, MinCols, MaxCols, DefaultCols)
	}
	if rows < MinRows || rows > MaxRows {
		return errdefs.InvalidArgument("rows", "%d is out of range: use %d..%d (default %d)", rows, MinRows, MaxRows, DefaultRows)
	}
	return nil
}

// Close hangs the shell up (the guest kills its program) and waits, at most
// 5 s, for its output to be drained. Its output stays readable. Closing a
// closed shell returns its info.
func (m *Manager) Close(id string) (*Info, error) {
	s, err := m.get(id)
	if err != nil {
		return nil, err
	}
	s.close(reasonClosed)
	return s.info(), nil
}

// CloseAll closes every shell, at once, when the supervisor shuts down.
func (m *Manager) CloseAll() {
	m.mu.Lock()
	all := make([]*shell, 0, len(m.shells))
	for _, s := range m.shells {
		all = append(all, s)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() { s.close(reasonShutdown) })
	}
	wg.Wait()
}

func (m *Manager) get(id string) (*shell, error) {
	m.mu.Lock()
	s := m.shells[id]
	m.mu.Unlock()
	if s == nil {
		return nil, errdefs.New(errdefs.ErrNotFound, CodeShellNotFound,
			"no shell %q in this workspace (shells ended long ago are forgotten): list the shells, or open a new one", id)
	}
	return s, nil
}

// pump moves the PTY output, redacted, into the log until the shell ends.
func (s *shell) pump() {
	defer close(s.pumpDone)
	buf := make([]byte, pumpChunk)
	for {
		n, err := s.conn.Read(buf)
		if n > 0 {
			s.mu.Lock()
			s.outputLocked(buf[:n])
			s.mu.Unlock()
		}
		if err == nil {
			continue
		}
		eof := errors.Is(err, io.EOF)
		var code int
		var sig string
		if eof {
			code, sig = s.conn.Exit()
		}
		s.mu.Lock()
		// No more output can complete a held-back tail: show it before the
		// shell ends (close may have ended it already, still the tail is
		// output).
		s.flushLocked(true)
		if s.state == StateRunning {
			if eof {
				s.exitCode, s.signal = &code, sig
			}
			switch {
			case s.closing != "":
				s.endLocked(StateClosed, s.closing)
			case eof:
				s.endLocked(StateExited, "")
			default:
				s.endLocked(StateClosed, reasonLost)
			}
		}
		s.mu.Unlock()
		// The stream is over either way: release it.
		s.closeOnce.Do(func() { _ = s.conn.Close() })
		return
	}
}

// outputLocked passes a chunk of PTY output through the redaction stream
// into the log. When the stream holds back a tail, a flush is scheduled for
// the flush delay; the next chunk supersedes it. s.mu is held.
func (s *shell) outputLocked(p []byte) {
	now := time.Now()
	s.out.Write(s.redact.Push(p))
	s.lastOutput = now
	s.stopFlushLocked()
	if s.redact.Pending() {
		gen := s.flushGen
		s.flushDue = now.Add(s.flushDelay)
		s.flushTimer = time.AfterFunc(s.flushDelay, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.flushGen == gen { // else a later chunk or flush took over
				s.flushLocked(false)
			}
		})
	}
}

// flushLocked writes the redaction stream's held-back tail into the log as
// output, and cancels a scheduled flush. Unless final (the shell ended), a
// tail long enough to be the first part of a value printed in two writes
// stays held: showing it would let the rest through unredacted. s.mu is held.
func (s *shell) flushLocked(final bool) {
	s.stopFlushLocked()
	flush := s.redact.FlushQuiet
	if final {
		flush = s.redact.Flush
	}
	if b := flush(); len(b) > 0 {
		s.out.Write(b)
		s.lastOutput = time.Now()
	}
}

// stopFlushLocked cancels a scheduled flush; a timer that already fired
// and waits for s.mu sees flushGen moved on. s.mu is held.
func (s *shell) stopFlushLocked() {
	s.flushGen++
	if s.flushTimer != nil {
		s.flushTimer.Stop()
		s.flushTimer = nil
	}
	s.flushDue = time.Time{}
}

// endLocked moves a running shell to state, first showing the output held
// back for redaction; s.mu is held.
func (s *shell) endLocked(state, reason string) {
	s.flushLocked(true)
	wasRunning := s.state == StateRunning
	s.state = state
	if reason != "" && s.reason == "" {
		s.reason = reason
	}
	if wasRunning {
		now := time.Now()
		s.endedAt = &now
		close(s.ended)
	}
}

// close hangs up and waits (bounded) for the pump.
func (s *shell) close(reason string) {
	s.mu.Lock()
	if s.state == StateClosed {
		s.mu.Unlock()
		return
	}
	if s.closing == "" {
		s.closing = reason
	}
	s.mu.Unlock()

	s.closeOnce.Do(func() { _ = s.conn.Close() })
	t := time.NewTimer(closeWait)
	select {
	case <-s.pumpDone:
	case <-t.C:
	}
	t.Stop()

	s.mu.Lock()
	if s.state != StateClosed {
		s.endLocked(StateClosed, s.closing)
	}
	s.mu.Unlock()
}

// isRunning: running and not being closed.
func (s *shell) isRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == StateRunning && s.closing == ""
}

// do runs op on the connection if the shell runs, turning its error into a
// typed one.
func (s *shell) do(op func() error, what string) error {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	if err := s.notRunning(); err != nil {
		return err
	}
	err := op()
	if err == nil {
		return nil
	}
	if e := s.notRunning(); e != nil {
		return e
	}
	var typed *errdefs.Error
	if errors.As(err, &typed) {
		return err
	}
	return errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeAgentUnavailable, "could not %s shell %s", what, s.id)
}

// notRunning is the shell_closed error for a shell that does not run.
func (s *shell) notRunning() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == StateRunning && s.closing == "" {
		return nil
	}
	var why string
	switch {
	case s.state == StateExited:
		why = "its program " + s.exitLocked()
	case s.state == StateRunning: // closing
		why = "it is being closed"
	default:
		why = "it was closed"
		if s.reason != "" && s.reason != reasonClosed {
			why += " (" + s.reason + ")"
		}
		if s.exitCode != nil {
			why += " and its program " + s.exitLocked()
		}
	}
	return errdefs.New(errdefs.ErrFailedPrecondition, CodeShellClosed,
		"shell %s is no longer running: %s; its output can still be read, open a new shell to run more commands", s.id, why)
}

// exitLocked describes how the program ended; s.mu is held.
func (s *shell) exitLocked() string {
	if s.exitCode == nil {
		return "ended"
	}
	if s.signal != "" {
		return fmt.Sprintf("was killed by signal %s (exit code %d)", s.signal, *s.exitCode)
	}
	return fmt.Sprintf("exited with code %d", *s.exitCode)
}

func (s *shell) info() *Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked()
}

func (s *shell) infoLocked() *Info {
	i := &Info{
		ShellID: s.id, State: s.state, Cwd: s.cwd, Cols: s.cols, Rows: s.rows,
		Signal: s.signal, Reason: s.reason, StartedAt: s.startedAt, OutputBytes: s.out.End(),
	}
	if s.exitCode != nil {
		c := *s.exitCode
		i.ExitCode = &c
	}
	if s.endedAt != nil {
		t := *s.endedAt
		i.EndedAt = &t
	}
	return i
}

// idAlphabet: ids are lowercase alphanumeric.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newID returns 12 random characters of idAlphabet (62 bits).
func newID() (string, error) {
	out := make([]byte, 0, 12)
	buf := make([]byte, 32)
	for len(out) < cap(out) {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			// 252 = 7*36: rejecting above it keeps the choice uniform.
			if b < 252 && len(out) < cap(out) {
				out = append(out, idAlphabet[b%36])
			}
		}
	}
	return string(out), nil
}
