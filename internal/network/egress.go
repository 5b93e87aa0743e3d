package network

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/pyrovm/pyro/internal/errdefs"
)

// Egress rules on top of the fixed filter. The fixed blocks (host,
// loopback, link-local, metadata, the kernel's route check) always run
// first and no rule can lift them. With rules, a destination must also be
// in an allowed CIDR, or be an address that an allowed name resolved to
// through this VM's DNS relay; for the latter the guest's first bytes must
// name an allowed host too (sniff.go). The egress point here is also where
// the secret broker terminates connections to the hosts a brokered secret
// is bound to (broker.go).

// SetRules replaces the VM's egress rules; nil lifts them (everything the
// fixed filter allows). New DNS answers and connections follow at once;
// open connections stay.
func (s *Stack) SetRules(r *Rules) error {
	if r == nil {
		s.allow.Store(nil)
		return nil
	}
	al, err := compile(*r)
	if err != nil {
		return err
	}
	s.allow.Store(al)
	return nil
}

// Rules returns the VM's egress rules (nil: none).
func (s *Stack) Rules() *Rules {
	al := s.allow.Load()
	if al == nil {
		return nil
	}
	r := al.rules
	return &r
}

// BlockedLog returns the newest refusals.
func (s *Stack) BlockedLog() BlockedLog { return s.blocked.snapshot() }

// refuse records a refusal in the VM's log.
func (s *Stack) refuse(proto string, dst netip.AddrPort, name, reason string) {
	s.log.Debug("refused", "proto", proto, "dst", dst, "name", name, "reason", reason)
	b := Blocked{Time: time.Now().UTC(), Protocol: proto, Name: name, Reason: reason}
	if dst.IsValid() {
		b.Address, b.Port = dst.Addr().String(), int(dst.Port())
	}
	s.blocked.add(b)
}

// fixedReason words a reason of the fixed filter for the log.
func fixedReason(r string) string { return r + " (always blocked; no rule can allow it)" }

// egressCheck applies the rules to a guest destination. It returns why it
// is refused, or "" with checkName set when the guest's first bytes must
// also name an allowed host (the address came from a DNS answer).
func (s *Stack) egressCheck(dst netip.AddrPort) (reason string, checkName bool) {
	al := s.allow.Load()
	if al == nil || al.allowsCIDR(dst) {
		return "", false
	}
	names := s.answers.names(dst.Addr())
	for _, n := range names {
		if al.allowsName(n) {
			return "", true
		}
	}
	if len(names) > 0 {
		return fmt.Sprintf("%s was an answer for %s, which the rules no longer allow", dst.Addr(), strings.Join(names, ", ")), false
	}
	return fmt.Sprintf("%s is in no allowed CIDR and no DNS answer for an allowed name gave it: allow its name (--allow-host) or its range (--allow-cidr)", dst), false
}

// nameReason checks what sniff found on a connection to an address an
// allowed name resolved to. "" allows it.
func nameReason(al *allowlist, port uint16, sn sniffed, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case al == nil: // rules lifted meanwhile
		return ""
	case sn.kind == sniffTLS && sn.name == "":
		return "TLS without a server name (SNI): connect by name"
	case sn.kind == sniffHTTP && sn.name == "":
		return "HTTP request without a Host header"
	case sn.kind == sniffTLS || sn.kind == sniffHTTP:
		if al.allowsName(sn.name) {
			return ""
		}
		return fmt.Sprintf("%s names host %q, which no rule allows (the address is shared with an allowed name)", strings.ToUpper(sn.kind), sn.name)
	case port == 443:
		return "port 443 without a TLS ClientHello: the host name cannot be checked"
	case port == 80:
		return "port 80 without an HTTP request: the host name cannot be checked"
	}
	return ""
}

// sniffWait is how long to wait for the guest's first byte on port.
func sniffWait(port uint16) time.Duration {
	if port == 80 || port == 443 {
		return sniffTimeout
	}
	return serverFirstWait
}

// dnsVerdict checks a guest query (already a valid plain query) against
// the rules: it returns the question's name and whether the query is
// refused; a refused query gets answer instead of being relayed (nil:
// dropped). It fails closed: a query it cannot read is refused.
func (s *Stack) dnsVerdict(query []byte) (name string, refused bool, answer []byte) {
	al := s.allow.Load()
	if al == nil && s.broker == nil {
		return "", false, nil
	}
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return "", al != nil, nil
	}
	q, err := p.Question()
	if err != nil {
		return "", al != nil, nil
	}
	name = strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	if al == nil || al.allowsName(name) { // without rules: learned for the broker
		return name, false, nil
	}
	s.refuse("dns", netip.AddrPort{}, name, "no rule allows this name: answered NXDOMAIN (allow it with --allow-host)")
	return name, true, refusalAnswer(h, q)
}

// refusalAnswer is an NXDOMAIN answer to the query with header h and
// question q.
func refusalAnswer(h dnsmessage.Header, q dnsmessage.Question) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
		RCode: dnsmessage.RCodeNameError,
	})
	if b.StartQuestions() != nil || b.Question(q) != nil {
		return nil
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}

// learnAnswer keeps the addresses of an answer for an allowed name, or
// for a name a brokered secret is bound to (plain HTTP gets the secret only
// at an address the guest's DNS was given for its host).
func (s *Stack) learnAnswer(name string, resp []byte) {
	if name == "" || s.allow.Load() == nil && (s.broker == nil || !s.broker.binds(name)) {
		return
	}
	var p dnsmessage.Parser
	if _, err := p.Start(resp); err != nil || p.SkipAllQuestions() != nil {
		return
	}
	for {
		h, err := p.AnswerHeader()
		if err != nil {
			return // done, or a malformed tail: keep what was read
		}
		ttl := time.Duration(h.TTL) * time.Second
		switch h.Type {
		case dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				return
			}
			s.answers.learn(name, netip.AddrFrom4(r.A), ttl)
		case dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err != nil {
				return
			}
			s.answers.learn(name, netip.AddrFrom16(r.AAAA), ttl)
		default:
			if p.SkipAnswer() != nil {
				return
			}
		}
	}
}

// ValidateRules checks rules for a VM of policy p: rules need a network.
func ValidateRules(p Policy, r *Rules) (*Rules, error) {
	if r == nil {
		return nil, nil
	}
	n, err := r.Normalize()
	if err != nil {
		return nil, err
	}
	if !p.Enabled() {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, CodeRulesNeedNetwork,
			"allow rules restrict a network, and network_policy %q has none: use network_policy egress (CLI --network-policy egress, or --network for run)", p)
	}
	return &n, nil
}

// CodeRulesNeedNetwork is the error of allow rules on a VM without a network.
const CodeRulesNeedNetwork = errdefs.CodeNetworkRulesNeedNetwork
