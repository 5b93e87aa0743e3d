package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/command"
	"github.com/pyrovm/pyro/internal/errdefs"
)

func events(evs ...ExecEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		line, _ := json.Marshal(ev)
		b.Write(append(line, '\n'))
	}
	return b.String()
}

// ReadExec passes the output on as it comes, names the command once, and
// ends with the result, the supervisor's typed error, or an unavailable
// supervisor when the stream stops short.
func TestReadExec(t *testing.T) {
	ctx := t.Context()
	res := &ExecResult{CommandID: "c1"}
	res.ExitCode = 3
	var out, errOut bytes.Buffer
	var started []string
	got, err := ReadExec(ctx, strings.NewReader(events(
		ExecEvent{Command: &command.Info{CommandID: "c1"}},
		ExecEvent{Stdout: []byte("a")}, ExecEvent{Stderr: []byte("e")}, ExecEvent{Stdout: []byte("b")},
		ExecEvent{Result: res},
	)), agentclient.ExecStreams{Stdout: &out, Stderr: &errOut}, func(i *command.Info) { started = append(started, i.CommandID) })
	if err != nil || got.ExitCode != 3 || got.CommandID != "c1" || out.String() != "ab" || errOut.String() != "e" || len(started) != 1 {
		t.Fatalf("result %+v, %v; stdout %q stderr %q started %v", got, err, out.String(), errOut.String(), started)
	}

	_, err = ReadExec(ctx, strings.NewReader(events(ExecEvent{Error: &WireError{Code: errdefs.CodeAgentUnavailable, Message: "gone"}})), agentclient.ExecStreams{}, nil)
	if errdefs.CodeOf(err) != errdefs.CodeAgentUnavailable || !errdefs.IsUnavailable(err) {
		t.Errorf("error event: %v (code %s)", err, errdefs.CodeOf(err))
	}
	_, err = ReadExec(ctx, strings.NewReader(events(ExecEvent{Stdout: []byte("x")})+`{"res`), agentclient.ExecStreams{}, nil)
	if errdefs.CodeOf(err) != errdefs.CodeSupervisorUnavailable {
		t.Errorf("cut stream: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ReadExec(canceled, strings.NewReader(""), agentclient.ExecStreams{}, nil); err != context.Canceled {
		t.Errorf("canceled: %v", err)
	}
}

// A saved machine counts only complete and for the disk as it is: its
// description, a state file of the size it gives, the disk unchanged.
func TestPausedValid(t *testing.T) {
	dir, disk := t.TempDir(), filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(disk, []byte("disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if PausedValid(dir, disk) {
		t.Fatal("an empty pause dir is valid")
	}
	id, err := DiskIDOf(disk)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(map[string]any{"state_bytes": 5, "disk": id, "paused_at": time.Now()})
	if err := os.WriteFile(filepath.Join(dir, PausedMetaFile), meta, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, PausedStateFile), []byte("stat"), 0o600); err != nil {
		t.Fatal(err)
	}
	if PausedValid(dir, disk) {
		t.Fatal("a short state file is valid")
	}
	if err := os.WriteFile(filepath.Join(dir, PausedStateFile), []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !PausedValid(dir, disk) {
		t.Fatal("a complete saved machine is not valid")
	}
	if err := os.WriteFile(disk, []byte("disk, written since"), 0o600); err != nil {
		t.Fatal(err)
	}
	if PausedValid(dir, disk) {
		t.Fatal("a saved machine of a disk written since is valid")
	}
}
