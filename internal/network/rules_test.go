package network

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestRulesNeedNetwork(t *testing.T) {
	if _, err := ValidateRules(PolicyOff, &Rules{AllowHosts: []string{"pypi.org"}}); errdefs.CodeOf(err) != CodeRulesNeedNetwork {
		t.Errorf("rules on policy off: %v", err)
	}
}

func TestAllowlistMatch(t *testing.T) {
	al, err := compile(Rules{
		AllowHosts:   []string{"pypi.org", "*.x.org"},
		AllowCIDRs:   []string{"192.0.2.0/24:80,8000-8100", "198.51.100.7"},
		AllowPresets: []string{"npm"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"pypi.org": true, "PYPI.ORG.": true, "files.pypi.org": false, "a.x.org": true, "a.b.x.org": true,
		"x.org": false, "ax.org": false, "registry.npmjs.org": true, "npmjs.org": false, "": false, "a b.x.org": false,
	} {
		if got := al.allowsName(name); got != want {
			t.Errorf("name %q: %v, want %v", name, got, want)
		}
	}
	for dst, want := range map[string]bool{
		"192.0.2.9:80": true, "192.0.2.9:8050": true, "192.0.2.9:443": false, "192.0.3.1:80": false,
		"198.51.100.7:22": true, "198.51.100.8:22": false, "[::ffff:192.0.2.9]:80": true,
	} {
		if got := al.allowsCIDR(netip.MustParseAddrPort(dst)); got != want {
			t.Errorf("dst %s: %v, want %v", dst, got, want)
		}
	}
}

func TestDNSCacheBounded(t *testing.T) {
	c := newDNSCache()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	a := netip.MustParseAddr("192.0.2.1")
	c.learn("short.org", a, time.Second) // clamped up to minAnswerTTL
	now = now.Add(minAnswerTTL - time.Second)
	if got := c.names(a); !slices.Equal(got, []string{"short.org"}) {
		t.Fatalf("names %v", got)
	}
	now = now.Add(2 * time.Second)
	if got := c.names(a); got != nil {
		t.Fatalf("expired entry still answers: %v", got)
	}
	c.learn("long.org", a, 30*24*time.Hour) // clamped down to maxAnswerTTL
	now = now.Add(maxAnswerTTL + time.Second)
	if got := c.names(a); got != nil {
		t.Fatalf("TTL not capped: %v", got)
	}
	for i := range maxNamesPerAddr + 3 {
		c.learn(string(rune('a'+i))+".org", a, time.Minute)
	}
	if got := c.names(a); len(got) != maxNamesPerAddr || got[len(got)-1] != string(rune('a'+maxNamesPerAddr+2))+".org" {
		t.Fatalf("names per address not bounded to the newest: %v", got)
	}
	for i := range maxDNSCacheEntries + 100 {
		c.learn("n.org", netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), time.Minute)
	}
	if n := c.len(); n > maxDNSCacheEntries {
		t.Fatalf("cache holds %d entries, bound %d", n, maxDNSCacheEntries)
	}
}

func TestBlockLogRing(t *testing.T) {
	var l blockLog
	for i := range maxBlocked + 5 {
		l.add(Blocked{Port: i, Reason: "r", Name: "bad\nname\x00"})
	}
	s := l.snapshot()
	if s.Total != maxBlocked+5 || len(s.Entries) != maxBlocked || s.Entries[0].Port != 5 || s.Entries[maxBlocked-1].Port != maxBlocked+4 {
		t.Fatalf("total %d, %d entries, first %d, last %d", s.Total, len(s.Entries), s.Entries[0].Port, s.Entries[len(s.Entries)-1].Port)
	}
	if s.Entries[0].Name != "bad?name?" {
		t.Fatalf("name not cleaned: %q", s.Entries[0].Name)
	}
}
