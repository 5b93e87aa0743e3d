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

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"github.com/pyrovm/pyro"
	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/fsutil"
)

// HTTPOptions configures the Streamable HTTP transport.
type HTTPOptions struct {
	Addr        string    // host:port; loopback unless AllowRemote
	AllowRemote bool      // permit a non-loopback address (with a warning)
	Token       string    // bearer token; "" = the one in TokenFile, made there once if missing
	TokenFile   string    // where the token is kept (0600), so it survives restarts
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
		var made bool
		var err error
		if token, made, err = loadOrMakeToken(o.TokenFile); err != nil {
			return err
		}
		verb := "kept in"
		if made {
			verb = "written to"
		}
		fmt.Fprintf(o.Log, "pyro: bearer token %s %s\n", verb, o.TokenFile)
	}
	server, err := NewServer(c, cfg)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go reapLoop(ctx, c, cfg.WorkspaceTTLSeconds)
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{MaxRequestBodyBytes: maxLine})
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return errdefs.Wrap(err, errdefs.ErrUnavailable, errdefs.CodeListenFailed, "listen on %s", o.Addr)
	}
	fmt.Fprintf(o.Log, "pyro: MCP (Streamable HTTP) on http://%s/mcp (profile %s)\n", ln.Addr(), cfg.Profile)
	mux := http.NewServeMux()
	base := "http://" + ln.Addr().String()
	mux.Handle("/mcp", protect(token, base, handler))
	// Clients that meet a 401 look here; no authorization server is named,
	// so they ask for the token rather than start an OAuth flow.
	mux.Handle("/.well-known/oauth-protected-resource", auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: base + "/mcp", BearerMethodsSupported: []string{"header"}, ResourceName: "pyro"}))
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

// protect puts the bearer check (go-sdk's middleware, pointing clients at
// the resource metadata) and the standard library's cross-origin protection
// (no browser page on another origin may call the server) in front of next.
func protect(token, base string, next http.Handler) http.Handler {
	want := []byte(token)
	verify := func(_ context.Context, got string, _ *http.Request) (*auth.TokenInfo, error) {
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			return nil, fmt.Errorf("%w: wrong bearer token; use the one in the token file pyro mcp serve printed", auth.ErrInvalidToken)
		}
		return &auth.TokenInfo{}, nil
	}
	bearer := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: base + "/.well-known/oauth-protected-resource", AllowMissingExpiration: true})
	return http.NewCrossOriginProtection().Handler(bearer(next))
}

// loadOrMakeToken returns the token kept in path, or generates one and
// writes it there (0600) when the file is missing or empty.
func loadOrMakeToken(path string) (token string, made bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return t, false, nil
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, err
	}
	token = hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	if err := fsutil.WriteFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return token, true, nil
}
