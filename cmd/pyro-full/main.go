// Command pyro-full is the complete pyro CLI (internal/cli). The pyro
// binary runs a ready workspace's exec itself and hands every other call
// here, with the same arguments; it must be installed beside pyro.
package main

import (
	"os"

	"github.com/pyrovm/pyro/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
