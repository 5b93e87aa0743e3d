package cli

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/cliexec"
)

func TestParseSecrets(t *testing.T) {
	got, err := parseSecrets([]string{"TOKEN=a=b=c", "EMPTY="}, []string{"KEY=./key.pem"})
	want := []pyro.WorkspaceSecret{{Name: "TOKEN", Value: "a=b=c"}, {Name: "EMPTY"}, {Name: "KEY", FilePath: "./key.pem"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseSecrets = %+v, %v", got, err)
	}
	for _, bad := range [][2][]string{
		{{"TOKEN"}, nil}, {{"=hunter22"}, nil}, {nil, {"KEY"}}, {nil, {"KEY="}}, {nil, {"=path"}},
	} {
		_, err := parseSecrets(bad[0], bad[1])
		if err == nil {
			t.Errorf("parseSecrets(%q, %q) accepted", bad[0], bad[1])
			continue
		}
		if strings.Contains(err.Error(), "hunter22") {
			t.Errorf("the error repeats a --secret value: %v", err)
		}
		if !strings.Contains(err.Error(), "NAME=") {
			t.Errorf("the error does not say the expected form: %v", err)
		}
	}
}

func TestApplySecretBrokers(t *testing.T) {
	sec := []pyro.WorkspaceSecret{{Name: "GH", Value: "v"}, {Name: "NPM", FilePath: "f"}, {Name: "KEEP", Value: "k"}}
	if err := applySecretBrokers(sec, []string{"GH=api.github.com, uploads.github.com", "NPM="}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sec[0].BrokerHosts, []string{"api.github.com", "uploads.github.com"}) ||
		sec[1].BrokerHosts == nil || len(sec[1].BrokerHosts) != 0 || sec[2].BrokerHosts != nil {
		t.Errorf("brokers %+v", sec)
	}
	for _, bad := range [][]string{{"GH"}, {"=api.x"}, {"NOPE=api.x"}, {"GH=a.x", "GH=b.x"}} {
		if err := applySecretBrokers(sec, bad); err == nil || !strings.Contains(err.Error(), "--secret-broker") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestParseSecretEnv(t *testing.T) {
	got, err := cliexec.ParseSecretEnv([]string{"TOKEN", "KEY=SSH_KEY", "OTHER=OTHER", "TOKEN"})
	want := map[string]string{"TOKEN": "", "KEY": "SSH_KEY", "OTHER": ""}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("parseSecretEnv = %v, %v", got, err)
	}
	if m, err := cliexec.ParseSecretEnv(nil); m != nil || err != nil {
		t.Errorf("no flags: %v, %v", m, err)
	}
	for _, bad := range [][]string{{""}, {"=X"}, {"TOKEN="}, {"TOKEN=A", "TOKEN=B"}} {
		if _, err := cliexec.ParseSecretEnv(bad); err == nil {
			t.Errorf("cliexec.ParseSecretEnv(%q) accepted", bad)
		}
	}
}

// Malformed secret flags are usage errors (exit 2), found before any
// workspace is looked at.
func TestSecretFlagsUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"workspace", "create", "debian:12", "--secret", "NOVALUE"},
		{"workspace", "create", "debian:12", "--secret-file", "KEY"},
		{"workspace", "exec", "ws", "--secret-env", "=X", "--", "true"},
		{"workspace", "shell", "open", "ws", "--secret-env", "TOKEN="},
		{"workspace", "service", "start", "ws", "web", "--secret-env", "", "--", "true"},
	} {
		var out, errb bytes.Buffer
		a := &app{stdout: &out, stderr: &errb}
		root := a.rootCommand()
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		var ee exitError
		if err == nil || errors.As(err, &ee) {
			t.Errorf("pyro %q: err %v; want a usage error", args, err)
			continue
		}
		if !strings.Contains(err.Error(), "expected NAME") {
			t.Errorf("pyro %q: %v does not give the expected form", args, err)
		}
	}
}
