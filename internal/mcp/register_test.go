package mcp

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

type embeddedText struct {
	Command string `json:"command"`
}

// shadowed has, like an earlier exec result, a field whose Go name is
// also a field of a struct it embeds: encoding/json keeps both keys, the
// schema library kept one.
type shadowed struct {
	embeddedText
	Command int `json:"command_count"`
}

func TestOutputSchemaKeepsEveryField(t *testing.T) {
	b, _ := json.Marshal(shadowed{embeddedText{"x"}, 1})
	if !strings.Contains(string(b), `"command":"x"`) || !strings.Contains(string(b), `"command_count":1`) {
		t.Fatalf("encoding/json: %s", b)
	}
	if got := jsonFields(reflect.TypeFor[shadowed]()); !slices.Equal(got, []string{"command", "command_count"}) {
		t.Errorf("jsonFields = %v", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `lacks "command"`) {
			t.Errorf("a schema missing a result field was accepted (recover: %v)", r)
		}
	}()
	outputSchema[shadowed]("test")
}
