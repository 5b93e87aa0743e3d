package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// qmpClient speaks QEMU's machine protocol (QMP) on a unix socket: one JSON
// object per line; after the greeting and qmp_capabilities, every command is
// answered by one {"return": ...} or {"error": ...}, with asynchronous
// {"event": ...} objects in between. Commands are sent one at a time.
//
// It is a few dozen lines on purpose: pyro needs five commands, and the Go
// QMP libraries found (digitalocean/go-qemu: untagged, a large generated API)
// would bring far more than that.
type qmpClient struct {
	conn *net.UnixConn
	r    *bufio.Reader
	stop func() bool
}

// qmpMessage is any line QEMU sends.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *qmpError       `json:"error"`
	Event  string          `json:"event"`
}

type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return "qmp: " + e.Class + ": " + e.Desc }

// maxQMPLine bounds one reply line (query-migrate answers are small).
const maxQMPLine = 1 << 20

// dialQMP connects, reads the greeting and leaves negotiation mode. ctx
// bounds the dial and, while it lasts, every later exchange.
func dialQMP(ctx context.Context, path string) (*qmpClient, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: connect %s: %w", path, err)
	}
	q := &qmpClient{conn: c.(*net.UnixConn), r: bufio.NewReaderSize(c, 64<<10)}
	if dl, ok := ctx.Deadline(); ok {
		_ = q.conn.SetDeadline(dl)
	}
	// Cancelling ctx unblocks any exchange in progress.
	q.stop = context.AfterFunc(ctx, func() { _ = q.conn.SetDeadline(time.Unix(1, 0)) })
	var greet qmpMessage
	if err := q.read(&greet); err != nil {
		q.Close()
		return nil, fmt.Errorf("qmp: greeting: %w", err)
	}
	if greet.QMP == nil {
		q.Close()
		return nil, errors.New("qmp: no greeting")
	}
	if err := q.execute("qmp_capabilities", nil, nil, nil); err != nil {
		q.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) Close() error {
	q.stop()
	return q.conn.Close()
}

func (q *qmpClient) read(m *qmpMessage) error {
	line, err := q.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Rare: a long line. Collect it, bounded.
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(buf) < maxQMPLine {
			line, err = q.r.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	if err != nil {
		return err
	}
	*m = qmpMessage{}
	return json.Unmarshal(line, m)
}

// execute runs one command. args may be nil; out (may be nil) receives the
// "return" value; fd, when not nil, travels with the command as SCM_RIGHTS
// (for getfd).
func (q *qmpClient) execute(cmd string, args any, out any, fd *os.File) error {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if fd != nil {
		_, _, err = q.conn.WriteMsgUnix(b, syscall.UnixRights(int(fd.Fd())), nil)
	} else {
		_, err = q.conn.Write(b)
	}
	if err != nil {
		return fmt.Errorf("qmp: %s: %w", cmd, err)
	}
	for {
		var m qmpMessage
		if err := q.read(&m); err != nil {
			return fmt.Errorf("qmp: %s: %w", cmd, err)
		}
		switch {
		case m.Error != nil:
			return fmt.Errorf("%s: %w", cmd, m.Error)
		case m.Return != nil:
			if out != nil {
				if err := json.Unmarshal(m.Return, out); err != nil {
					return fmt.Errorf("qmp: %s: bad reply: %w", cmd, err)
				}
			}
			return nil
		}
		// an event: not ours to handle
	}
}
