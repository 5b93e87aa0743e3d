package supervisor

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/agentclient"
	"github.com/pyrovm/pyro/internal/agentproto"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/secrets"
	"github.com/pyrovm/pyro/internal/supervisor/wire"
)

const (
	apiKey = "sk-live-0123456789abcdef"
	pemKey = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcN\n-----END KEY-----\n"
)

func testSet(t testing.TB) secrets.Set {
	t.Helper()
	set, err := secrets.NewSet([]secrets.Secret{
		{Name: "PEM_KEY", Value: pemKey, Source: secrets.SourceFile},
		{Name: "API_KEY", Value: apiKey},
		{Name: "db_pass", Value: "hunter2!"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

type tarEntry struct {
	hdr  *tar.Header
	body string
}

func untar(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading the tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, string(body)})
	}
}

func TestSecretsTar(t *testing.T) {
	set := testSet(t)
	tars, err := secretsTars(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(tars) != 1 {
		t.Fatalf("%d tars, want 1", len(tars))
	}
	got := untar(t, tars[0])
	if len(got) != len(set) {
		t.Fatalf("%d entries, want %d", len(got), len(set))
	}
	for i, e := range got {
		h := e.hdr
		if h.Name != set[i].Name || h.Typeflag != tar.TypeReg || h.Mode != 0o400 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("entry %d: name %q type %c mode %o uid %d gid %d", i, h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid)
		}
		if e.body != set[i].Value {
			t.Errorf("entry %s: content %q, want %q", h.Name, e.body, set[i].Value)
		}
	}
	if tars, _ := secretsTars(nil); len(tars) != 0 {
		t.Fatalf("no secrets: %d tars", len(tars))
	}
}

// A set at the limits takes a few commands, each of whose requests fits in
// one agent frame; together they hold every secret once.
func TestSecretsTarsFitAgentFrames(t *testing.T) {
	var in []secrets.Secret
	for i := range secrets.MaxSecrets {
		in = append(in, secrets.Secret{Name: fmt.Sprintf("S%02d", i), Value: strings.Repeat(string(rune('a'+i%26)), secrets.MaxValueBytes)})
	}
	set, err := secrets.NewSet(in)
	if err != nil {
		t.Fatal(err)
	}
	tars, err := secretsTars(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(tars) < 2 {
		t.Fatalf("%d tars for %d x %d bytes", len(tars), len(in), secrets.MaxValueBytes)
	}
	seen := map[string]bool{}
	for i, b := range tars {
		if len(b) > maxInstallTar {
			t.Errorf("tar %d: %d bytes, more than %d", i, len(b), maxInstallTar)
		}
		req := installRequest(b)
		frame, err := json.Marshal(agentproto.Request{Op: agentproto.OpExec, Exec: &req})
		if err != nil {
			t.Fatal(err)
		}
		if len(frame) > agentproto.MaxFramePayload {
			t.Errorf("tar %d: request of %d bytes does not fit in a frame (%d)", i, len(frame), agentproto.MaxFramePayload)
		}
		for _, e := range untar(t, b) {
			if seen[e.hdr.Name] || len(e.body) != secrets.MaxValueBytes {
				t.Errorf("entry %s: again %v, %d bytes", e.hdr.Name, seen[e.hdr.Name], len(e.body))
			}
			seen[e.hdr.Name] = true
		}
	}
	if len(seen) != len(in) {
		t.Fatalf("%d secrets packed, want %d", len(seen), len(in))
	}
}

// The install command works with GNU tar (the guest images' tar), twice
// over (a restored guest has the files already).
func TestInstallScriptGNUTar(t *testing.T) {
	v, err := exec.Command("tar", "--version").Output()
	if err != nil || !strings.Contains(string(v), "GNU tar") {
		t.Skip("GNU tar is not installed")
	}
	set := testSet(t)
	tars, err := secretsTars(set)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run", "pyro-secrets")
	for range 2 {
		cmd := exec.Command("/bin/sh", "-c", installScript(dir))
		cmd.Stdin = bytes.NewReader(tars[0])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("install: %v: %s", err, out)
		}
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v", st.Mode(), err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != len(set) {
		t.Fatalf("dir holds %d entries, want %d: %v", len(ents), len(set), err)
	}
	for _, x := range set {
		p := filepath.Join(dir, x.Name)
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o400 {
			t.Fatalf("%s: %v %v", x.Name, st.Mode(), err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != x.Value {
			t.Fatalf("%s: %q %v", x.Name, b, err)
		}
	}
}

type fakeExecer struct {
	reqs []agentproto.ExecRequest
	res  *agentclient.ExecResult
	err  error
}

func (f *fakeExecer) Exec(_ context.Context, req agentproto.ExecRequest) (*agentclient.ExecResult, error) {
	f.reqs = append(f.reqs, req)
	if f.err != nil {
		return nil, f.err
	}
	return f.res, nil
}

func noValue(t testing.TB, what, s string) {
	t.Helper()
	for _, v := range []string{apiKey, "hunter2!", "MIIBOgIBAAJBAKj34GkxFhD90vcN", "sk-live"} {
		if strings.Contains(s, v) {
			t.Fatalf("%s shows a secret value (%q): %s", what, v, s)
		}
	}
}

func TestInstallSecrets(t *testing.T) {
	set := testSet(t)
	ctx := t.Context()

	f := &fakeExecer{res: &agentclient.ExecResult{}}
	if err := installSecrets(ctx, f, set); err != nil {
		t.Fatal(err)
	}
	if len(f.reqs) != 1 {
		t.Fatalf("%d commands, want 1", len(f.reqs))
	}
	req := f.reqs[0]
	want := []string{"/bin/sh", "-c", "umask 077 && mkdir -p /run/pyro-secrets && chmod 700 /run/pyro-secrets && tar -x -o -f - -C /run/pyro-secrets"}
	if strings.Join(req.Argv, "\x00") != strings.Join(want, "\x00") || len(req.Env) != 0 {
		t.Fatalf("request argv %q env %q", req.Argv, req.Env)
	}
	if got := untar(t, req.Stdin); len(got) != len(set) {
		t.Fatalf("stdin holds %d entries", len(got))
	}

	f = &fakeExecer{}
	if err := installSecrets(ctx, f, nil); err != nil || len(f.reqs) != 0 {
		t.Fatalf("no secrets: %v, %d commands", err, len(f.reqs))
	}

	fails := map[string]*fakeExecer{
		"exit": {res: &agentclient.ExecResult{
			ExecResult: agentproto.ExecResult{ExitCode: 2},
			Stderr:     []byte("tar: " + apiKey + ": Cannot open\ntar: hunter2"),
		}},
		"truncated": {res: &agentclient.ExecResult{
			ExecResult: agentproto.ExecResult{ExitCode: 2, StderrTruncated: true},
			Stderr:     []byte("tar: " + apiKey[:12]),
		}},
		"signal":    {res: &agentclient.ExecResult{ExecResult: agentproto.ExecResult{ExitCode: -1, Signal: "KILL"}}},
		"timeout":   {res: &agentclient.ExecResult{ExecResult: agentproto.ExecResult{ExitCode: -1, TimedOut: true}}},
		"transport": {err: errdefs.New(errdefs.ErrUnavailable, "agent_unavailable", "agent gone while writing "+apiKey)},
	}
	for name, f := range fails {
		err := installSecrets(ctx, f, set)
		var e *errdefs.Error
		if !errors.As(err, &e) || e.Code != CodeSecretsInstallFailed || !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("%s: %v", name, err)
		}
		noValue(t, name, err.Error())
		w := toWire(err)
		noValue(t, name+" (wire)", w.Message)
		if wire.FromWire(&WireError{Code: w.Code, Message: w.Message}).(*errdefs.Error).Class != errdefs.ErrFailedPrecondition {
			t.Fatalf("%s: class not derived from the code", name)
		}
		if !strings.Contains(err.Error(), "secrets") {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestLoadSecrets(t *testing.T) {
	dir := t.TempDir()
	if set, err := loadSecrets(""); set != nil || err != nil {
		t.Fatalf("no path: %v %v", set, err)
	}
	if set, err := loadSecrets(filepath.Join(dir, "none.json")); set != nil || err != nil {
		t.Fatalf("no file: %v %v", set, err)
	}
	good := filepath.Join(dir, "secrets.json")
	if err := secrets.Save(good, testSet(t)); err != nil {
		t.Fatal(err)
	}
	if set, err := loadSecrets(good); err != nil || len(set) != 3 {
		t.Fatalf("good file: %v %v", set, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"name":"API_KEY","value":"`+apiKey+`"`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadSecrets(bad)
	if errdefs.CodeOf(err) != CodeSecretsInstallFailed {
		t.Fatalf("damaged file: %v", err)
	}
	noValue(t, "damaged file", err.Error())
	unreadable := filepath.Join(dir, "adir")
	if err := os.Mkdir(unreadable, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := loadSecrets(unreadable); errdefs.CodeOf(err) != CodeSecretsInstallFailed || !strings.Contains(err.Error(), unreadable) {
		t.Fatalf("a directory: %v", err)
	}
}

func TestRedactExecResult(t *testing.T) {
	r := testSet(t).Redactor()
	res := redactExecResult(r, &agentclient.ExecResult{
		ExecResult: agentproto.ExecResult{ExitCode: 3, Signal: "TERM", TimedOut: true, DurationMs: 7, StderrTruncated: true},
		Stdout:     []byte("key=" + apiKey + "\n" + pemKey),
		Stderr:     []byte("warn: hunter2! and " + apiKey[:10]), // cut short inside a value
	})
	// (Whether white space around a value is hidden too is the secrets
	// package's business.)
	if !strings.HasPrefix(string(res.Stdout), "key=[REDACTED]\n[REDACTED]") {
		t.Errorf("stdout %q", res.Stdout)
	}
	noValue(t, "stdout", string(res.Stdout))
	if string(res.Stderr) != "warn: [REDACTED] and [REDACTED]" {
		t.Errorf("stderr %q", res.Stderr)
	}
	if res.ExitCode != 3 || res.Signal != "TERM" || !res.TimedOut || res.DurationMs != 7 || res.StdoutTruncated || !res.StderrTruncated {
		t.Errorf("fields lost: %+v", res)
	}
	// Not truncated: a value's start at the end is shown (nothing more came).
	res = redactExecResult(r, &agentclient.ExecResult{Stdout: []byte("x " + apiKey[:10])})
	if string(res.Stdout) != "x "+apiKey[:10] {
		t.Errorf("complete stdout %q", res.Stdout)
	}
	// No secrets: bytes unchanged.
	res = redactExecResult(nil, &agentclient.ExecResult{Stdout: []byte(apiKey)})
	if string(res.Stdout) != apiKey || res.Stderr != nil {
		t.Errorf("no redactor: %q %q", res.Stdout, res.Stderr)
	}
}

func TestRedactServices(t *testing.T) {
	r := testSet(t).Redactor()
	code := 1
	info := agentproto.ServiceInfo{
		Name: "web", State: "failed", Argv: []string{"/bin/sh", "-lc", "TOKEN=" + apiKey + " ./serve"},
		Cwd: "/workspace", ReadyKind: "http", ReadyTarget: "http://localhost:8080/?k=" + apiKey,
		ExitCode: &code, Reason: "exited with code 1: bad key " + apiKey, LogPath: "/run/pyro-services/web.log",
	}
	got := redactService(r, info)
	noValue(t, "service", fmt.Sprintf("%+v", got))
	if got.Argv[2] != "TOKEN=[REDACTED] ./serve" || got.Reason != "exited with code 1: bad key [REDACTED]" ||
		got.Name != "web" || got.Cwd != "/workspace" || got.ExitCode != &code || got.LogPath != info.LogPath {
		t.Errorf("service %+v", got)
	}
	if info.Argv[2] != "TOKEN="+apiKey+" ./serve" {
		t.Errorf("the agent's info was changed: %q", info.Argv)
	}
	// Logs: a truncated log may begin inside a value.
	if got := redactLog(r, []byte(apiKey[8:]+"\nok "+apiKey+"\n"), true); got != "[REDACTED]\nok [REDACTED]\n" {
		t.Errorf("truncated log %q", got)
	}
	if got := redactLog(r, []byte("ok "+apiKey+"\n"), false); got != "ok [REDACTED]\n" {
		t.Errorf("log %q", got)
	}
	if got := redactLog(nil, []byte(apiKey), true); got != apiKey {
		t.Errorf("no redactor: %q", got)
	}
}

func TestWriteErrRedacts(t *testing.T) {
	s := &server{redact: testSet(t).Redactor()}
	for _, err := range []error{
		errdefs.New(errdefs.ErrNotFound, "not_found", "no file /workspace/%s", apiKey),
		fmt.Errorf("agent: exec_failed: starting %s: no such file", apiKey),
	} {
		rec := httptest.NewRecorder()
		s.writeErr(rec, err)
		body := rec.Body.String()
		noValue(t, "error answer", body)
		var got struct{ Error WireError }
		if e := json.Unmarshal([]byte(body), &got); e != nil {
			t.Fatal(e)
		}
		if got.Error.Code != errdefs.CodeOf(err) || got.Error.Class != errdefs.ClassName(err) || rec.Code != httpStatus(err) {
			t.Errorf("%v: answer %d %+v", err, rec.Code, got.Error)
		}
		if !strings.Contains(got.Error.Message, secrets.Redacted) {
			t.Errorf("message %q", got.Error.Message)
		}
		if w := s.wireErr(err); w.Message != got.Error.Message {
			t.Errorf("wireErr %q", w.Message)
		}
	}
	if rec := httptest.NewRecorder(); true {
		(&server{}).writeErr(rec, errdefs.New(errdefs.ErrNotFound, "not_found", "no %s", apiKey))
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), apiKey) {
			t.Errorf("no secrets: %d %s", rec.Code, rec.Body)
		}
	}
}

// The supervisor's log reaches users (its tail is in boot errors): values
// are hidden in messages, attributes, errors, groups and With attributes.
func TestRedactingLogger(t *testing.T) {
	const value = "s3cr3t-log-value"
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, nil))
	log := redactingLogger(base, secrets.NewRedactor(value))
	log.With("ctx", "with "+value).Warn("msg "+value, "s", value, "err", errors.New("failed: "+value),
		slog.Group("g", "inner", value), "n", 42)
	out := buf.String()
	if strings.Contains(out, value) || strings.Count(out, secrets.Redacted) != 5 || !strings.Contains(out, "n=42") {
		t.Fatalf("log line: %s", out)
	}
	if redactingLogger(base, nil) != base {
		t.Error("no secrets should keep the logger")
	}
}
