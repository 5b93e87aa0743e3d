package network

import (
	"github.com/pyrovm/pyro/internal/network/egress"

	"net/netip"
	"strings"
)

// allowlist is a compiled Rules: what the stack matches names and
// destinations against. It is immutable; a change swaps in a new one.
type allowlist struct {
	rules    Rules               // normalized, as given (presets unexpanded)
	exact    map[string]struct{} // "pypi.org"
	suffixes []string            // ".githubusercontent.com" for "*.githubusercontent.com"
	cidrs    []egress.CIDRRule
}

// compile validates r and builds its allowlist.
func compile(r Rules) (*allowlist, error) {
	r, err := r.Normalize()
	if err != nil {
		return nil, err
	}
	a := &allowlist{rules: r, exact: map[string]struct{}{}}
	hosts := append([]string(nil), r.AllowHosts...)
	for _, p := range r.AllowPresets {
		hosts = append(hosts, egress.Presets[p]...)
	}
	for _, h := range hosts {
		if base, ok := strings.CutPrefix(h, "*."); ok {
			a.suffixes = append(a.suffixes, "."+base)
		} else {
			a.exact[h] = struct{}{}
		}
	}
	for _, c := range r.AllowCIDRs {
		cr, err := egress.ParseCIDR(c)
		if err != nil {
			return nil, err // normalized above: cannot happen
		}
		a.cidrs = append(a.cidrs, cr)
	}
	return a, nil
}

// allowsName reports whether a DNS name (any case, trailing dot or not)
// matches a host rule. A wildcard matches names under it, not itself.
func (a *allowlist) allowsName(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if !egress.ValidName(name) {
		return false
	}
	if _, ok := a.exact[name]; ok {
		return true
	}
	for _, s := range a.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// allowsCIDR reports whether dst is in an allowed range (and port).
func (a *allowlist) allowsCIDR(dst netip.AddrPort) bool {
	dst = netip.AddrPortFrom(dst.Addr().Unmap().WithZone(""), dst.Port())
	for _, c := range a.cidrs {
		if c.Matches(dst) {
			return true
		}
	}
	return false
}
