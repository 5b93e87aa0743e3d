package shell

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// fakeConn is a shell in a pretend guest: the test writes the program's
// output with emit, ends it with exit, or breaks the connection with lose.
type fakeConn struct {
	pr *io.PipeReader
	pw *io.PipeWriter

	mu       sync.Mutex
	input    bytes.Buffer
	signals  []string
	sizes    [][2]int
	closed   bool
	code     int
	sig      string
	writeErr error
}

func newFakeConn() *fakeConn {
	pr, pw := io.Pipe()
	return &fakeConn{pr: pr, pw: pw}
}

func (f *fakeConn) Read(p []byte) (int, error) { return f.pr.Read(p) }

func (f *fakeConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errors.New("fake: write on closed shell")
	}
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	return f.input.Write(p)
}

func (f *fakeConn) Resize(cols, rows int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sizes = append(f.sizes, [2]int{cols, rows})
	return nil
}

func (f *fakeConn) Signal(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, name)
	return nil
}

func (f *fakeConn) Exit() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.code, f.sig
}

// Close hangs up: the program dies of SIGHUP.
func (f *fakeConn) Close() error {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		if f.code == 0 && f.sig == "" {
			f.code, f.sig = -1, "HUP"
		}
	}
	f.mu.Unlock()
	return f.pw.Close()
}

// emit is the program writing s; it returns once the pump has taken it.
func (f *fakeConn) emit(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(f.pw, s); err != nil {
		t.Fatalf("emit: %v", err)
	}
}

func (f *fakeConn) exit(code int, sig string) {
	f.mu.Lock()
	f.code, f.sig = code, sig
	f.mu.Unlock()
	f.pw.Close()
}

func (f *fakeConn) lose() { f.pw.CloseWithError(errors.New("fake: connection reset")) }

func (f *fakeConn) inputString() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.input.String()
}

func open(t testing.TB, m *Manager) (*fakeConn, string) {
	t.Helper()
	c := newFakeConn()
	info, err := m.Open(c, "/workspace", 80, 24)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.pw.Close() })
	return c, info.ShellID
}

// waitFor polls until cond holds (the pump runs on its own goroutine).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitBytes(t testing.TB, m *Manager, id string, n int64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d output bytes", n), func() bool {
		i, err := m.Info(id)
		return err == nil && i.OutputBytes >= n
	})
}

func waitState(t testing.TB, m *Manager, id, state string) *Info {
	t.Helper()
	var info *Info
	waitFor(t, "state "+state, func() bool {
		var err error
		info, err = m.Info(id)
		return err == nil && info.State == state
	})
	return info
}

func read(t testing.TB, m *Manager, id string, req ReadRequest) *ReadResult {
	t.Helper()
	r, err := m.Read(context.Background(), id, req)
	if err != nil {
		t.Fatalf("Read(%+v): %v", req, err)
	}
	return r
}

func wantCode(t testing.TB, err error, class error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	var e *errdefs.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not an errdefs error", err, err)
	}
	if e.Code != code || !errors.Is(err, class) {
		t.Fatalf("got %s (%v), want code %s class %v", e.Code, err, code, class)
	}
}

func TestOpenInfoList(t *testing.T) {
	m := NewManager(Options{})
	_, a := open(t, m)
	_, b := open(t, m)
	if a == b || len(a) < 10 || strings.Trim(a, idAlphabet) != "" {
		t.Fatalf("bad ids %q %q", a, b)
	}
	l := m.List()
	if len(l) != 2 || l[0].ShellID != a || l[1].ShellID != b {
		t.Fatalf("List = %+v", l)
	}
	i, err := m.Info(a)
	if err != nil || i.State != StateRunning || i.Cwd != "/workspace" || i.Cols != 80 || i.Rows != 24 {
		t.Fatalf("Info = %+v, %v", i, err)
	}
	if _, err := m.Open(newFakeConn(), "/", 0, 5000); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("rows 5000: %v", err)
	}
	c := newFakeConn()
	i, err = m.Open(c, "/", 0, 0)
	if err != nil || i.Cols != DefaultCols || i.Rows != DefaultRows {
		t.Fatalf("defaults: %+v %v", i, err)
	}
	c.pw.Close()
}

