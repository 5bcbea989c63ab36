// Package clientip finds the address of the client behind a request: the
// TCP peer, or, when the peer is a trusted reverse proxy, the address the
// proxies recorded in X-Forwarded-For.
//
// X-Forwarded-For is a list each proxy appends its peer to, and a client can
// send one already filled with anything it likes. Only the entries added by
// proxies we trust can be believed, and those are at the right-hand end. So
// the list is read from the right, skipping trusted proxies, and the first
// address that is not one of them is the client: whatever a client writes
// further left is never reached.
package clientip

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ErrInvalidProxy is returned by ParseTrusted for an entry that is neither a
// CIDR prefix nor an IP address.
var ErrInvalidProxy = errors.New("invalid trusted proxy")

// ParseTrusted parses a comma-separated list of CIDR prefixes ("10.0.0.0/8",
// "2001:db8::/32") and bare IP addresses (taken as /32 or /128), as written in
// configuration. Spaces around entries and empty entries are ignored, so ""
// means no trusted proxies. A prefix with host bits set is masked
// ("10.1.2.3/8" trusts 10.0.0.0/8), and IPv4-mapped IPv6 entries are taken as
// the IPv4 they map. An entry that cannot be parsed, or carries an IPv6 zone,
// fails with an error wrapping ErrInvalidProxy and quoting the entry.
func ParseTrusted(list string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, err := parseEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v (want a CIDR such as 10.0.0.0/8 or an IP address)", ErrInvalidProxy, entry, err)
		}
		prefixes = append(prefixes, p)
	}
	return prefixes, nil
}

func parseEntry(entry string) (netip.Prefix, error) {
	if strings.Contains(entry, "/") {
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return netip.Prefix{}, err
		}
		addr, bits := p.Addr(), p.Bits()
		if addr.Is4In6() && bits >= 96 {
			addr, bits = addr.Unmap(), bits-96
		}
		return netip.PrefixFrom(addr, bits).Masked(), nil
	}
	addr, err := netip.ParseAddr(entry)
	if err != nil {
		return netip.Prefix{}, err
	}
	if addr.Zone() != "" {
		return netip.Prefix{}, errors.New("zones are not allowed")
	}
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// Resolver finds a request's client address, believing X-Forwarded-For only
// as far as it was written by trusted proxies. It is safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a Resolver that trusts the proxies in the given
// prefixes (see ParseTrusted). With none, the peer is always the client and
// X-Forwarded-For is ignored.
func NewResolver(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: append([]netip.Prefix(nil), trusted...)}
}

// ClientIP returns the client address of r in canonical text form (IPv4
// dotted, IPv6 compressed, without zone or port).
//
// It starts from the peer, r.RemoteAddr. If the peer is a trusted proxy, it
// walks X-Forwarded-For (all of the request's such headers, in order) from
// the right: trusted addresses are proxies and are passed over; the first
// untrusted address is returned. If every address is trusted, the leftmost is
// the client (a client on the proxies' own network). An entry that is not an
// address ("unknown", an obfuscated name, garbage) ends the walk, and the
// last address reached is returned: beyond a hop that cannot be checked, the
// chain can no longer be believed. Empty list elements are skipped, and an
// entry with a port ("192.0.2.1:443", "[2001:db8::1]:443") is read as its
// address.
//
// ClientIP returns "" only when r.RemoteAddr is not an address, as for
// requests that came over a Unix socket.
func (res *Resolver) ClientIP(r *http.Request) string {
	peer, ok := parseAddr(r.RemoteAddr)
	if !ok {
		return ""
	}
	client := peer
	if res.isTrusted(peer) {
		client = res.walkForwardedFor(r.Header.Values("X-Forwarded-For"), peer)
	}
	return client.String()
}

// walkForwardedFor returns the rightmost untrusted address of the lists
// (headers in order, each a comma-separated list), starting from the trusted
// peer.
func (res *Resolver) walkForwardedFor(headers []string, peer netip.Addr) netip.Addr {
	last := peer
	for i := len(headers) - 1; i >= 0; i-- {
		list := headers[i]
		// Walk with LastIndexByte rather than strings.Split: a long forged
		// header costs no allocation.
		for list != "" {
			entry := list
			if comma := strings.LastIndexByte(list, ','); comma >= 0 {
				entry, list = list[comma+1:], list[:comma]
			} else {
				list = ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			addr, ok := parseAddr(entry)
			if !ok {
				return last
			}
			if !res.isTrusted(addr) {
				return addr
			}
			last = addr
		}
	}
	return last
}

func (res *Resolver) isTrusted(addr netip.Addr) bool {
	for _, p := range res.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// parseAddr reads an address with or without a port, IPv6 with or without
// brackets, and returns it unmapped and without zone, so that an IPv4 client
// reached over an IPv6 socket matches IPv4 prefixes.
func parseAddr(s string) (netip.Addr, bool) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		host, _, splitErr := net.SplitHostPort(s)
		if splitErr != nil {
			// "[2001:db8::1]" without a port.
			host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
			if len(host) != len(s)-2 {
				return netip.Addr{}, false
			}
		}
		if addr, err = netip.ParseAddr(host); err != nil {
			return netip.Addr{}, false
		}
	}
	return addr.Unmap().WithZone(""), true
}

// ThrottleKey is the part of a client address that attempt counters count
// by: the address itself for IPv4, and its /64 network for IPv6, where one
// client commonly holds a whole /64 and could otherwise take a fresh address
// — and a fresh budget — for every attempt. An address that does not parse
// is returned as it is.
func ThrottleKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.String()
	}
	prefix, err := addr.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return prefix.String()
}
