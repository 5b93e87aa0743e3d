package cliexec

import "testing"

func TestShellCommand(t *testing.T) {
	cases := []struct {
		words []string
		want  string
	}{
		{[]string{"echo $HOME | wc -c"}, "echo $HOME | wc -c"},
		{[]string{"sh", "-c", "exit 7"}, "sh -c 'exit 7'"},
		{[]string{"printf", "%s", "it's"}, `printf %s 'it'\''s'`},
		{[]string{"echo", ""}, "echo ''"},
		{[]string{"uname", "-r"}, "uname -r"},
	}
	for _, c := range cases {
		if got := ShellCommand(c.words); got != c.want {
			t.Errorf("ShellCommand(%q) = %q, want %q", c.words, got, c.want)
		}
	}
}
