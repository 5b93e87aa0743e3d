package e2e_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Background commands through the CLI: start, logs by cursor, status lists
// it, wait with its exit code (124 while it runs), --follow, kill.
func TestCLICommands(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "workspace", "create", "debian:12", "--id-only")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	ws := strings.TrimSpace(r.stdout)
	defer runPyro(t, s, "workspace", "delete", ws)

	r = runPyro(t, s, "workspace", "exec", "--background", ws, "--",
		"for i in 1 2 3; do echo l$i; done; while [ ! -e /tmp/stop ]; do sleep 0.1; done; echo end >&2; exit 6")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || len(id) < 8 || !strings.Contains(r.stderr, "command logs "+ws+" "+id) {
		t.Fatalf("exec --background: %+v", r)
	}
	type logs struct {
		State      string `json:"state"`
		Stdout     string `json:"stdout"`
		StdoutFrom int64  `json:"stdout_from"`
		NextCursor int64  `json:"next_cursor"`
	}
	var l logs
	for deadline := time.Now().Add(time.Minute); l.NextCursor < 9; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("output never came: %+v", l)
		}
		r = runPyro(t, s, "workspace", "command", "logs", ws, id, "--json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &l) != nil {
			t.Fatalf("logs --json: %+v", r)
		}
	}
	if l.Stdout != "l1\nl2\nl3\n" || l.State != "running" {
		t.Fatalf("logs: %+v", l)
	}
	r = runPyro(t, s, "workspace", "command", "logs", ws, id, "--cursor", "3")
	if r.code != 0 || r.stdout != "l2\nl3\n" || !strings.Contains(r.stderr, "next --cursor 9 --stderr-cursor 0") {
		t.Fatalf("logs --cursor 3: %+v", r)
	}
	r = runPyro(t, s, "workspace", "status", ws, "--json")
	var st struct {
		Commands []struct {
			CommandID  string `json:"command_id"`
			Background bool   `json:"background"`
			State      string `json:"state"`
		} `json:"commands"`
	}
	if json.Unmarshal([]byte(r.stdout), &st) != nil || len(st.Commands) != 1 || st.Commands[0].CommandID != id || st.Commands[0].State != "running" {
		t.Fatalf("status: %+v", r)
	}
	if r = runPyro(t, s, "workspace", "status", ws); !strings.Contains(r.stdout, "background:  "+id+" running") {
		t.Fatalf("human status: %+v", r)
	}
	if r = runPyro(t, s, "workspace", "command", "wait", ws, id, "--timeout-seconds", "1"); r.code != 124 || !strings.Contains(r.stdout, "running") {
		t.Fatalf("short wait: %+v", r)
	}
	if r = runPyro(t, s, "workspace", "exec", ws, "--", "touch /tmp/stop"); r.code != 0 {
		t.Fatalf("touch: %+v", r)
	}
	r = runPyro(t, s, "workspace", "command", "logs", ws, id, "--follow")
	if r.code != 6 || r.stdout != "l1\nl2\nl3\n" || r.stderr != "end\n" {
		t.Fatalf("--follow: %+v", r)
	}
	if r = runPyro(t, s, "workspace", "command", "wait", ws, id); r.code != 6 || !strings.Contains(r.stdout, "exited, exit code 6") {
		t.Fatalf("wait: %+v", r)
	}

	r = runPyro(t, s, "workspace", "exec", "--background", ws, "--", "sleep 600")
	sleeper := strings.TrimSpace(r.stdout)
	if r = runPyro(t, s, "workspace", "command", "kill", ws, sleeper); r.code != 0 || !strings.Contains(r.stdout, "killed, exit code 137") {
		t.Fatalf("kill: %+v", r)
	}
	r = runPyro(t, s, "workspace", "command", "list", ws, "--json")
	var list struct {
		Commands []struct {
			CommandID string `json:"command_id"`
			State     string `json:"state"`
		} `json:"commands"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list.Commands) < 3 || list.Commands[0].CommandID != id {
		t.Fatalf("command list: %+v", r)
	}
	if r = runPyro(t, s, "workspace", "command", "list", ws); !strings.Contains(r.stdout, sleeper+"  killed") {
		t.Fatalf("human command list: %+v", r)
	}
	if r = runPyro(t, s, "workspace", "command", "status", ws, "nope"); r.code != 125 || !strings.Contains(r.stderr, "command_not_found") {
		t.Fatalf("unknown command: %+v", r)
	}
	if r = runPyro(t, s, "workspace", "exec", "--background", "-i", ws, "--", "cat"); r.code != 2 {
		t.Fatalf("--background -i: %+v", r)
	}
}

// run and workspace exec print output as the command produces it, and -i
// passes stdin; --json stays one object.
func TestCLIStreamAndStdin(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "workspace", "create", "debian:12", "--id-only")
	if r.code != 0 {
		t.Fatalf("create: %+v", r)
	}
	ws := strings.TrimSpace(r.stdout)
	defer runPyro(t, s, "workspace", "delete", ws)

	// The command waits for a file that is created only once its first
	// line reached this side: without live output it would never end.
	cmd := pyroCmd(t, s, "workspace", "exec", ws, "--timeout-seconds", "120", "--",
		"echo first; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo second")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(out)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("first line: %q %v", line, err)
	}
	if r := runPyro(t, s, "workspace", "exec", ws, "--", "touch /tmp/go"); r.code != 0 {
		t.Fatalf("touch: %+v", r)
	}
	rest, _ := br.ReadString(0)
	if err := cmd.Wait(); err != nil || rest != "second\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}

	in := pyroCmd(t, s, "workspace", "exec", "-i", ws, "--", "tr a-z A-Z; echo done")
	in.Stdin = strings.NewReader("hello\n")
	if b, err := in.Output(); err != nil || string(b) != "HELLO\ndone\n" {
		t.Fatalf("exec -i: %q %v", b, err)
	}
	js := pyroCmd(t, s, "workspace", "exec", "-i", "--json", ws, "--", "cat")
	js.Stdin = strings.NewReader("hi")
	b, err := js.Output()
	var res struct {
		Stdout    string `json:"stdout"`
		CommandID string `json:"command_id"`
	}
	if err != nil || json.Unmarshal(b, &res) != nil || res.Stdout != "hi" || res.CommandID == "" {
		t.Fatalf("exec -i --json: %q %v", b, err)
	}
	run := pyroCmd(t, s, "run", "debian:12", "-i", "--", "wc -c")
	run.Stdin = strings.NewReader("12345")
	if b, err := run.Output(); err != nil || strings.TrimSpace(string(b)) != "5" {
		t.Fatalf("run -i: %q %v", b, err)
	}
}
