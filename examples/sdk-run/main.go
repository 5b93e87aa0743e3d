// Command sdk-run runs one command in a fresh microVM with the Go SDK.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/pyrovm/pyro"
)

func main() {
	c, err := pyro.New()
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Run(context.Background(), pyro.RunRequest{Environment: "debian:12", Command: "uname -r && git --version"})
	if err != nil {
		log.Fatalf("%s: %v", pyro.ErrorCode(err), err)
	}
	fmt.Print(res.Stdout)
	fmt.Fprintf(os.Stderr, "exit %d in %d ms (%s)\n", res.ExitCode, res.DurationMs, res.ExecutionMode)
	os.Exit(res.ExitCode)
}