func TestReadersWithCursors(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	var want strings.Builder
	for i := range 200 {
		fmt.Fprintf(&want, "line %d: %s\r\n", i, strings.Repeat("é", i%7))
	}
	var wg sync.WaitGroup
	got := make([]string, 5)
	for r := range got {
		wg.Go(func() {
			var b strings.Builder
			cur := int64(0)
			for {
				res, err := m.Read(context.Background(), id, ReadRequest{Cursor: cur, MaxChars: 17 + r*13, WaitForIdle: 5 * time.Millisecond})
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				if res.Cursor != cur || res.DroppedBytes != 0 {
					t.Errorf("reader %d: cursor %d, want %d", r, res.Cursor, cur)
				}
				if got, want := int64(len(res.Output)), res.NextCursor-res.Cursor; got != want {
					t.Errorf("reader %d: %d bytes of output for a %d byte range", r, got, want)
				}
				b.WriteString(res.Output)
				cur = res.NextCursor
				if res.State != StateRunning && !res.More && cur == res.OutputBytes {
					break
				}
			}
			got[r] = b.String()
		})
	}
	// Emit in pieces that split characters.
	data := want.String()
	for i := 0; i < len(data); i += 7 {
		c.emit(t, data[i:min(i+7, len(data))])
	}
	c.exit(0, "")
	wg.Wait()
	for r, g := range got {
		if g != data {
			t.Errorf("reader %d got %d bytes, want %d", r, len(g), len(data))
		}
	}
	info := waitState(t, m, id, StateExited)
	if info.ExitCode == nil || *info.ExitCode != 0 || info.EndedAt == nil || info.OutputBytes != int64(len(data)) {
		t.Fatalf("info after exit: %+v", info)
	}
}

func TestDropWithMarker(t *testing.T) {
	const bufSize = 64 << 10
	m := NewManager(Options{BufferBytes: bufSize})
	c, id := open(t, m)
	// 10 MiB of numbered lines, in uneven chunks.
	var total int64
	var tail []byte
	chunk := make([]byte, 0, 100<<10)
	for i := 0; total < 10<<20; i++ {
		chunk = chunk[:0]
		for len(chunk) < 37<<10+i%1000 {
			chunk = fmt.Appendf(chunk, "%09d\n", total+int64(len(chunk)))
		}
		c.emit(t, string(chunk))
		total += int64(len(chunk))
		tail = append(tail, chunk...)
		if len(tail) > 2*bufSize {
			tail = tail[len(tail)-bufSize:]
		}
	}
	tail = tail[len(tail)-bufSize:]
	waitBytes(t, m, id, total)

	res := read(t, m, id, ReadRequest{Cursor: 0, MaxChars: MaxMaxChars})
	start := total - bufSize
	if res.Cursor != start || res.DroppedBytes != start || res.NextCursor != total || res.More {
		t.Fatalf("cursor %d dropped %d next %d more %v; want start %d end %d", res.Cursor, res.DroppedBytes, res.NextCursor, res.More, start, total)
	}
	marker := fmt.Sprintf("[pyro: %d bytes of older output were dropped]\n", start)
	if !strings.HasPrefix(res.Output, marker) {
		t.Fatalf("output starts %q", res.Output[:80])
	}
	if res.Output[len(marker):] != string(tail) {
		t.Fatal("kept output differs from the last bytes emitted")
	}
	// A cursor inside the kept range has no marker.
	res = read(t, m, id, ReadRequest{Cursor: total - 10})
	if res.DroppedBytes != 0 || res.Output != string(tail[bufSize-10:]) {
		t.Fatalf("read near the end: %+v", res)
	}
	// Plain reads carry the marker too.
	res = read(t, m, id, ReadRequest{Cursor: 5, Plain: true, MaxChars: 100})
	if !strings.HasPrefix(res.Output, fmt.Sprintf("[pyro: %d bytes", start-5)) || res.NextCursor != start+100 || !res.More {
		t.Fatalf("plain read after a drop: cursor %d next %d %q", res.Cursor, res.NextCursor, res.Output)
	}
}

func TestDropSkipsCutCharacter(t *testing.T) {
	m := NewManager(Options{BufferBytes: 8})
	c, id := open(t, m)
	c.emit(t, "ab€€€") // 2 + 9 bytes: the kept 8 start inside the first €
	waitBytes(t, m, id, 11)
	res := read(t, m, id, ReadRequest{})
	if res.Cursor != 5 || res.DroppedBytes != 5 || !strings.HasSuffix(res.Output, "]\n€€") {
		t.Fatalf("got cursor %d dropped %d %q", res.Cursor, res.DroppedBytes, res.Output)
	}
}

