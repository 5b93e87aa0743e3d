package network

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pyrovm/pyro/internal/errdefs"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{
		"":                       PolicyOff,
		"off":                    PolicyOff,
		"egress":                 PolicyEgress,
		"egress+published-ports": PolicyEgressPublish,
	} {
		got, err := ParsePolicy(in)
		if err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ParsePolicy("open")
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("ParsePolicy(open) = %v, want invalid argument", err)
	}
	for _, p := range []Policy{PolicyOff, PolicyEgress, PolicyEgressPublish} {
		if !strings.Contains(err.Error(), string(p)) {
			t.Errorf("error %q does not list %q", err, p)
		}
	}
	if PolicyOff.Enabled() || !PolicyEgress.Enabled() || !PolicyEgressPublish.Enabled() {
		t.Error("Enabled")
	}
	if PolicyOff.AllowsPublish() || PolicyEgress.AllowsPublish() || !PolicyEgressPublish.AllowsPublish() {
		t.Error("AllowsPublish")
	}
}

func TestGuestConfig(t *testing.T) {
	addr, gw, dns, mac, mtu := GuestConfig()
	if addr != "10.0.2.15/24" || gw != "10.0.2.2" || !slices.Equal(dns, []string{"10.0.2.2"}) ||
		mac != "52:54:00:12:34:56" || mtu != 1500 {
		t.Fatalf("GuestConfig() = %s %s %v %s %d", addr, gw, dns, mac, mtu)
	}
}

func TestParseResolvConf(t *testing.T) {
	conf := `# generated
nameserver 127.0.0.53
options edns0 trust-ad
search example.com
nameserver ::1 # comment
nameserver fe80::1%eth0
nameserver bogus
nameserver
;nameserver 9.9.9.9
  nameserver	1.1.1.1
`
	var got []string
	for _, ap := range parseResolvConf([]byte(conf), 53) {
		got = append(got, ap.String())
	}
	want := []string{"127.0.0.53:53", "[::1]:53", "[fe80::1%eth0]:53", "1.1.1.1:53"}
	if !slices.Equal(got, want) {
		t.Fatalf("parseResolvConf = %v, want %v", got, want)
	}
	if ups := parseResolvConf([]byte("nameserver ::ffff:8.8.8.8\n"), 5353); len(ups) != 1 ||
		ups[0] != netip.MustParseAddrPort("8.8.8.8:5353") {
		t.Fatalf("mapped address: %v", ups)
	}
}
