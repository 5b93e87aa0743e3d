package agentproto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/pyrovm/pyro/internal/netutil"
)

// A session on the agent channel starts with a handshake before yamux
// (protocol 12): the host repeats Hail until the agent answers Ack, then
// sends Begin; the agent skips everything up to a whole Hail, answers Ack,
// skips up to Begin, and only then speaks yamux. Whatever the channel held
// before is thereby cut off on both sides:
//   - a guest restored from a machine saved in the middle of a session (a
//     fork of a running workspace) still runs that session: the Hail breaks
//     it (not yamux), the agent reopens its port and meets the next Hail;
//   - bytes a guest drops while it closes its port (a host that came back
//     before the agent let go of the old session) only cost a Hail or two.
//
// The markers are 16 bytes no yamux header starts with (its version byte
// is 0).
var (
	Hail  = []byte("\xffpyro-hail-v12\xff\n")
	Ack   = []byte("\xffpyro-ack--v12\xff\n")
	Begin = []byte("\xffpyro-begin-12\xff\n")
)

// Hail pacing: the first Hail goes at once and the next ones every
// hailGap (a restored fork's agent meets one within a few ms of reopening
// its port); after hailSteady of them the host repeats it less often and in
// longer runs, so that an old session that is reading a long frame body in
// a restored guest runs out of it (a yamux body is at most 256 KiB)
// without flooding a guest that is still booting.
const (
	hailGap    = 5 * time.Millisecond
	hailSteady = 60
	hailMaxGap = 250 * time.Millisecond
	hailMaxRun = 1024 // Hails per write: 16 KiB
)

// OpenSession is the host's side of the handshake on conn: it returns once
// the agent answered (after Begin went out), or with ctx's error or the
// channel's. The returned conn reads what the agent sends after its Ack.
func OpenSession(ctx context.Context, conn net.Conn) (net.Conn, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() { werr = hail(conn, stop) })
	rest, err := skipPast(ctx, conn, Ack)
	close(stop)
	wg.Wait() // no Hail may follow Begin
	if err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(Begin); err != nil {
		return nil, err
	}
	return &netutil.PrefixConn{Conn: conn, Prefix: rest}, nil
}

func hail(w io.Writer, stop <-chan struct{}) error {
	gap, run := hailGap, 1
	for n := 1; ; n++ {
		if _, err := w.Write(bytes.Repeat(Hail, run)); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-time.After(gap):
		}
		if n >= hailSteady {
			gap = min(gap*3/2, hailMaxGap)
			run = min(run*2, hailMaxRun)
		}
	}
}

// AcceptSession is the agent's side of the handshake on rw: it skips to a
// Hail, answers Ack and skips to Begin. What it read past Begin comes first
// from the returned reader.
func AcceptSession(ctx context.Context, rw io.ReadWriter) (io.Reader, error) {
	if _, err := skipPast(ctx, rw, Hail); err != nil {
		return nil, err
	}
	if _, err := rw.Write(Ack); err != nil {
		return nil, err
	}
	rest, err := skipPast(ctx, rw, Begin)
	if err != nil {
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(rest), rw), nil
}

// ErrNoHandshake is a channel that ended before the other side's marker.
var ErrNoHandshake = errors.New("agent channel: the session handshake did not come")

// skipPast reads r until marker has gone by and returns what came after it
// in the same reads. ctx is checked between reads (a deadline of the
// caller's conn ends a read that waits).
func skipPast(ctx context.Context, r io.Reader, marker []byte) ([]byte, error) {
	var window []byte
	buf := make([]byte, 32<<10)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := r.Read(buf)
		window = append(window, buf[:n]...)
		if i := bytes.Index(window, marker); i >= 0 {
			return bytes.Clone(window[i+len(marker):]), nil
		}
		// Keep only a tail that could still begin a marker.
		if len(window) >= len(marker) {
			window = append(window[:0], window[len(window)-len(marker)+1:]...)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, ErrNoHandshake
			}
			return nil, err
		}
	}
}

// HostSession is conn with the host's side of the handshake done on its
// first Read or Write (OpenSession): a yamux client can start on it at
// once, its first frame waits for the agent. Closing conn ends a handshake
// that waits.
func HostSession(conn net.Conn) net.Conn {
	return &lazySession{Conn: conn, open: func() (io.Reader, error) {
		c, err := OpenSession(context.Background(), conn)
		if err != nil {
			return nil, err
		}
		return c, nil
	}}
}

// GuestSession is rwc with the agent's side of the handshake done on its
// first Read or Write (AcceptSession).
func GuestSession(rwc io.ReadWriteCloser) io.ReadWriteCloser {
	return &lazySession{Conn: rwcConn{rwc}, open: func() (io.Reader, error) {
		return AcceptSession(context.Background(), rwc)
	}}
}

type lazySession struct {
	net.Conn
	open func() (io.Reader, error)
	once sync.Once
	r    io.Reader
	err  error
}

func (s *lazySession) start() error {
	s.once.Do(func() { s.r, s.err = s.open() })
	return s.err
}

func (s *lazySession) Read(p []byte) (int, error) {
	if err := s.start(); err != nil {
		return 0, err
	}
	return s.r.Read(p)
}

func (s *lazySession) Write(p []byte) (int, error) {
	if err := s.start(); err != nil {
		return 0, err
	}
	return s.Conn.Write(p)
}

// rwcConn lends a ReadWriteCloser (the guest's port) the rest of net.Conn.
type rwcConn struct{ io.ReadWriteCloser }

func (rwcConn) LocalAddr() net.Addr              { return nil }
func (rwcConn) RemoteAddr() net.Addr             { return nil }
func (rwcConn) SetDeadline(time.Time) error      { return nil }
func (rwcConn) SetReadDeadline(time.Time) error  { return nil }
func (rwcConn) SetWriteDeadline(time.Time) error { return nil }
