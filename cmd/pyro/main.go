// Command pyro is the CLI of pyro; see internal/cli.
package main

import (
	"os"

	"github.com/pyrovm/pyro/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
