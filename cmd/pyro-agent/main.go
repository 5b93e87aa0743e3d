//go:build linux

// Command pyro-agent is the guest agent, started by the kernel as
// init=/sbin/pyro-agent inside every pyro microVM.
package main

import (
	"fmt"
	"os"

	"github.com/pyrovm/pyro/internal/agent"
)

func main() {
	// As PID 1 the arguments come from the kernel command line; never exit.
	if os.Getpid() != 1 && len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println(agent.Version)
		return
	}
	agent.Run()
}
