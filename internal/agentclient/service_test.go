package agentclient

import (
	"io"
	"net"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// A hostile guest's service records are refused, not passed on.
func TestServiceInfoFromGuestIsValidated(t *testing.T) {
	code := 999
	bad := []agentproto.ServiceInfo{
		{Name: "other", State: agentproto.ServiceReady},                                     // not the one asked for
		{Name: "web", State: "exploded"},                                                    // unknown state
		{Name: "web", State: agentproto.ServiceExited, ExitCode: &code},                     // impossible exit code
		{Name: "web", State: agentproto.ServiceReady, Reason: strings.Repeat("x", 300<<10)}, // oversized
		{Name: "web", State: agentproto.ServiceReady, Pid: -4},
	}
	for _, info := range bad {
		c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
			agentproto.WriteJSON(st, agentproto.FrameResult, info)
		})
		if _, err := c.ServiceStatus(t.Context(), "web"); errdefs.CodeOf(err) != errdefs.CodeAgentProtocol {
			t.Errorf("%.60v: err = %v", info, err)
		}
	}
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		agentproto.WriteJSON(st, agentproto.FrameError, agentproto.Error{Code: agentproto.ErrCodeNotFound, Message: "no service named web"})
	})
	if _, err := c.ServiceStatus(t.Context(), "web"); errdefs.CodeOf(err) != CodeServiceNotFound {
		t.Errorf("not found: %v", err)
	}
}

// Logs beyond what was asked for are cut on the host.
func TestServiceLogsCappedOnHost(t *testing.T) {
	c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.ServiceLogs{Name: "web", Log: []byte(strings.Repeat("y", 5000))})
	})
	l, err := c.ServiceLogs(t.Context(), "web", 0, 100)
	if err != nil || len(l.Log) != 100 || !l.Truncated {
		t.Fatalf("%v: %d bytes, truncated %v", err, len(l.Log), l.Truncated)
	}
}

// A shell's exit status from the guest is checked too.
func TestShellExitFromGuestIsValidated(t *testing.T) {
	for _, exit := range []agentproto.ShellExit{{ExitCode: 300}, {ExitCode: -1, Signal: "KILL; rm -rf /"}} {
		c := fakeAgent(t, func(st net.Conn, _ agentproto.Request) {
			agentproto.WriteJSON(st, agentproto.FrameStarted, agentproto.Started{Pid: 7})
			agentproto.WriteFrame(st, agentproto.FrameStdout, []byte("hi"))
			agentproto.WriteJSON(st, agentproto.FrameResult, exit)
		})
		sh, err := c.OpenShell(t.Context(), agentproto.ShellRequest{Argv: []string{"sh"}, Cols: 80, Rows: 24})
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(sh)
		if string(out) != "hi" || errdefs.CodeOf(err) != errdefs.CodeAgentProtocol {
			t.Errorf("%+v: read %q, %v", exit, out, err)
		}
		sh.Close()
	}
}
