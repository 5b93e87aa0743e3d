// Command langchaingo-vmrun wraps pyro's vm_run as a langchaingo tool and
// calls it once; plug VMRun into any langchaingo agent's tool list.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/pyrovm/pyro"
	pyrotools "github.com/pyrovm/pyro/tools"
)

func main() {
	ctx := context.Background()
	c, err := pyro.New()
	if err != nil {
		log.Fatal(err)
	}
	ts, err := pyrotools.New(ctx, c, "vm-run")
	if err != nil {
		log.Fatal(err)
	}
	defer ts.Close()
	cmd := "uname -a"
	if len(os.Args) > 1 {
		cmd = strings.Join(os.Args[1:], " ")
	}
	out, err := VMRun{Toolset: ts, Environment: "debian:12"}.Call(ctx, cmd)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out)
}
