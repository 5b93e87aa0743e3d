package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/secrets"
)

// Pure logic of the table, with a runner standing in for the guest (the VM
// tests in the root package and e2e/ prove the real path).

// scripted writes chunks to stdout, each after a release, then ends.
type scripted struct {
	chunks  []string
	release chan struct{}
	code    int
}

func (s *scripted) run(ctx context.Context, stdout, stderr io.Writer, _ io.Reader) (*agentproto.ExecResult, error) {
	for _, c := range s.chunks {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		io.WriteString(stdout, c)
	}
	io.WriteString(stderr, "done")
	return &agentproto.ExecResult{ExitCode: s.code}, nil
}

func TestCursorFollow(t *testing.T) {
	m := NewManager(Options{LogBytes: 16})
	s := &scripted{chunks: []string{"hello ", "world, this is long"}, release: make(chan struct{}), code: 3}
	info, err := m.Start(t.Context(), "echo", true, nil, s.run)
	if err != nil || info.State != StateRunning || !info.Background {
		t.Fatalf("start: %+v %v", info, err)
	}
	id := info.CommandID
	changed, _ := m.Changed(id)
	s.release <- struct{}{}
	<-changed
	_, ch, err := m.Logs(id, LogsRequest{})
	if err != nil || string(ch[0].Data) != "hello " || ch[0].Next != 6 || ch[0].More {
		t.Fatalf("first read: %+v %v", ch[0], err)
	}
	if w, _ := m.Wait(t.Context(), id, 10*time.Millisecond); w.State != StateRunning {
		t.Fatalf("wait returned %s while it runs", w.State)
	}
	s.release <- struct{}{}
	w, err := m.Wait(t.Context(), id, time.Minute)
	if err != nil || w.State != StateExited || *w.ExitCode != 3 || w.StdoutBytes != 25 || w.StderrBytes != 4 {
		t.Fatalf("after the end: %+v %v", w, err)
	}
	// 16 bytes kept: a read from the old cursor reports what it missed.
	_, ch, _ = m.Logs(id, LogsRequest{StdoutCursor: 6, MaxBytes: 4})
	if ch[0].Cursor != 9 || ch[0].Dropped != 3 || string(ch[0].Data) != "ld, " || ch[0].Next != 13 || !ch[0].More {
		t.Fatalf("read after drop: %+v", ch[0])
	}
	_, ch, _ = m.Logs(id, LogsRequest{StdoutCursor: 25, StderrCursor: 0})
	if len(ch[0].Data) != 0 || ch[0].More || string(ch[1].Data) != "done" {
		t.Fatalf("end read: %+v %+v", ch[0], ch[1])
	}
	var e *errdefs.Error
	if _, _, err := m.Logs(id, LogsRequest{StdoutCursor: 26}); !errors.As(err, &e) || e.Code != CodeInvalidCursor {
		t.Fatalf("cursor past the end: %v", err)
	}
	if _, err := m.Info("nope"); !errors.As(err, &e) || e.Code != CodeNotFound {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestKillAndCloseAll(t *testing.T) {
	m := NewManager(Options{})
	s := &scripted{chunks: []string{"never"}, release: make(chan struct{})}
	a, _ := m.Start(t.Context(), "a", true, nil, s.run)
	b, _ := m.Start(t.Context(), "b", true, nil, s.run)
	k, err := m.Kill(t.Context(), a.CommandID)
	if err != nil || k.State != StateKilled || *k.ExitCode != -1 || k.Signal != "KILL" {
		t.Fatalf("kill: %+v %v", k, err)
	}
	m.CloseAll()
	done, _ := m.Done(b.CommandID)
	<-done
	if i, _ := m.Info(b.CommandID); i.State != StateKilled {
		t.Fatalf("after CloseAll: %s", i.State)
	}
	if k2, _ := m.Kill(t.Context(), a.CommandID); k2.State != StateKilled {
		t.Fatalf("kill again: %s", k2.State)
	}
}

func TestBoundsAndRedaction(t *testing.T) {
	m := NewManager(Options{Redact: secrets.NewRedactor("s3cr3t-value")})
	block := &scripted{chunks: []string{"x"}, release: make(chan struct{})}
	for i := range MaxBackground {
		if _, err := m.Start(t.Context(), fmt.Sprint(i), true, nil, block.run); err != nil {
			t.Fatal(err)
		}
	}
	var e *errdefs.Error
	if _, err := m.Start(t.Context(), "one more", true, nil, block.run); !errors.As(err, &e) || e.Code != CodeTooMany {
		t.Fatalf("over the bound: %v", err)
	}
	// Foreground commands are not bounded by it; finished ones are forgotten
	// past KeepFinished, oldest first.
	leak := func(ctx context.Context, stdout, _ io.Writer, _ io.Reader) (*agentproto.ExecResult, error) {
		io.WriteString(stdout, "the s3cr3t-")
		io.WriteString(stdout, "value is out")
		return &agentproto.ExecResult{}, nil
	}
	var first string
	for i := range KeepFinished + 2 {
		info, err := m.Start(t.Context(), "echo s3cr3t-value", false, nil, leak)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info.Command, "s3cr3t") {
			t.Fatalf("command not redacted: %q", info.Command)
		}
		done, _ := m.Done(info.CommandID)
		<-done
		if i == KeepFinished+1 {
			// Pinned until its caller released it, however many ended since.
			if _, err := m.Info(first); err != nil {
				t.Fatalf("a pinned command was forgotten: %v", err)
			}
		}
		if i > 0 {
			m.Release(info.CommandID)
		}
		for m.forgetting() {
			time.Sleep(time.Millisecond)
		}
		if i == 0 {
			first = info.CommandID
			_, ch, _ := m.Logs(first, LogsRequest{})
			if string(ch[0].Data) != "the [REDACTED] is out" {
				t.Fatalf("output not redacted: %q", ch[0].Data)
			}
		}
		time.Sleep(time.Millisecond) // distinct end times
	}
	m.Release(first)
	if _, err := m.Info(first); !errors.As(err, &e) || e.Code != CodeNotFound {
		t.Fatalf("oldest finished command still kept: %v", err)
	}
	if n := len(m.List()); n != MaxBackground+KeepFinished {
		t.Fatalf("%d commands listed", n)
	}
	m.CloseAll()
}

// forgetting reports whether more finished commands are held than kept
// (the end of a run forgets the oldest just after it is done).
func (m *Manager) forgetting() bool {
	n := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.cmds {
		c.mu.Lock()
		if c.info.EndedAt != nil && !c.pinned {
			n++
		}
		c.mu.Unlock()
	}
	return n > KeepFinished
}
