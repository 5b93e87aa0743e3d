// Package egress is the egress allow list as users write it and as the
// workspace record keeps it: validation and canonical form. The network
// stack compiles and matches it (package network); this package stays free
// of the stack so that light binaries can read workspace records.
package egress

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Rules is an egress allow list as users write it. A VM with a network and
// no Rules (nil) reaches anything the fixed filter lets through; with Rules,
// even empty ones, only what they name.
type Rules struct {
	// AllowHosts are DNS names: "pypi.org", or "*.githubusercontent.com"
	// for every name under it (not the name itself). Any port.
	AllowHosts []string `json:"allow_hosts,omitempty"`
	// AllowCIDRs are address ranges with optional ports: "10.1.0.0/16",
	// "192.0.2.7:443", "198.51.100.0/24:80,443", "[2001:db8::/32]:8000-8100".
	AllowCIDRs []string `json:"allow_cidrs,omitempty"`
	// AllowPresets name host lists pyro keeps: see Presets.
	AllowPresets []string `json:"allow_presets,omitempty"`
}

// Limits on what a rule set may hold (it is stored per workspace and
// matched on every connection).
const (
	maxRulesPerKind = 256
	MaxNameLength   = 253
)

// Presets are the host lists --allow-preset names: package registries and
// code hosts. Kept tight on purpose: each one is what its client needs for
// the usual install or clone, nothing broader (no whole cloud buckets).
var Presets = map[string][]string{
	"debian":  {"deb.debian.org", "security.debian.org", "ftp.debian.org"},
	"pypi":    {"pypi.org", "files.pythonhosted.org"},
	"npm":     {"registry.npmjs.org"},
	"goproxy": {"proxy.golang.org", "sum.golang.org"},
	"github":  {"github.com", "*.github.com", "*.githubusercontent.com"},
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// IsEmpty reports whether r names nothing.
func (r Rules) IsEmpty() bool {
	return len(r.AllowHosts) == 0 && len(r.AllowCIDRs) == 0 && len(r.AllowPresets) == 0
}

// Normalize validates every rule and returns the set in canonical form
// (lower case, CIDRs masked, sorted, no duplicates). The first bad rule is
// an invalid_argument naming its field; nothing is half taken.
func (r Rules) Normalize() (Rules, error) {
	var out Rules
	var err error
	if out.AllowHosts, err = NormalizeList("allow_hosts", r.AllowHosts, NormalizeHost); err != nil {
		return Rules{}, err
	}
	if out.AllowCIDRs, err = NormalizeList("allow_cidrs", r.AllowCIDRs, normalizeCIDRRule); err != nil {
		return Rules{}, err
	}
	if out.AllowPresets, err = NormalizeList("allow_presets", r.AllowPresets, normalizePreset); err != nil {
		return Rules{}, err
	}
	return out, nil
}

// NormalizeList normalizes every entry of a rule list with one, sorted
// and without duplicates; the first bad entry is an invalid_argument
// naming field.
func NormalizeList(field string, in []string, one func(string) (string, error)) ([]string, error) {
	if len(in) > maxRulesPerKind {
		return nil, errdefs.InvalidArgument(field, "%d rules; at most %d", len(in), maxRulesPerKind)
	}
	var out []string
	for _, s := range in {
		n, err := one(s)
		if err != nil {
			return nil, errdefs.InvalidArgument(field, "%v", err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Add returns r plus more (both normalized).
func (r Rules) Add(more Rules) (Rules, error) {
	return Rules{
		AllowHosts:   append(slices.Clone(r.AllowHosts), more.AllowHosts...),
		AllowCIDRs:   append(slices.Clone(r.AllowCIDRs), more.AllowCIDRs...),
		AllowPresets: append(slices.Clone(r.AllowPresets), more.AllowPresets...),
	}.Normalize()
}

// Remove returns r without the rules of less (both normalized). A rule r
// does not have is an error: a typo must not pass for a removal.
func (r Rules) Remove(less Rules) (Rules, error) {
	out := Rules{}
	var err error
	if out.AllowHosts, err = without("allow_hosts", r.AllowHosts, less.AllowHosts); err != nil {
		return Rules{}, err
	}
	if out.AllowCIDRs, err = without("allow_cidrs", r.AllowCIDRs, less.AllowCIDRs); err != nil {
		return Rules{}, err
	}
	if out.AllowPresets, err = without("allow_presets", r.AllowPresets, less.AllowPresets); err != nil {
		return Rules{}, err
	}
	return out, nil
}

func without(field string, have, drop []string) ([]string, error) {
	for _, d := range drop {
		if !slices.Contains(have, d) {
			return nil, errdefs.InvalidArgument(field, "%q is not a rule of this workspace", d).
				WithNext("; %s to list them", "pyro workspace network show ID", "workspace_network_show")
		}
	}
	var out []string
	for _, h := range have {
		if !slices.Contains(drop, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// NormalizeHost checks a host rule: a DNS name, or "*." and a name of at
// least two labels. Trailing dot and case do not matter.
func NormalizeHost(s string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	wild := strings.HasPrefix(name, "*.")
	base := strings.TrimPrefix(name, "*.")
	if _, err := netip.ParseAddr(strings.Trim(base, "[]")); err == nil {
		return "", fmt.Errorf("%q is an address, not a name: use allow_cidrs (--allow-cidr) for addresses", s)
	}
	if !ValidName(base) {
		return "", fmt.Errorf("%q is not a DNS name (letters, digits, '-' and '_' in dot-separated labels of 1-63, at most 253 in all; "+
			"a wildcard is a leading \"*.\" only, e.g. *.example.org)", s)
	}
	if wild && !strings.Contains(base, ".") {
		return "", fmt.Errorf("%q would allow a whole top-level domain: name at least two labels after \"*.\"", s)
	}
	return name, nil
}

// ValidName reports whether s is a lower-case DNS name (no wildcard).
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLength {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func normalizePreset(s string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	if _, ok := Presets[n]; !ok {
		return "", fmt.Errorf("%q is not a preset; use one of %s", s, strings.Join(PresetNames(), ", "))
	}
	return n, nil
}

// CIDRRule is one parsed allow_cidrs rule.
type CIDRRule struct {
	prefix netip.Prefix
	ports  []portRange // empty: every port
}

type portRange struct{ lo, hi uint16 }

// Matches reports whether dst is in the range (and its ports).
func (c CIDRRule) Matches(dst netip.AddrPort) bool {
	if !c.prefix.Contains(dst.Addr()) {
		return false
	}
	if len(c.ports) == 0 {
		return true
	}
	for _, p := range c.ports {
		if dst.Port() >= p.lo && dst.Port() <= p.hi {
			return true
		}
	}
	return false
}

func (c CIDRRule) String() string {
	s := c.prefix.String()
	if len(c.ports) == 0 {
		return s
	}
	if c.prefix.Addr().Is6() {
		s = "[" + s + "]"
	}
	parts := make([]string, len(c.ports))
	for i, p := range c.ports {
		parts[i] = strconv.Itoa(int(p.lo))
		if p.hi != p.lo {
			parts[i] += "-" + strconv.Itoa(int(p.hi))
		}
	}
	return s + ":" + strings.Join(parts, ",")
}

func normalizeCIDRRule(s string) (string, error) {
	c, err := ParseCIDR(s)
	if err != nil {
		return "", err
	}
	return c.String(), nil
}

// ParseCIDR parses CIDR[:PORTS]: an address alone is a /32 (/128);
// IPv6 with ports is bracketed. Host bits must be zero, so that a typo
// (10.0.0.1/8) is not silently widened.
func ParseCIDR(s string) (CIDRRule, error) {
	in := strings.TrimSpace(s)
	addrPart, portPart := in, ""
	if strings.HasPrefix(in, "[") {
		end := strings.Index(in, "]")
		if end < 0 {
			return CIDRRule{}, fmt.Errorf("%q: missing ']'", s)
		}
		addrPart, portPart = in[1:end], strings.TrimPrefix(in[end+1:], ":")
		if in[end+1:] != "" && !strings.HasPrefix(in[end+1:], ":") {
			return CIDRRule{}, fmt.Errorf("%q: expected ':PORTS' after ']'", s)
		}
	} else if strings.Count(in, ":") == 1 {
		addrPart, portPart, _ = strings.Cut(in, ":")
	}
	var prefix netip.Prefix
	var err error
	if strings.Contains(addrPart, "/") {
		prefix, err = netip.ParsePrefix(addrPart)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(addrPart); err == nil {
			prefix = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return CIDRRule{}, fmt.Errorf("%q is not CIDR[:PORTS] (e.g. 10.1.0.0/16, 192.0.2.7:443, 198.51.100.0/24:80,443, [2001:db8::/32]:443)", s)
	}
	if prefix.Addr().Zone() != "" {
		return CIDRRule{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	if prefix.Addr().Is4In6() {
		return CIDRRule{}, fmt.Errorf("%q: write IPv4 ranges as a.b.c.d/N", s)
	}
	if prefix.Masked() != prefix {
		return CIDRRule{}, fmt.Errorf("%q has host bits set: did you mean %s?", s, prefix.Masked())
	}
	c := CIDRRule{prefix: prefix}
	if portPart != "" || strings.HasSuffix(in, ":") {
		if c.ports, err = parsePorts(portPart); err != nil {
			return CIDRRule{}, fmt.Errorf("%q: %v", s, err)
		}
	}
	return c, nil
}

// parsePorts parses "443", "80,443" or "8000-8100" (combined by commas).
func parsePorts(s string) ([]portRange, error) {
	var out []portRange
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		l, err1 := strconv.ParseUint(lo, 10, 16)
		h, err2 := l, error(nil)
		if isRange {
			h, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || l == 0 || h < l {
			return nil, fmt.Errorf("ports %q: give 1-65535, a list (80,443) or a range (8000-8100)", s)
		}
		out = append(out, portRange{uint16(l), uint16(h)})
	}
	slices.SortFunc(out, func(a, b portRange) int { return int(a.lo) - int(b.lo) })
	return out, nil
}