func TestCursorOutOfRange(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	c.emit(t, "hello")
	waitBytes(t, m, id, 5)
	for _, cur := range []int64{6, 1 << 40, -1} {
		_, err := m.Read(context.Background(), id, ReadRequest{Cursor: cur})
		wantCode(t, err, errdefs.ErrInvalidArgument, CodeInvalidCursor)
		if !strings.Contains(err.Error(), "0..5") || !strings.Contains(err.Error(), "next_cursor") {
			t.Fatalf("message: %v", err)
		}
	}
	res := read(t, m, id, ReadRequest{Cursor: 5})
	if res.Output != "" || res.NextCursor != 5 || res.More {
		t.Fatalf("read at the end: %+v", res)
	}
	_, err := m.Read(context.Background(), id, ReadRequest{MaxChars: -1})
	wantCode(t, err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument)
}

func TestUTF8SplitAtChunkEnd(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	euro := "€" // e2 82 ac
	c.emit(t, "a"+euro[:2])
	waitBytes(t, m, id, 3)
	res := read(t, m, id, ReadRequest{})
	if res.Output != "a" || res.NextCursor != 1 || res.More {
		t.Fatalf("first read: %+v", res)
	}
	c.emit(t, euro[2:]+"b")
	waitBytes(t, m, id, 5)
	res = read(t, m, id, ReadRequest{Cursor: 1})
	if res.Output != "€b" || res.NextCursor != 5 {
		t.Fatalf("second read: %+v", res)
	}
	// An incomplete sequence at the very end is returned once the shell ended.
	c.emit(t, euro[:1])
	c.exit(0, "")
	waitState(t, m, id, StateExited)
	res = read(t, m, id, ReadRequest{Cursor: 5})
	if res.Output != "\uFFFD" || res.NextCursor != 6 {
		t.Fatalf("after exit: %+v", res)
	}
	// Invalid bytes become U+FFFD; cursors stay byte offsets.
	res = read(t, m, id, ReadRequest{Cursor: 2})
	if res.Output != "\uFFFDb\uFFFD" || res.Cursor != 2 || res.NextCursor != 6 {
		t.Fatalf("from inside a character: %+v", res)
	}
}

func TestMaxChars(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	c.emit(t, "héllo wörld")
	waitBytes(t, m, id, int64(len("héllo wörld")))
	res := read(t, m, id, ReadRequest{MaxChars: 3})
	if res.Output != "hél" || res.NextCursor != 4 || !res.More {
		t.Fatalf("first: %+v", res)
	}
	res = read(t, m, id, ReadRequest{Cursor: res.NextCursor, MaxChars: 100})
	if res.Output != "lo wörld" || res.More || res.NextCursor != res.OutputBytes {
		t.Fatalf("rest: %+v", res)
	}
	// Exactly MaxChars characters left: no More.
	res = read(t, m, id, ReadRequest{Cursor: 4, MaxChars: 8})
	if res.Output != "lo wörld" || res.More {
		t.Fatalf("exact: %+v", res)
	}
	// Four-byte characters filling the read window.
	c.emit(t, strings.Repeat("😀", 10))
	waitBytes(t, m, id, res.OutputBytes+40)
	res = read(t, m, id, ReadRequest{Cursor: res.OutputBytes, MaxChars: 4})
	if res.Output != strings.Repeat("😀", 4) || !res.More || res.NextCursor-res.Cursor != 16 {
		t.Fatalf("emoji: %+v", res)
	}
	if n := utf8.RuneCountInString(res.Output); n != 4 {
		t.Fatalf("%d runes", n)
	}
}

func TestPlainRead(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	out := "\x1b[1;31mred\x1b[0m abc\rX\r\n"
	c.emit(t, out)
	waitBytes(t, m, id, int64(len(out)))
	res := read(t, m, id, ReadRequest{Plain: true})
	if res.Output != "Xed abc" {
		t.Fatalf("plain: %q", res.Output)
	}
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"shell_id", "state", "cwd", "cols", "rows", "started_at", "output_bytes", "output", "cursor", "next_cursor", "dropped_bytes", "more"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON %s has no %q", js, k)
		}
	}
	var decoded ReadResult
	if err := json.Unmarshal(js, &decoded); err != nil || decoded.ShellID != id || decoded.Output != res.Output {
		t.Fatalf("decoded %+v %v", decoded, err)
	}
	raw := read(t, m, id, ReadRequest{})
	if raw.NextCursor != res.NextCursor || !strings.Contains(raw.Output, "\x1b[1;31m") {
		t.Fatalf("raw: %+v", raw)
	}
}

