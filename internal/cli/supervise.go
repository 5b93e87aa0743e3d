package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/pyrovm/pyro/internal/supervisor"
)

// superviseCommand is the hidden mode in which pyro runs a workspace's
// supervisor (started by the SDK, never by users).
func (a *app) superviseCommand() *cobra.Command {
	return &cobra.Command{
		Use: "__supervise SPEC", Hidden: true, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ready := os.NewFile(3, "ready") // the launcher's pipe
			log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			if err := supervisor.Main(args[0], ready, log); err != nil {
				log.Error("supervisor", "err", err)
				return exitError{1}
			}
			return nil
		},
	}
}
