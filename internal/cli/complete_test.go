package cli

import (
	"bytes"
	"strings"
	"testing"
)

// complete runs the hidden __complete command as a shell would.
func completeWords(t *testing.T, args ...string) []string {
	t.Helper()
	t.Setenv("PYRO_STATE_DIR", t.TempDir())
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb}
	root := a.rootCommand()
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"__complete"}, args...))
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(l, ":") {
			words = append(words, l)
		}
	}
	return words
}

func TestCompletionOfEnumFlagsAndCommands(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"workspace", "create", "debian:12", "--network-policy", ""}, "egress+published-ports"},
		{[]string{"workspace", "shell", "signal", "w", "s", "--signal", ""}, "KILL"},
		{[]string{"mcp", "serve", "--profile", ""}, "workspace-full"},
		{[]string{"workspace", ""}, "exec"},
	} {
		if got := completeWords(t, c.args...); !strings.Contains(strings.Join(got, " "), c.want) {
			t.Errorf("%v: %v, want %s among them", c.args, got, c.want)
		}
	}
	if got := completeWords(t, "workspace", "exec", ""); len(got) != 0 {
		t.Errorf("no workspaces, yet completions %v", got)
	}
}
