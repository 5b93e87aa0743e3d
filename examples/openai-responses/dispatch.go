package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/pyrovm/pyro/tools"
)

// toolParams turns pyro's tool table into Responses API function tools.
func toolParams(ts *tools.Toolset) []responses.ToolUnionParam {
	var out []responses.ToolUnionParam
	for _, d := range ts.Definitions() {
		out = append(out, responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{
			Name: d.Name, Description: openai.String(d.Description), Parameters: d.Parameters, Strict: openai.Bool(false),
		}})
	}
	return out
}

// dispatch runs every function call of a model response through pyro and
// returns the outputs to send back. Tool errors go back to the model as text.
func dispatch(ctx context.Context, ts *tools.Toolset, output []responses.ResponseOutputItemUnion) []responses.ResponseInputItemUnionParam {
	var next []responses.ResponseInputItemUnionParam
	for _, item := range output {
		if item.Type != "function_call" {
			continue
		}
		call := item.AsFunctionCall()
		result, err := ts.Call(ctx, call.Name, json.RawMessage(call.Arguments))
		if err != nil {
			if !errors.Is(err, tools.ErrTool) {
				result = "internal: " + err.Error()
			} else {
				result = err.Error()
			}
		}
		out := responses.ResponseInputItemParamOfFunctionCallOutput(result)
		out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
		next = append(next, out)
	}
	return next
}
