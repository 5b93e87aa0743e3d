package qemu

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeQMP serves one connection: the greeting, then answers each command
// with replies[cmd] (after an event, to check that events are skipped).
// Descriptors received with a command are reported on fds.
func fakeQMP(t *testing.T, replies map[string]string) (path string, fds chan int) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	fds = make(chan int, 4)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(`{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}` + "\n"))
		buf, oob := make([]byte, 4096), make([]byte, 256)
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			if msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn]); len(msgs) > 0 {
				if got, _ := syscall.ParseUnixRights(&msgs[0]); len(got) > 0 {
					fds <- got[0]
				}
			}
			sc := bufio.NewScanner(strings.NewReader(string(buf[:n])))
			for sc.Scan() {
				var req struct {
					Execute string `json:"execute"`
				}
				json.Unmarshal(sc.Bytes(), &req)
				reply, ok := replies[req.Execute]
				if !ok {
					reply = `{"return": {}}`
				}
				c.Write([]byte(`{"event": "STOP", "timestamp": {"seconds": 1}}` + "\n" + reply + "\n"))
			}
		}
	}()
	return path, fds
}

func TestQMPClient(t *testing.T) {
	path, fds := fakeQMP(t, map[string]string{
		"query-migrate": `{"return": {"status": "completed"}}`,
		"migrate":       `{"error": {"class": "GenericError", "desc": "no way"}}`,
	})
	q, err := dialQMP(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var st struct{ Status string }
	if err := q.execute("query-migrate", nil, &st, nil); err != nil || st.Status != "completed" {
		t.Fatalf("query-migrate: %v %+v", err, st)
	}
	if err := q.execute("migrate", map[string]string{"uri": "fd:x"}, nil, nil); err == nil || !strings.Contains(err.Error(), "no way") {
		t.Fatalf("migrate error = %v", err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := q.execute("getfd", map[string]string{"fdname": "x"}, nil, f); err != nil {
		t.Fatal(err)
	}
	select {
	case fd := <-fds:
		syscall.Close(fd)
	case <-time.After(5 * time.Second):
		t.Fatal("the descriptor did not travel with getfd")
	}
}

func TestQMPClientNoGreeting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte(`{"return": {}}` + "\n"))
			c.Close()
		}
	}()
	if q, err := dialQMP(t.Context(), path); err == nil {
		q.Close()
		t.Fatal("a server without a greeting was accepted")
	}
}

// query-chardev's frontend-open is how DetachAgent sees the guest's side
// of the agent port.
func TestQMPFrontendOpen(t *testing.T) {
	path, _ := fakeQMP(t, map[string]string{"query-chardev": `{"return": [{"label": "console", "filename": "file", "frontend-open": true},` +
		`{"label": "agent", "filename": "unix:/x/agent.sock", "frontend-open": false}]}`})
	q, err := dialQMP(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if open, err := q.frontendOpen("agent"); err != nil || open {
		t.Fatalf("agent: open=%v err=%v", open, err)
	}
	if open, err := q.frontendOpen("console"); err != nil || !open {
		t.Fatalf("console: open=%v err=%v", open, err)
	}
	if _, err := q.frontendOpen("nope"); err == nil {
		t.Fatal("a chardev QEMU does not have was found")
	}
}
