package network

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// The addresses that allowed DNS answers gave, per VM. The guest decides
// how many names it resolves, so the cache is bounded in entries and in
// names per entry, and TTLs are clamped: a floor so that a client that
// connects a little after the answer still can, a ceiling so that an
// address does not stay allowed for days.
const (
	maxDNSCacheEntries = 4096
	maxNamesPerAddr    = 8
	minAnswerTTL       = 60 * time.Second
	maxAnswerTTL       = time.Hour
)

type dnsCache struct {
	mu  sync.Mutex
	m   map[netip.Addr]*cacheEntry
	now func() time.Time // time.Now; tests replace it
}

type cacheEntry struct {
	names   []string // lower case, no trailing dot; newest last
	expires time.Time
}

func newDNSCache() *dnsCache { return &dnsCache{m: map[netip.Addr]*cacheEntry{}, now: time.Now} }

// learn records that name resolved to addr for ttl.
func (c *dnsCache) learn(name string, addr netip.Addr, ttl time.Duration) {
	ttl = min(max(ttl, minAnswerTTL), maxAnswerTTL)
	addr = addr.Unmap()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	e := c.m[addr]
	if e == nil {
		if len(c.m) >= maxDNSCacheEntries {
			c.evictLocked(now)
		}
		e = &cacheEntry{}
		c.m[addr] = e
	}
	if i := slices.Index(e.names, name); i >= 0 {
		e.names = slices.Delete(e.names, i, i+1)
	}
	if len(e.names) >= maxNamesPerAddr {
		e.names = e.names[1:]
	}
	e.names = append(e.names, name)
	if exp := now.Add(ttl); exp.After(e.expires) {
		e.expires = exp
	}
}

// evictLocked drops expired entries, or else the one closest to expiry.
func (c *dnsCache) evictLocked(now time.Time) {
	var oldest netip.Addr
	for a, e := range c.m {
		if !e.expires.After(now) {
			delete(c.m, a)
			continue
		}
		if !oldest.IsValid() || e.expires.Before(c.m[oldest].expires) {
			oldest = a
		}
	}
	if len(c.m) >= maxDNSCacheEntries && oldest.IsValid() {
		delete(c.m, oldest)
	}
}

// names returns the names that resolved to addr and have not expired.
func (c *dnsCache) names(addr netip.Addr) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[addr.Unmap()]
	if e == nil || !e.expires.After(c.now()) {
		return nil
	}
	return slices.Clone(e.names)
}

// has reports whether name resolved to addr and has not expired.
func (c *dnsCache) has(name string, addr netip.Addr) bool {
	return name != "" && slices.Contains(c.names(addr), name)
}

func (c *dnsCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