func TestWaitForIdle(t *testing.T) {
	// Bounds are loose on purpose: a loaded CI host may stall goroutines.
	m := NewManager(Options{MaxIdleWait: 20 * time.Second})
	c, id := open(t, m)
	// Output in bursts for ~150 ms, then quiet.
	go func() {
		for i := range 6 {
			io.WriteString(c.pw, fmt.Sprintf("burst %d\n", i))
			time.Sleep(25 * time.Millisecond)
		}
	}()
	begin := time.Now()
	res := read(t, m, id, ReadRequest{WaitForIdle: 400 * time.Millisecond})
	took := time.Since(begin)
	if !strings.Contains(res.Output, "burst 5") {
		t.Fatalf("read before the output went quiet (after %s): %q", took, res.Output)
	}
	if took < 500*time.Millisecond || took > 10*time.Second {
		t.Fatalf("took %s", took)
	}
	// Already quiet: returns after the idle time, counted from the call.
	begin = time.Now()
	read(t, m, id, ReadRequest{Cursor: res.NextCursor, WaitForIdle: 50 * time.Millisecond})
	if took := time.Since(begin); took < 50*time.Millisecond || took > 10*time.Second {
		t.Fatalf("quiet shell: took %s", took)
	}
	// A canceled context ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	begin = time.Now()
	if _, err := m.Read(ctx, id, ReadRequest{WaitForIdle: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Fatalf("canceled: took %s", took)
	}
}

func TestWaitForIdleBounded(t *testing.T) {
	m := NewManager(Options{MaxIdleWait: 300 * time.Millisecond})
	c, id := open(t, m)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				io.WriteString(c.pw, "tick\n")
			}
		}
	}()
	defer func() { close(stop); <-done }()
	begin := time.Now()
	res := read(t, m, id, ReadRequest{WaitForIdle: 200 * time.Millisecond})
	took := time.Since(begin)
	if took < 290*time.Millisecond || took > 10*time.Second {
		t.Fatalf("busy shell: took %s", took)
	}
	if !strings.Contains(res.Output, "tick") {
		t.Fatalf("output %q", res.Output)
	}
	// WaitForIdle above the max is capped.
	begin = time.Now()
	read(t, m, id, ReadRequest{WaitForIdle: time.Hour})
	if took := time.Since(begin); took > 10*time.Second {
		t.Fatalf("capped: took %s", took)
	}
}

func TestWaitForIdleEndsWithShell(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	go func() {
		time.Sleep(50 * time.Millisecond)
		c.emit(t, "bye\n")
		c.exit(3, "")
	}()
	begin := time.Now()
	res := read(t, m, id, ReadRequest{WaitForIdle: 10 * time.Second})
	if took := time.Since(begin); took > 5*time.Second {
		t.Fatalf("took %s", took)
	}
	if res.State != StateExited || res.Output != "bye\n" || *res.ExitCode != 3 {
		t.Fatalf("%+v", res)
	}
}

