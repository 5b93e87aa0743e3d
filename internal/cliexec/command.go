package cliexec

import (
	"strings"

	"github.com/pyrovm/pyro/internal/guestexec"
)

// ShellCommand turns the words after "--" into one shell string: a single
// word is taken as the shell string as is (so `-- 'echo $HOME | wc -c'` works);
// several words are each quoted, then joined (so `-- sh -c 'exit 7'` works).
func ShellCommand(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = ShellQuote(w)
	}
	return strings.Join(quoted, " ")
}

// ShellQuote quotes s for /bin/sh unless it is made of safe characters only.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return guestexec.Quote(s)
}
