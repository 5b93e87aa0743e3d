package mcp

import (
	"fmt"
	"strings"

	"github.com/pyrovm/pyro"
)

// hostRules are the sentences that tell a model which host paths it may
// name, built from the roots the operator granted.
type hostRules struct {
	read, write string // rule for inputs (seed, sync push) and for outputs (exports)
	canRead     bool   // some root is granted at all
}

func newHostRules(c *pyro.Client) hostRules {
	roots, _ := c.HostRoots()
	var all, writable []string
	for _, r := range roots {
		name := r.Path
		if r.Label != "" {
			name += " (" + r.Label + ")"
		}
		all = append(all, name)
		if r.Write {
			writable = append(writable, name)
		}
	}
	return hostRules{
		read:    rule("read from", all, roots, false),
		write:   rule("create files in", writable, roots, true),
		canRead: len(all) > 0,
	}
}

func rule(verb string, names []string, roots []pyro.HostRoot, write bool) string {
	if len(names) == 0 {
		return fmt.Sprintf("This server grants no host directory to %s: every such host path is refused with host_path_denied.", verb)
	}
	base := ""
	for _, r := range roots {
		if !write || r.Write {
			base = r.Path
			break
		}
	}
	return fmt.Sprintf("Host paths must be under a directory this server may %s: %s; a relative path is taken under %s. Others are refused with host_path_denied.",
		verb, strings.Join(names, ", "), base)
}
