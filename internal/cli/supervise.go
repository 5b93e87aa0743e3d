package cli

import (
	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro/internal/supervisor"
)

// superviseCommand is the hidden mode in which pyro runs a workspace's
// supervisor (started by the SDK, never by users) when pyro-supervisor is
// not installed beside it.
func (a *app) superviseCommand() *cobra.Command {
	return &cobra.Command{
		Use: supervisor.SubcommandName + " SPEC", Hidden: true, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := supervisor.Serve(args[0], a.stderr); err != nil {
				return exitError{1}
			}
			return nil
		},
	}
}
