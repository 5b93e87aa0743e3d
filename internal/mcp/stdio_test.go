package mcp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

func TestIDScanner(t *testing.T) {
	for msg, want := range map[string]string{
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"x":"y"}}`:                      `7`,
		`{"method":"tools/call","params":{"id":99,"s":"a\"id\":5,"},"jsonrpc":"2.0","id":"r-1"}`: `"r-1"`,
		`{"method":"m","params":{"arguments":{"id":1}},"id" : 12 }`:                              `12`,
		`{"method":"notifications/x","params":{"id":3}}`:                                         ``,
		`{"method":"id","params":["id",{"id":4}],"id":5}`:                                        `5`,
	} {
		for split := 0; split <= len(msg); split++ {
			var s idScanner
			s.feed([]byte(msg[:split]))
			s.feed([]byte(msg[split:]))
			if got := string(s.id()); got != want {
				t.Fatalf("%s split at %d: id %q, want %q", msg, split, got, want)
			}
		}
	}
}

// A message over the line limit is answered with an error for its own
// request id (the client's call fails at once instead of hanging), and the
// session goes on.
func TestOversizedMessageAnsweredForItsID(t *testing.T) {
	big := `{"method":"tools/call","params":{"name":"workspace_file_write","arguments":{"text":"` +
		strings.Repeat("x", maxLine+1<<20) + `"}},"jsonrpc":"2.0","id":41}` + "\n" +
		`{"jsonrpc":"2.0","id":42,"method":"ping"}` + "\n"
	var out bytes.Buffer
	r := filterMalformed(strings.NewReader(big), &out)
	rest, _ := io.ReadAll(r)
	if string(rest) != `{"jsonrpc":"2.0","id":42,"method":"ping"}`+"\n" {
		t.Fatalf("passed on: %.200q", rest)
	}
	var resp struct {
		ID    int `json:"id"`
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	line, _ := bufio.NewReader(&out).ReadBytes('\n')
	if err := json.Unmarshal(line, &resp); err != nil || resp.ID != 41 || resp.Error.Code != -32600 ||
		!strings.Contains(resp.Error.Message, "16 MiB") || !strings.Contains(resp.Error.Message, "workspace_sync_push") {
		t.Fatalf("response %s (%v)", line, err)
	}
}