func TestWriteSignalResize(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	if _, err := m.Write(id, []byte("ls\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write(id, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.inputString(); got != "ls\n" {
		t.Fatalf("input %q", got)
	}
	for _, name := range []string{"INT", "sigterm", "SigHup", " kill "} {
		if _, err := m.Signal(id, name); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", "QUIT", "SIGSTOP", "9"} {
		_, err := m.Signal(id, name)
		wantCode(t, err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument)
	}
	info, err := m.Resize(id, 132, 43)
	if err != nil || info.Cols != 132 || info.Rows != 43 {
		t.Fatalf("resize: %+v %v", info, err)
	}
	_, err = m.Resize(id, 0, 10)
	wantCode(t, err, errdefs.ErrInvalidArgument, errdefs.CodeInvalidArgument)
	c.mu.Lock()
	defer c.mu.Unlock()
	if fmt.Sprint(c.signals) != "[INT TERM HUP KILL]" || fmt.Sprint(c.sizes) != "[[132 43]]" {
		t.Fatalf("signals %v sizes %v", c.signals, c.sizes)
	}
}

func TestConnErrorIsTyped(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	c.mu.Lock()
	c.writeErr = errors.New("fake: stream stalled")
	c.mu.Unlock()
	_, err := m.Write(id, []byte("x"))
	wantCode(t, err, errdefs.ErrUnavailable, "agent_unavailable")
}

func TestEndedShellRefusesInput(t *testing.T) {
	m := NewManager(Options{})

	// Exited.
	c, id := open(t, m)
	c.emit(t, "done\n")
	c.exit(2, "")
	info := waitState(t, m, id, StateExited)
	if *info.ExitCode != 2 || info.Signal != "" {
		t.Fatalf("%+v", info)
	}
	_, err := m.Write(id, []byte("x"))
	wantCode(t, err, errdefs.ErrFailedPrecondition, CodeShellClosed)
	if !strings.Contains(err.Error(), "exited with code 2") || !strings.Contains(err.Error(), "open a new shell") {
		t.Fatalf("message: %v", err)
	}
	_, err = m.Signal(id, "INT")
	wantCode(t, err, errdefs.ErrFailedPrecondition, CodeShellClosed)
	_, err = m.Resize(id, 100, 30)
	wantCode(t, err, errdefs.ErrFailedPrecondition, CodeShellClosed)
	if res := read(t, m, id, ReadRequest{}); res.Output != "done\n" {
		t.Fatalf("output after exit: %q", res.Output)
	}

	// Killed by a signal.
	c, id = open(t, m)
	c.exit(-1, "KILL")
	waitState(t, m, id, StateExited)
	_, err = m.Write(id, []byte("x"))
	if !strings.Contains(err.Error(), "killed by signal KILL") {
		t.Fatalf("message: %v", err)
	}

	// Closed.
	c, id = open(t, m)
	c.emit(t, "kept\n")
	info, err = m.Close(id)
	if err != nil || info.State != StateClosed || info.Reason != reasonClosed || info.EndedAt == nil {
		t.Fatalf("Close: %+v %v", info, err)
	}
	_, err = m.Write(id, []byte("x"))
	wantCode(t, err, errdefs.ErrFailedPrecondition, CodeShellClosed)
	if !strings.Contains(err.Error(), "was closed") {
		t.Fatalf("message: %v", err)
	}
	_, err = m.Signal(id, "TERM")
	wantCode(t, err, errdefs.ErrFailedPrecondition, CodeShellClosed)
	if res := read(t, m, id, ReadRequest{}); res.Output != "kept\n" || res.State != StateClosed {
		t.Fatalf("output after close: %+v", res)
	}

	// Connection lost.
	c, id = open(t, m)
	c.lose()
	info = waitState(t, m, id, StateClosed)
	if info.Reason != reasonLost || info.ExitCode != nil || info.Signal != "" {
		t.Fatalf("lost: %+v", info)
	}
	_, err = m.Write(id, []byte("x"))
	wantCode(t, err, errdefs.ErrFailedPrecondition, CodeShellClosed)
	if !strings.Contains(err.Error(), "went away") {
		t.Fatalf("message: %v", err)
	}
}

func TestUnknownShell(t *testing.T) {
	m := NewManager(Options{})
	_, err := m.Info("nosuchshell")
	wantCode(t, err, errdefs.ErrNotFound, CodeShellNotFound)
	_, err = m.Read(context.Background(), "nosuchshell", ReadRequest{})
	wantCode(t, err, errdefs.ErrNotFound, CodeShellNotFound)
	_, err = m.Write("nosuchshell", nil)
	wantCode(t, err, errdefs.ErrNotFound, CodeShellNotFound)
	_, err = m.Signal("nosuchshell", "INT")
	wantCode(t, err, errdefs.ErrNotFound, CodeShellNotFound)
	_, err = m.Resize("nosuchshell", 80, 24)
	wantCode(t, err, errdefs.ErrNotFound, CodeShellNotFound)
	_, err = m.Close("nosuchshell")
	wantCode(t, err, errdefs.ErrNotFound, CodeShellNotFound)
}

func TestTooManyShells(t *testing.T) {
	m := NewManager(Options{MaxShells: 2})
	_, a := open(t, m)
	c2, b := open(t, m)
	_, err := m.Open(newFakeConn(), "/", 80, 24)
	wantCode(t, err, errdefs.ErrFailedPrecondition, CodeTooManyShells)
	// An ended shell no longer counts.
	c2.exit(0, "")
	waitState(t, m, b, StateExited)
	_, c := open(t, m)
	if _, err := m.Close(a); err != nil {
		t.Fatal(err)
	}
	_, d := open(t, m)
	// Ended shells beyond MaxShells are forgotten, oldest first.
	if _, err := m.Close(c); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Close(d); err != nil {
		t.Fatal(err)
	}
	open(t, m)
	if _, err := m.Info(b); !errdefs.IsNotFound(err) {
		t.Fatalf("oldest ended shell still known: %v", err)
	}
	if len(m.List()) != 3 {
		t.Fatalf("List: %+v", m.List())
	}
}

func TestCloseIdempotent(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	c.emit(t, "out")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			info, err := m.Close(id)
			if err != nil || info.State != StateClosed {
				t.Errorf("Close: %+v %v", info, err)
			}
		})
	}
	wg.Wait()
	first, _ := m.Info(id)
	again, err := m.Close(id)
	if err != nil || again.State != StateClosed || !again.EndedAt.Equal(*first.EndedAt) {
		t.Fatalf("second Close: %+v %v", again, err)
	}
	if *again.ExitCode != -1 || again.Signal != "HUP" {
		t.Fatalf("hang-up not recorded: %+v", again)
	}
	if res := read(t, m, id, ReadRequest{}); res.Output != "out" {
		t.Fatalf("%q", res.Output)
	}

	// Closing an exited shell keeps its exit.
	c, id = open(t, m)
	c.exit(7, "")
	waitState(t, m, id, StateExited)
	info, err := m.Close(id)
	if err != nil || info.State != StateClosed || *info.ExitCode != 7 {
		t.Fatalf("close exited: %+v %v", info, err)
	}
}

