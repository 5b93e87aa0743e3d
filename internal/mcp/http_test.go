package mcp

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8080", "[::1]:0", "localhost:9"} {
		if err := CheckAddr(ok, false); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:8080", "192.168.1.2:80", ":8080", "nonsense"} {
		if err := CheckAddr(bad, false); err == nil {
			t.Errorf("%s accepted without --allow-remote", bad)
		}
	}
	if err := CheckAddr("0.0.0.0:8080", true); err != nil {
		t.Errorf("--allow-remote refused: %v", err)
	}
}

// The token is made once and kept: a restart reuses it.
func TestTokenIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "mcp-token")
	tok, made, err := loadOrMakeToken(path)
	if err != nil || !made || len(tok) != 64 {
		t.Fatalf("token %q made %v: %v", tok, made, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v: %v", st.Mode(), err)
	}
	again, made, err := loadOrMakeToken(path)
	if err != nil || made || again != tok {
		t.Fatalf("second start: %q made %v %v", again, made, err)
	}
}

// Requests need the bearer token (401 otherwise, pointing at the resource
// metadata) and may not come from a browser page on another origin.
func TestProtect(t *testing.T) {
	tok := strings.Repeat("ab", 32)
	h := protect(tok, "http://127.0.0.1:9", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	for _, c := range []struct {
		auth, origin string
		want         int
	}{
		{"", "", 401}, {"Bearer nope", "", 401}, {tok, "", 401}, {"Bearer " + tok, "", 204},
		{"Bearer " + tok, "https://evil.example", 403},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "http://127.0.0.1:9/mcp", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%+v: %d, want %d", c, rec.Code, c.want)
		}
		if rec.Code == 401 && !strings.Contains(rec.Header().Get("WWW-Authenticate"), "resource_metadata=") {
			t.Errorf("%+v: WWW-Authenticate %q", c, rec.Header().Get("WWW-Authenticate"))
		}
	}
}
