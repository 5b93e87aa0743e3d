//go:build linux

package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/agentproto"
)

func TestSimpleCommand(t *testing.T) {
	for cmd, want := range map[string][]string{
		"true":                  nil, // a builtin
		"echo hi":               nil,
		"make -j2 test":         {"make", "-j2", "test"},
		"  git   status ":       {"git", "status"},
		"./build.sh --out=x/y":  {"./build.sh", "--out=x/y"},
		"FOO=1 make":            nil,
		"ls *.go":               nil,
		"ls $HOME":              nil,
		"a | b":                 nil,
		"cat 'x y'":             nil,
		"make; make install":    nil,
		"ls ~":                  nil,
		"python3 -c print(1)":   nil,
		"make\nmake":            nil,
		"-x":                    nil,
		"if":                    nil,
		"go test ./... -run=A1": {"go", "test", "./...", "-run=A1"},
	} {
		got, ok := simpleCommand(cmd)
		if ok != (want != nil) || !slices.Equal(got, want) {
			t.Errorf("%q: %q %v, want %q", cmd, got, ok, want)
		}
	}
}

func TestParseCapture(t *testing.T) {
	env := "\n" + captureMarker + "\nPATH=/bin\x00HOME=/root\x00PWD=/\x00_=/bin/cat\x00SHLVL=1\x00"
	if got := parseCapture([]byte("0022"+env), "0022"); !slices.Equal(got, []string{"PATH=/bin", "HOME=/root"}) {
		t.Errorf("plain: %q", got)
	}
	for name, out := range map[string]string{
		"other umask":  "0077" + env,
		"aliases":      "0022\nalias ll='ls -l'" + env,
		"own output":   "welcome!\n0022" + env,
		"no marker":    "0022\nPATH=/bin",
		"bad variable": "0022\n" + captureMarker + "\nnovalue\x00",
	} {
		if got := parseCapture([]byte(out), "0022"); got != nil {
			t.Errorf("%s: cached %q", name, got)
		}
	}
}

// A shell command sees on the fast path what `/bin/sh -lc` shows it: the
// same environment, cwd and umask; a changed profile is taken again.
func TestShellMatchesLoginShell(t *testing.T) {
	home := t.TempDir()
	profile := filepath.Join(home, ".profile")
	if err := os.WriteFile(profile, []byte("export PYRO_PROFILE=one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	saved := defaultEnv
	defaultEnv = append(slices.DeleteFunc(slices.Clone(defaultEnv), func(e string) bool { return strings.HasPrefix(e, "HOME=") }), "HOME="+home)
	t.Cleanup(func() {
		defaultEnv = saved
		logins.mu.Lock()
		logins.known = false
		logins.mu.Unlock()
	})
	sess := startAgent(t, Options{})
	cwd, _ := filepath.EvalSymlinks(t.TempDir())
	script := "env | sort; umask; pwd"
	for _, cmd := range []string{script, "printenv PYRO_PROFILE PWD HOME"} {
		slow, _ := run(t, sess, &agentproto.ExecRequest{Argv: []string{"/bin/sh", "-lc", cmd}, Cwd: cwd, MaxStdout: limit, MaxStderr: limit})
		fast, _ := run(t, sess, &agentproto.ExecRequest{Shell: cmd, Cwd: cwd, MaxStdout: limit, MaxStderr: limit})
		if string(fast.stdout) != string(slow.stdout) || string(fast.stderr) != string(slow.stderr) {
			t.Errorf("%q:\nlogin shell:\n%s%s\nshell:\n%s%s", cmd, slow.stdout, slow.stderr, fast.stdout, fast.stderr)
		}
	}
	logins.mu.Lock()
	cached := logins.env
	logins.mu.Unlock()
	if !slices.Contains(cached, "PYRO_PROFILE=one") {
		t.Fatalf("the login environment was not cached: %q", cached)
	}
	// mtime granularity: make sure the change is seen as one.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(profile, []byte("export PYRO_PROFILE=two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, _ := run(t, sess, &agentproto.ExecRequest{Shell: "printenv PYRO_PROFILE", MaxStdout: limit, MaxStderr: limit})
	if string(r.stdout) != "two\n" {
		t.Errorf("after a profile change: %q", r.stdout)
	}
	// Not a program after all: the shell's own answer, as before.
	r, res := run(t, sess, &agentproto.ExecRequest{Shell: "nosuchprogram-pyro", MaxStdout: limit, MaxStderr: limit})
	if res.ExitCode != 127 || !strings.Contains(string(r.stderr), "not found") {
		t.Errorf("missing program: exit %d, %q", res.ExitCode, r.stderr)
	}
}

// Programs found on the kept login PATH are remembered, and a program
// added, shadowed, made non-executable or removed in a PATH directory is
// seen by the very next command.
func TestShellFollowsPath(t *testing.T) {
	home := t.TempDir()
	a, b := filepath.Join(home, "a"), filepath.Join(home, "b")
	must(t, os.Mkdir(a, 0o755))
	must(t, os.Mkdir(b, 0o755))
	must(t, os.WriteFile(filepath.Join(home, ".profile"), []byte("export PATH="+a+":"+b+":$PATH\n"), 0o644))
	saved := defaultEnv
	defaultEnv = append(slices.DeleteFunc(slices.Clone(defaultEnv), func(e string) bool { return strings.HasPrefix(e, "HOME=") }), "HOME="+home)
	t.Cleanup(func() {
		defaultEnv = saved
		logins.mu.Lock()
		logins.known = false
		logins.mu.Unlock()
	})
	sess := startAgent(t, Options{})
	tool := func(dir, text string, mode os.FileMode) {
		t.Helper()
		must(t, os.WriteFile(filepath.Join(dir, "pyro-tool"), []byte("#!/bin/sh\necho "+text+"\n"), mode))
		must(t, os.Chmod(filepath.Join(dir, "pyro-tool"), mode))
	}
	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{"none yet", func() {}, ""},
		{"added", func() { tool(b, "b", 0o755) }, "b\n"},
		{"shadowed", func() { tool(a, "a", 0o755) }, "a\n"},
		{"rewritten", func() { tool(a, "a2", 0o755) }, "a2\n"},
		{"not executable", func() { must(t, os.Chmod(filepath.Join(a, "pyro-tool"), 0o644)) }, "b\n"},
		{"executable again", func() { must(t, os.Chmod(filepath.Join(a, "pyro-tool"), 0o755)) }, "a2\n"},
		{"removed", func() { must(t, os.Remove(filepath.Join(a, "pyro-tool"))) }, "b\n"},
		{"directory renamed away", func() { must(t, os.Rename(b, b+".old")) }, ""},
		{"and back", func() { must(t, os.Rename(b+".old", b)) }, "b\n"},
	}
	for _, st := range steps {
		st.change()
		r, res := run(t, sess, &agentproto.ExecRequest{Shell: "pyro-tool", MaxStdout: limit, MaxStderr: limit})
		if string(r.stdout) != st.want || (st.want == "") != (res.ExitCode == 127) {
			t.Errorf("%s: exit %d, stdout %q, want %q", st.name, res.ExitCode, r.stdout, st.want)
		}
		logins.mu.Lock()
		p, found := logins.found["pyro-tool"]
		logins.mu.Unlock()
		if !found || (p != "") != (st.want != "") {
			t.Errorf("%s: remembered %q %v", st.name, p, found)
		}
	}
}
