// Command openai-responses is a tool loop on the OpenAI Responses API whose
// tools are pyro's (same names and schemas as the MCP server). It runs when
// OPENAI_API_KEY is set.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/tools"
)

func main() {
	if os.Getenv("OPENAI_API_KEY") == "" {
		log.Fatal("set OPENAI_API_KEY to run this example")
	}
	ctx := context.Background()
	c, err := pyro.New()
	if err != nil {
		log.Fatal(err)
	}
	ts, err := tools.New(ctx, c, "vm-run")
	if err != nil {
		log.Fatal(err)
	}
	defer ts.Close()
	client := openai.NewClient()
	params := responses.ResponseNewParams{
		Model: openai.ChatModelGPT4_1Mini,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Which Linux kernel does the sandbox run? Use vm_run.")},
		Tools: toolParams(ts),
	}
	for turn := 0; turn < 8; turn++ {
		resp, err := client.Responses.New(ctx, params)
		if err != nil {
			log.Fatal(err)
		}
		next := dispatch(ctx, ts, resp.Output)
		if len(next) == 0 {
			fmt.Println(resp.OutputText())
			return
		}
		params.PreviousResponseID = openai.String(resp.ID)
		params.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: next}
	}
	log.Fatal("no answer after 8 turns")
}
