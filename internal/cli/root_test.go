package cli

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/spf13/cobra"
)

// A command word builds only the commands on its path, and the child
// tables name each command as the command itself does (name and aliases).
func TestChildNames(t *testing.T) {
	full := (&app{}).rootCommand()
	kids := func(cmd *cobra.Command) []string {
		var names []string
		for _, c := range cmd.Commands() {
			if c.Name() != "help" && c.Name() != "completion" {
				names = append(names, c.Name())
			}
		}
		return names
	}
	// path: the words before, each the name of its command.
	check := func(path []string, want *cobra.Command) {
		for _, name := range append([]string{want.Name()}, want.Aliases...) {
			args := append(slices.Clone(path), name)
			cmd := (&app{}).commandFor(args)
			for i, w := range append(slices.Clone(path), want.Name()) {
				if got := kids(cmd); len(got) != 1 || got[0] != w {
					t.Errorf("pyro %q, level %d: children %q, want only %q", args, i, got, w)
					break
				}
				cmd = cmd.Commands()[slices.IndexFunc(cmd.Commands(), func(c *cobra.Command) bool { return c.Name() == w })]
			}
		}
	}
	unique := func(cmd *cobra.Command) {
		names := kids(cmd)
		if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
			t.Errorf("%s: a child built twice: %q", cmd.Name(), names)
		}
	}
	unique(full)
	for _, top := range full.Commands() {
		check(nil, top)
		unique(top)
		if top.Name() == "workspace" {
			for _, sub := range top.Commands() {
				check([]string{"workspace"}, sub)
			}
		}
	}
	// Anything else gets the whole tree (below the word it knows).
	for _, args := range [][]string{nil, {"--help"}, {"help", "workspace"}, {"nosuch"}, {"--insecure-registry", "x", "run"}} {
		if got := len((&app{}).commandFor(args).Commands()); got != len(full.Commands()) {
			t.Errorf("pyro %q: %d commands, want all %d", args, got, len(full.Commands()))
		}
	}
	ws, _, _ := full.Find([]string{"workspace"})
	for _, args := range [][]string{{"workspace"}, {"workspace", "--help"}, {"workspace", "nosuch"}} {
		sub, _, _ := (&app{}).commandFor(args).Find([]string{"workspace"})
		if got := len(sub.Commands()); got != len(ws.Commands()) {
			t.Errorf("pyro %q: %d workspace commands, want all %d", args, got, len(ws.Commands()))
		}
	}
}

// What a pruned tree prints and refuses is what the whole tree does.
func TestPrunedTreeSame(t *testing.T) {
	for _, args := range [][]string{
		{"workspace", "exec", "--help"},
		{"ws", "exec", "--help"},
		{"workspace", "exec"},
		{"workspace", "exec", "w", "--timeout-seconds", "-1", "--", "true"},
		{"workspace", "exec", "w", "--nosuchflag"},
		{"workspace", "shell", "nosuch"},
		{"workspace", "service", "--help"},
		{"run", "--help"},
		{"vm", "exec", "--help"},
	} {
		run := func(root *cobra.Command) string {
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(args)
			err := root.ExecuteContext(context.Background())
			if err != nil {
				out.WriteString("error: " + err.Error())
			}
			return out.String()
		}
		whole, pruned := run((&app{}).rootCommand()), run((&app{}).commandFor(args))
		if whole != pruned {
			t.Errorf("pyro %q:\nwhole tree:\n%s\npruned:\n%s", args, whole, pruned)
		}
	}
}

// The tree `pyro workspace exec` builds against the whole tree.
func BenchmarkCommandFor(b *testing.B) {
	for _, bc := range []struct {
		name string
		args []string
	}{{"whole", nil}, {"workspace-exec", []string{"workspace", "exec", "w", "--", "true"}}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				(&app{}).commandFor(bc.args)
			}
		})
	}
}
