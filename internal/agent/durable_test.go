//go:build linux

package agent

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

// A mutating call answers success only after its flush: when the flush
// cannot run (the workspace root is not a directory), the answer is an
// error, not a result. Reads answer as before.
func TestMutatingCallsFlushBeforeAnswering(t *testing.T) {
	root := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(root, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sess := startAgent(t, Options{WorkspaceRoot: root, ServicesRoot: t.TempDir()})
	r := readReply(t, send(t, sess, agentproto.Request{Op: agentproto.OpExec,
		Exec: &agentproto.ExecRequest{Argv: []string{"/bin/true"}}}))
	if r.err == nil || r.err.Code != agentproto.ErrCodeInternal || !strings.Contains(r.err.Message, "flushing") {
		t.Fatalf("exec with an unflushable workspace: result %s, error %+v", r.result, r.err)
	}
	r = readReply(t, send(t, sess, agentproto.Request{Op: agentproto.OpServiceList}))
	if r.err != nil || r.result == nil {
		t.Fatalf("service list: %+v", r.err)
	}

	// With a real directory the same exec succeeds.
	sess = startAgent(t, Options{WorkspaceRoot: t.TempDir(), ServicesRoot: t.TempDir()})
	r = readReply(t, send(t, sess, agentproto.Request{Op: agentproto.OpExec,
		Exec: &agentproto.ExecRequest{Argv: []string{"/bin/true"}}}))
	if r.err != nil || r.result == nil {
		t.Fatalf("exec: %+v", r.err)
	}
}

// A flush that takes a while is announced before the result, so the host
// extends the call's bound instead of giving the session up.
func TestSlowFlushAnnounced(t *testing.T) {
	agentEnd, hostEnd := net.Pipe()
	defer hostEnd.Close()
	fw := &frameWriter{conn: agentEnd, flush: func() error { time.Sleep(flushNotice + 300*time.Millisecond); return nil }}
	go func() {
		_ = fw.json(agentproto.FrameResult, agentproto.ExecResult{})
		agentEnd.Close()
	}()
	var kinds []byte
	for {
		kind, _, err := agentproto.ReadFrame(hostEnd)
		if err != nil {
			break
		}
		kinds = append(kinds, kind)
	}
	if string(kinds) != string([]byte{agentproto.FrameFlushing, agentproto.FrameResult}) {
		t.Fatalf("frames %v, want flushing then result", kinds)
	}
}
