package guestexec

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestShell(t *testing.T) {
	r := Shell("echo $A", []string{"A=1"}, "", 30*time.Second, 100)
	if r.Shell != "echo $A" || r.Cwd != "/workspace" || r.TimeoutMs != 30_000 || r.MaxStdout != 100 || r.MaxStderr != 100 ||
		!slices.Equal(r.Env, []string{"A=1"}) || r.Argv != nil {
		t.Errorf("Shell = %+v", r)
	}
	if r := Shell("true", nil, "/", 0, 1); r.Cwd != "/" || r.TimeoutMs != 0 {
		t.Errorf("cwd / and no timeout: %+v", r)
	}
}

func TestEnv(t *testing.T) {
	got, err := Env(map[string]string{"B": "2", "A": "x=y"})
	if err != nil || !slices.Equal(got, []string{"A=x=y", "B=2"}) {
		t.Errorf("Env = %v, %v", got, err)
	}
	for name, vars := range map[string]map[string]string{
		"bad name":  {"1A": "x"},
		"NUL":       {"A": "a\x00b"},
		"too large": {"A": strings.Repeat("x", MaxEnvBytes)},
	} {
		if _, err := Env(vars); errdefs.CodeOf(err) != errdefs.CodeInvalidArgument || !strings.HasPrefix(err.Error(), "env: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAddSecretEnv(t *testing.T) {
	r := Shell("true", []string{"CI=1"}, "", time.Second, 1)
	if err := AddSecretEnv(&r, []string{"TOKEN=s"}); err != nil || !slices.Equal(r.Env, []string{"CI=1", "TOKEN=s"}) {
		t.Errorf("AddSecretEnv = %v, %v", r.Env, err)
	}
	err := AddSecretEnv(&r, []string{"CI=secret"})
	if errdefs.CodeOf(err) != errdefs.CodeInvalidArgument || !strings.Contains(err.Error(), "CI is set by both env and secret_env") {
		t.Errorf("a name set both ways: %v", err)
	}
	if slices.Contains(r.Env, "CI=secret") {
		t.Errorf("a refused variable was added: %v", r.Env)
	}
}
