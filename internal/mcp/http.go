package mcp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
)

// HTTPOptions configures the Streamable HTTP transport.
type HTTPOptions struct {
	Addr        string    // host:port; loopback unless AllowRemote
	AllowRemote bool      // permit a non-loopback address (with a warning)
	Token       string    // bearer token; "" = generate one and write it to TokenFile
	TokenFile   string    // where a generated token is written (0600)
	Log         io.Writer // where the address, token file and warnings go
}

// CheckAddr refuses a non-loopback listen address unless allowRemote.
func CheckAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return errdefs.InvalidArgument("http", "%q is not HOST:PORT: %v", addr, err)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errdefs.InvalidArgument("http", "%s is not a loopback address: pyro serves MCP on loopback only; pass --allow-remote to serve it elsewhere (anyone who can reach it and has the token can run commands)", addr)
	}
	return nil
}

// ServeHTTP serves MCP over Streamable HTTP until ctx ends. Every request
// must carry "Authorization: Bearer TOKEN"; others get 401.
func ServeHTTP(ctx context.Context, c *pyro.Client, cfg Config, o HTTPOptions) error {
	if err := CheckAddr(o.Addr, o.AllowRemote); err != nil {
		return err
	}
	if o.AllowRemote {
		fmt.Fprintf(o.Log, "pyro: warning: serving MCP on %s, beyond loopback: protect the token\n", o.Addr)
	}
	token := o.Token
	if token == "" {
		var err error
		if token, err = newTokenFile(o.TokenFile); err != nil {
			return err
		}
		fmt.Fprintf(o.Log, "pyro: bearer token written to %s\n", o.TokenFile)
	}
	server, err := NewServer(c, cfg)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go reapLoop(ctx, c, cfg.WorkspaceTTLSeconds)
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return errdefs.Wrap(err, errdefs.ErrUnavailable, "listen_failed", "listen on %s", o.Addr)
	}
	fmt.Fprintf(o.Log, "pyro: MCP (Streamable HTTP) on http://%s/mcp (profile %s)\n", ln.Addr(), cfg.Profile)
	mux := http.NewServeMux()
	mux.Handle("/mcp", requireToken(token, handler))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pyro"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// newTokenFile generates a token and writes it, readable by the owner only.
func newTokenFile(path string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return strings.TrimSpace(token), nil
}
