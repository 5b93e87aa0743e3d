package e2e_test

import (
	"bufio"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// startHTTPServer runs `pyro mcp serve --http` on a free loopback port and
// returns its endpoint.
func startHTTPServer(t *testing.T, state, token string, extra ...string) string {
	t.Helper()
	cmd := pyroCmd(t, state, append([]string{"mcp", "serve", "--http", "127.0.0.1:0"}, extra...)...)
	cmd.Env = append(cmd.Env, "PYRO_MCP_TOKEN="+token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscallTERM); cmd.Wait() })
	re := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/mcp`)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("server exited before listening")
			}
			if m := re.FindStringSubmatch(l); m != nil {
				go func() {
					for range lines {
					}
				}()
				return "http://" + m[1] + "/mcp"
			}
		case <-timeout:
			t.Fatal("server did not print its address")
		}
	}
}

func TestMCPHTTPWithToken(t *testing.T) {
	s := stateDir(t)
	endpoint := startHTTPServer(t, s, "s3cret", "--profile", "vm-run")

	for _, auth := range []string{"", "Bearer wrong"} {
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("auth %q: status %d, want 401", auth, resp.StatusCode)
		}
	}

	client := mcp.NewClient(&mcp.Implementation{Name: "pyro-e2e-http", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearer{"s3cret", http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "vm_run", Arguments: map[string]any{"command": "echo over-http"}})
	if err != nil || res.IsError || !strings.Contains(toolText(res), "over-http") {
		t.Fatalf("vm_run over HTTP: %v %s", err, toolText(res))
	}
}

func TestMCPHTTPRefusesRemoteAddress(t *testing.T) {
	s := stateDir(t)
	r := runPyro(t, s, "mcp", "serve", "--http", "0.0.0.0:0")
	if r.code != 125 || !strings.Contains(r.stderr, "--allow-remote") {
		t.Fatalf("non-loopback without --allow-remote: %+v", r)
	}
}
