package network

import (
	"github.com/pyrovm/pyro/internal/network/egress"

	"strings"
	"sync"
	"time"
)

// maxBlocked is how many refusals a VM's log keeps (the newest).
const maxBlocked = 1000

// Blocked is one refused DNS name, connection or UDP flow.
type Blocked struct {
	Time     time.Time `json:"time"`
	Protocol string    `json:"protocol"`          // dns, tcp or udp
	Address  string    `json:"address,omitempty"` // the destination address (not for dns)
	Port     int       `json:"port,omitempty"`
	Name     string    `json:"name,omitempty"` // the DNS name, TLS server name or HTTP Host, when known
	Reason   string    `json:"reason"`         // which rule said no, and what to allow instead
}

// BlockedLog is the newest refusals, oldest first, and how many there
// were in all (Total > len(Entries) when older ones were dropped).
type BlockedLog struct {
	Entries []Blocked `json:"entries"`
	Total   int64     `json:"total"`
}

// blockLog is a ring of the newest maxBlocked refusals.
type blockLog struct {
	mu    sync.Mutex
	ring  []Blocked
	next  int
	total int64
}

func (l *blockLog) add(b Blocked) {
	b.Name = cleanName(b.Name)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if len(l.ring) < maxBlocked {
		l.ring = append(l.ring, b)
		return
	}
	l.ring[l.next] = b
	l.next = (l.next + 1) % maxBlocked
}

func (l *blockLog) snapshot() BlockedLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Blocked, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	out = append(out, l.ring[:l.next]...)
	return BlockedLog{Entries: out, Total: l.total}
}

// cleanName bounds a guest-chosen name (an HTTP Host may hold anything)
// to printable ASCII of a DNS name's length.
func cleanName(s string) string {
	if len(s) > egress.MaxNameLength {
		s = s[:egress.MaxNameLength]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
