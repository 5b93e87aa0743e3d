package supervisor

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
	"github.com/pyrovm/pyro/internal/network"
)

// networkRoutes serve the VM's egress rules and its log of refusals. The
// rules live in the network stack: a change applies to the next DNS answer
// and connection, with no restart.
func (s *server) networkRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /v1/network/rules", func(w http.ResponseWriter, r *http.Request) {
		st := s.vm.Network()
		if st == nil {
			s.writeErr(w, errdefs.New(errdefs.ErrFailedPrecondition, network.CodeRulesNeedNetwork, "this VM has no network: allow rules need network_policy egress"))
			return
		}
		var req NetworkRules
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			s.writeErr(w, errdefs.InvalidArgument("request", "bad rules: %v", err))
			return
		}
		if err := st.SetRules(req.Rules); err != nil {
			s.writeErr(w, err)
			return
		}
		writeJSON(w, NetworkRules{Rules: st.Rules()})
	})
	mux.HandleFunc("GET /v1/network/log", func(w http.ResponseWriter, r *http.Request) {
		out := network.BlockedLog{Entries: []network.Blocked{}}
		if st := s.vm.Network(); st != nil {
			out = st.BlockedLog()
		}
		writeJSON(w, out)
	})
}

// SetNetworkRules replaces the running VM's egress rules (nil lifts them)
// and returns what it now enforces.
func (c *Client) SetNetworkRules(ctx context.Context, rules *network.Rules) (*network.Rules, error) {
	b, _ := json.Marshal(NetworkRules{Rules: rules})
	var out NetworkRules
	err := c.do(ctx, http.MethodPut, "/v1/network/rules", strings.NewReader(string(b)), "application/json", &out)
	return out.Rules, err
}

// NetworkLog returns the VM's newest refused names and connections.
func (c *Client) NetworkLog(ctx context.Context) (*network.BlockedLog, error) {
	var out network.BlockedLog
	return &out, c.do(ctx, http.MethodGet, "/v1/network/log", nil, "", &out)
}
