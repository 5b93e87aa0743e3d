package egress

import (
	"slices"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestRulesNormalize(t *testing.T) {
	got, err := Rules{
		AllowHosts:   []string{"PyPI.org.", "*.GitHubUserContent.com", "pypi.org", "under_score.example.net"},
		AllowCIDRs:   []string{"10.1.0.0/16", "192.0.2.7:443", "198.51.100.0/24:443,80", "[2001:db8::/32]:8000-8100", "2001:db8::1"},
		AllowPresets: []string{"PyPI", "github"},
	}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Rules{
		AllowHosts:   []string{"*.githubusercontent.com", "pypi.org", "under_score.example.net"},
		AllowCIDRs:   []string{"10.1.0.0/16", "192.0.2.7/32:443", "198.51.100.0/24:80,443", "2001:db8::1/128", "[2001:db8::/32]:8000-8100"},
		AllowPresets: []string{"github", "pypi"},
	}
	if !slices.Equal(got.AllowHosts, want.AllowHosts) || !slices.Equal(got.AllowCIDRs, want.AllowCIDRs) || !slices.Equal(got.AllowPresets, want.AllowPresets) {
		t.Fatalf("normalized\n%+v\nwant\n%+v", got, want)
	}
	again, err := got.Normalize()
	if err != nil || !slices.Equal(again.AllowCIDRs, got.AllowCIDRs) {
		t.Fatalf("not idempotent: %v %+v", err, again)
	}
}

func TestRulesRejected(t *testing.T) {
	for _, r := range []Rules{
		{AllowHosts: []string{""}},
		{AllowHosts: []string{"*"}},
		{AllowHosts: []string{"*.org"}},
		{AllowHosts: []string{"a.*.org"}},
		{AllowHosts: []string{"exa mple.org"}},
		{AllowHosts: []string{"-bad.org"}},
		{AllowHosts: []string{"bad-.org"}},
		{AllowHosts: []string{"a..org"}},
		{AllowHosts: []string{"192.0.2.1"}},
		{AllowHosts: []string{"[2001:db8::1]"}},
		{AllowHosts: []string{"x.org/path"}},
		{AllowHosts: []string{string(make([]byte, 300))}},
		{AllowCIDRs: []string{"10.0.0.1/8"}},
		{AllowCIDRs: []string{"10.0.0.0/33"}},
		{AllowCIDRs: []string{"example.org"}},
		{AllowCIDRs: []string{"10.0.0.0/8:0"}},
		{AllowCIDRs: []string{"10.0.0.0/8:70000"}},
		{AllowCIDRs: []string{"10.0.0.0/8:90-80"}},
		{AllowCIDRs: []string{"10.0.0.0/8:"}},
		{AllowCIDRs: []string{"10.0.0.0/8:http"}},
		{AllowCIDRs: []string{"[2001:db8::/32"}},
		{AllowCIDRs: []string{"::ffff:10.0.0.0/104"}},
		{AllowPresets: []string{"everything"}},
	} {
		_, err := r.Normalize()
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%+v: %v, want invalid_argument", r, err)
		}
	}
}

func TestRulesAddRemove(t *testing.T) {
	r, err := Rules{AllowHosts: []string{"a.org"}}.Add(Rules{AllowHosts: []string{"B.org", "a.org"}, AllowPresets: []string{"npm"}})
	if err != nil || !slices.Equal(r.AllowHosts, []string{"a.org", "b.org"}) || !slices.Equal(r.AllowPresets, []string{"npm"}) {
		t.Fatalf("add: %v %+v", err, r)
	}
	r, err = r.Remove(Rules{AllowHosts: []string{"a.org"}, AllowPresets: []string{"npm"}})
	if err != nil || !slices.Equal(r.AllowHosts, []string{"b.org"}) || len(r.AllowPresets) != 0 {
		t.Fatalf("remove: %v %+v", err, r)
	}
	if _, err := r.Remove(Rules{AllowHosts: []string{"c.org"}}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("removing a rule that is not there: %v", err)
	}
}