// stuckConn's Read ignores Close.
type stuckConn struct {
	fakeConn
	release chan struct{}
}

func (s *stuckConn) Read(p []byte) (int, error) {
	<-s.release
	return 0, io.EOF
}

func TestCloseBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 5 s")
	}
	m := NewManager(Options{})
	c := &stuckConn{fakeConn: *newFakeConn(), release: make(chan struct{})}
	info, err := m.Open(c, "/", 80, 24)
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	info, err = m.Close(info.ShellID)
	if err != nil || info.State != StateClosed {
		t.Fatalf("%+v %v", info, err)
	}
	if took := time.Since(begin); took < closeWait || took > closeWait+2*time.Second {
		t.Fatalf("took %s", took)
	}
	close(c.release)
	time.Sleep(10 * time.Millisecond)
	if info, _ := m.Info(info.ShellID); info.State != StateClosed {
		t.Fatalf("late pump end changed the state: %+v", info)
	}
}

func TestCloseAll(t *testing.T) {
	m := NewManager(Options{})
	for range 3 {
		open(t, m)
	}
	m.CloseAll()
	for _, i := range m.List() {
		if i.State != StateClosed || i.Reason != reasonShutdown {
			t.Fatalf("%+v", i)
		}
	}
}

// TestQueryDoesNotHang: terminal queries in the output (the emulator would
// answer them on its input pipe) must not block a plain read.
func TestQueryDoesNotHang(t *testing.T) {
	m := NewManager(Options{})
	c, id := open(t, m)
	out := "before\x1b[6n\x1b[c\x1b[>c\x1b]11;?\x07\x1b[?u\x1b[18t\x1b[5nafter"
	c.emit(t, out)
	waitBytes(t, m, id, int64(len(out)))
	done := make(chan *ReadResult, 1)
	go func() { done <- read(t, m, id, ReadRequest{Plain: true}) }()
	select {
	case res := <-done:
		if res.Output != "beforeafter" {
			t.Fatalf("%q", res.Output)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("plain read with a query hangs")
	}
}

func TestConcurrentUse(t *testing.T) {
	m := NewManager(Options{BufferBytes: 4096, MaxIdleWait: 50 * time.Millisecond})
	c, id := open(t, m)
	// An echoing program.
	go func() {
		for i := 0; ; i++ {
			if _, err := io.WriteString(c.pw, fmt.Sprintf("\x1b[32mline %d\x1b[0m €\r\n", i)); err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			cur := int64(0)
			for range 50 {
				res, err := m.Read(context.Background(), id, ReadRequest{Cursor: cur, Plain: r%2 == 0, MaxChars: 500, WaitForIdle: time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				if res.NextCursor < res.Cursor || res.Cursor < cur {
					t.Errorf("cursors went back: %d -> %d..%d", cur, res.Cursor, res.NextCursor)
				}
				cur = res.NextCursor
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			m.Write(id, []byte("x"))
			m.Signal(id, "INT")
			m.Resize(id, 100, 30)
			m.List()
		}
	})
	time.Sleep(20 * time.Millisecond)
	wg.Go(func() { m.Close(id) })
	wg.Wait()
	if i, _ := m.Info(id); i.State != StateClosed {
		t.Fatalf("%+v", i)
	}
}
