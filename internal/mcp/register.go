package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// addTool registers a tool. pyro owns the tool's border rather than the
// go-sdk's typed wrapper: it validates the arguments itself, so a bad
// argument is an invalid_argument result like every other error; the title
// and the annotations come from the tool table; input and output schemas are
// made portable (see portable).
func addTool[In, Out any](s *mcp.Server, d deps, t *mcp.Tool, call func(context.Context, *mcp.CallToolRequest, In) (Out, error)) {
	row := d.rows[t.Name]
	t.Title = row.title
	t.Annotations = row.hints.annotations(row.title)
	if note := d.notes[t.Name]; note != "" {
		t.Description += " " + note
	}
	in := t.InputSchema.(*jsonschema.Schema)
	portable(in, false)
	resolved, err := in.Resolve(&jsonschema.ResolveOptions{ValidateDefaults: true})
	if err != nil {
		panic(fmt.Sprintf("tool %s: input schema: %v", t.Name, err))
	}
	t.OutputSchema = outputSchema[Out](t.Name)
	s.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		args, err := decodeArgs[In](req.Params.Arguments, resolved)
		if err != nil {
			return errorResult(err), nil
		}
		out, err := call(ctx, req, args)
		if err != nil {
			return errorResult(toolError(err)), nil
		}
		b, err := json.Marshal(out)
		if err != nil {
			return errorResult(toolError(errdefs.Wrap(err, errdefs.ErrInternal, errdefs.CodeInternal, "cannot encode the result"))), nil
		}
		// Text too, for clients that read only content (see toolText).
		return &mcp.CallToolResult{StructuredContent: json.RawMessage(b), Content: []mcp.Content{&mcp.TextContent{Text: toolText(out, b)}}}, nil
	})
}

// decodeArgs applies the schema's defaults to the arguments, validates them
// and decodes them into In.
func decodeArgs[In any](raw json.RawMessage, schema *jsonschema.Resolved) (In, error) {
	var in In
	m := map[string]any{}
	if len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := json.Unmarshal(raw, &m); err != nil {
			return in, argsError("the arguments are not a JSON object: %v", err)
		}
	}
	if err := schema.ApplyDefaults(&m); err != nil {
		return in, argsError("%v", err)
	}
	if err := schema.Validate(m); err != nil {
		return in, argsError("%v; see the tool's input schema", err)
	}
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, &in); err != nil {
		return in, argsError("%v; see the tool's input schema", err)
	}
	return in, nil
}

func argsError(format string, args ...any) error {
	return fmt.Errorf("%s: arguments: %s", errdefs.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

func errorResult(err error) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: err.Error()}}}
}

// outputSchema infers the schema of a tool's result (a pointer result is
// described by its element type) and makes it portable.
func outputSchema[Out any](tool string) *jsonschema.Schema {
	rt := reflect.TypeFor[Out]()
	if rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	s, err := jsonschema.ForType(rt, nil)
	if err != nil {
		panic(fmt.Sprintf("tool %s: output schema: %v", tool, err))
	}
	// The schema library drops a field that an embedded struct also has;
	// a client that checks results against the schema then refuses them.
	if rt.Kind() == reflect.Struct {
		for _, name := range jsonFields(rt) {
			if _, ok := s.Properties[name]; !ok {
				panic(fmt.Sprintf("tool %s: output schema lacks %q, which the result has (an embedded struct with a field of the same name?)", tool, name))
			}
		}
	}
	portable(s, true)
	return s
}

// jsonFields names the top-level keys encoding/json gives a struct: its
// fields, and those of embedded untagged structs that no shallower field
// of the same name hides.
func jsonFields(rt reflect.Type) []string {
	seen := map[string]bool{}
	var names []string
	var walk func(t reflect.Type, depth int)
	level := map[string]int{}
	walk = func(t reflect.Type, depth int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
				walk(ft, depth+1)
				continue
			}
			if name == "" {
				name = f.Name
			}
			if d, ok := level[name]; ok && d <= depth {
				continue
			}
			level[name] = depth
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	walk(rt, 0)
	return names
}

// portable gives every schema a single type, the form that clients mapping
// schemas onto OpenAPI-like dialects (Gemini function declarations, for one)
// accept. Go's nil slices, maps and pointers infer as `type: ["null", X]`:
// in results (nullable) that becomes `anyOf: [{type: null}, {type: X}]`,
// the same values; in arguments plain `type: X`, since a model leaves out
// what it does not set.
func portable(s *jsonschema.Schema, nullable bool) {
	if s == nil {
		return
	}
	for _, p := range s.Properties {
		portable(p, nullable)
	}
	portable(s.Items, nullable)
	portable(s.AdditionalProperties, nullable)
	if len(s.Types) != 2 || s.Types[0] != "null" {
		return
	}
	if !nullable {
		s.Type, s.Types = s.Types[1], nil
		return
	}
	inner := *s
	inner.Types, inner.Type = nil, s.Types[1]
	inner.Description, inner.Default = "", nil
	*s = jsonschema.Schema{Description: s.Description, Default: s.Default,
		AnyOf: []*jsonschema.Schema{{Type: "null"}, &inner}}
}
