package mcp

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/google/jsonschema-go/jsonschema"
)

// prop adds to an inferred property what Go types cannot say: description,
// default, range and enum. The tool table is the one place these live.
type prop struct {
	desc     string
	def      any
	min, max *float64
	enum     []any
	required bool
	// items describes the properties of an array's object elements.
	items map[string]prop
}

func rng(lo, hi float64) (*float64, *float64) { return &lo, &hi }

// inputSchema infers the schema of In and decorates it with props; every
// property of In must be described, so no field reaches a model unexplained.
func inputSchema[In any](props map[string]prop) *jsonschema.Schema {
	s, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("schema for %T: %v", *new(In), err))
	}
	describe(s, props, fmt.Sprintf("%T", *new(In)))
	return s
}

// describe decorates the properties of object schema s with props.
func describe(s *jsonschema.Schema, props map[string]prop, what string) {
	s.Required = nil
	for name, ps := range s.Properties {
		p, ok := props[name]
		if !ok {
			panic(fmt.Sprintf("schema for %s: property %q has no description", what, name))
		}
		ps.Description = p.desc
		ps.Minimum, ps.Maximum = p.min, p.max
		ps.Enum = p.enum
		if p.def != nil {
			b, _ := json.Marshal(p.def)
			ps.Default = b
		}
		if p.required {
			s.Required = append(s.Required, name)
		}
		if p.items == nil && slices.Equal(ps.Types, []string{"null", "array"}) {
			ps.Type, ps.Types = "array", nil // a nil slice is the same as leaving it out
		}
		if p.items != nil {
			if ps.Items == nil || ps.Items.Properties == nil {
				panic(fmt.Sprintf("schema for %s: property %q is not an array of objects", what, name))
			}
			describe(ps.Items, p.items, what+"."+name)
		}
	}
	for name := range props {
		if _, ok := s.Properties[name]; !ok {
			panic(fmt.Sprintf("schema for %s: described property %q does not exist", what, name))
		}
	}
	slices.Sort(s.Required)
}
