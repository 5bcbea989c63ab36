package clientip_test

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/clientip"
)

func TestParseTrusted(t *testing.T) {
	for _, tc := range []struct {
		name string
		list string
		want []string // nil: want none
	}{
		{"empty", "", nil},
		{"only spaces and commas", " , ,", nil},
		{"one CIDR", "10.0.0.0/8", []string{"10.0.0.0/8"}},
		{"bare IPv4 is /32", "192.0.2.7", []string{"192.0.2.7/32"}},
		{"bare IPv6 is /128", "2001:db8::1", []string{"2001:db8::1/128"}},
		{"IPv6 CIDR", "2001:db8::/32", []string{"2001:db8::/32"}},
		{"list with spaces and empty entries", " 10.0.0.0/8 ,, 172.16.0.0/12,fd00::/8, ", []string{"10.0.0.0/8", "172.16.0.0/12", "fd00::/8"}},
		{"host bits are masked", "10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"IPv4-mapped address is IPv4", "::ffff:192.0.2.7", []string{"192.0.2.7/32"}},
		{"IPv4-mapped prefix is IPv4", "::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{"everything", "0.0.0.0/0,::/0", []string{"0.0.0.0/0", "::/0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := clientip.ParseTrusted(tc.list)
			if err != nil {
				t.Fatalf("ParseTrusted(%q): %v", tc.list, err)
			}
			var gotText []string
			for _, p := range got {
				gotText = append(gotText, p.String())
			}
			if !slices.Equal(gotText, tc.want) {
				t.Errorf("ParseTrusted(%q) = %q, want %q", tc.list, gotText, tc.want)
			}
		})
	}
}

func TestParseTrustedRejectsBadEntries(t *testing.T) {
	for _, tc := range []struct {
		list, bad string
	}{
		{"10.0.0.0/8,nonsense", "nonsense"},
		{"10.0.0.0/33", "10.0.0.0/33"},
		{"2001:db8::/129", "2001:db8::/129"},
		{"10.0.0.0/8, 300.1.1.1", "300.1.1.1"},
		{"10.0.0.0/", "10.0.0.0/"},
		{"/8", "/8"},
		{"10.0.0.0/8/8", "10.0.0.0/8/8"},
		{"proxy.example.com", "proxy.example.com"},
		{"192.0.2.1:80", "192.0.2.1:80"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"10.0.0.0 /8", "10.0.0.0 /8"},
	} {
		t.Run(tc.list, func(t *testing.T) {
			got, err := clientip.ParseTrusted(tc.list)
			if !errors.Is(err, clientip.ErrInvalidProxy) {
				t.Fatalf("ParseTrusted(%q) = %v, %v; want ErrInvalidProxy", tc.list, got, err)
			}
			if !strings.Contains(err.Error(), `"`+tc.bad+`"`) {
				t.Errorf("error %q does not quote the bad entry %q", err, tc.bad)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	const proxies = "10.0.0.0/8, 192.168.1.1, 2001:db8:ffff::/48"
	for _, tc := range []struct {
		name    string
		trusted string
		remote  string
		xff     []string // one element per header line; nil for none
		want    string
	}{
		// Untrusted peers: the header is never read.
		{"no proxies trusted, no header", "", "203.0.113.9:51000", nil, "203.0.113.9"},
		{"no proxies trusted, header ignored", "", "203.0.113.9:51000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"forged header from an untrusted peer", proxies, "203.0.113.9:51000", []string{"10.0.0.1, 192.0.2.66"}, "203.0.113.9"},
		{"untrusted IPv6 peer", proxies, "[2001:db8:1::5]:443", []string{"192.0.2.66"}, "2001:db8:1::5"},

		// Trusted peers.
		{"trusted proxy, one hop", proxies, "10.0.0.2:40000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted proxy, no header", proxies, "10.0.0.2:40000", nil, "10.0.0.2"},
		{"trusted proxy, empty header", proxies, "10.0.0.2:40000", []string{""}, "10.0.0.2"},
		{"forged left-most entry is not reached", proxies, "10.0.0.2:40000", []string{"1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
		{"forged trusted-looking entry left of the client", proxies, "10.0.0.2:40000", []string{"10.9.9.9, 198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", proxies, "10.0.0.2:40000", []string{"6.6.6.6, 198.51.100.7, 192.168.1.1, 10.3.3.3"}, "198.51.100.7"},
		{"every hop trusted: leftmost is an internal client", proxies, "10.0.0.2:40000", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"several header lines read as one list", proxies, "10.0.0.2:40000", []string{"6.6.6.6, 198.51.100.7", "10.3.3.3"}, "198.51.100.7"},
		{"client in the first of several lines", proxies, "10.0.0.2:40000", []string{"198.51.100.7", "10.3.3.3", ""}, "198.51.100.7"},
		{"spaces and empty elements", proxies, "10.0.0.2:40000", []string{" 6.6.6.6 ,,  198.51.100.7 , ,"}, "198.51.100.7"},
		{"entries with ports", proxies, "10.0.0.2:40000", []string{"198.51.100.7:5555, 10.3.3.3:80"}, "198.51.100.7"},

		// IPv6.
		{"IPv6 client behind IPv6 proxy", proxies, "[2001:db8:ffff::1]:443", []string{"2001:db8:1:2::3"}, "2001:db8:1:2::3"},
		{"IPv6 entry in brackets", proxies, "10.0.0.2:40000", []string{"[2001:DB8:0:0::7]"}, "2001:db8::7"},
		{"IPv6 entry in brackets with port", proxies, "10.0.0.2:40000", []string{"[2001:db8::7]:1234"}, "2001:db8::7"},
		{"IPv4 client behind IPv6 proxy", proxies, "[2001:db8:ffff::1]:443", []string{"198.51.100.7"}, "198.51.100.7"},
		{"IPv4-mapped peer matches IPv4 prefix", proxies, "[::ffff:10.0.0.2]:40000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"IPv4-mapped untrusted peer is shown as IPv4", proxies, "[::ffff:203.0.113.9]:40000", nil, "203.0.113.9"},
		{"IPv4-mapped client entry is shown as IPv4", proxies, "10.0.0.2:40000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"zoned link-local peer loses its zone", "", "[fe80::1%eth0]:40000", nil, "fe80::1"},

		// Garbage: the walk stops at the first entry it cannot check.
		{"garbage only", proxies, "10.0.0.2:40000", []string{"not an address"}, "10.0.0.2"},
		{"unknown right of the client", proxies, "10.0.0.2:40000", []string{"198.51.100.7, unknown"}, "10.0.0.2"},
		{"garbage after a trusted hop", proxies, "10.0.0.2:40000", []string{"198.51.100.7, garbage, 10.3.3.3"}, "10.3.3.3"},
		{"garbage left of the client is never reached", proxies, "10.0.0.2:40000", []string{"<script>, 198.51.100.7"}, "198.51.100.7"},
		{"obfuscated identifier", proxies, "10.0.0.2:40000", []string{"_hidden"}, "10.0.0.2"},
		{"control characters", proxies, "10.0.0.2:40000", []string{"198.51.100.7\x00, 1.2.3.4\n"}, "1.2.3.4"},
		{"half a bracket", proxies, "10.0.0.2:40000", []string{"[2001:db8::7"}, "10.0.0.2"},
		{"out of range octet", proxies, "10.0.0.2:40000", []string{"198.51.100.256"}, "10.0.0.2"},

		// Peers that are not addresses.
		{"remote address without port", "", "203.0.113.9", nil, "203.0.113.9"},
		{"unix socket peer", proxies, "@", []string{"198.51.100.7"}, ""},
		{"empty remote address", proxies, "", []string{"198.51.100.7"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trusted, err := clientip.ParseTrusted(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientip.NewResolver(trusted).ClientIP(r); got != tc.want {
				t.Errorf("ClientIP(RemoteAddr %q, X-Forwarded-For %q) = %q, want %q", tc.remote, tc.xff, got, tc.want)
			}
		})
	}
}

// TestNewResolverCopiesPrefixes checks that changing the slice given to
// NewResolver afterwards does not change whom it trusts.
func TestNewResolverCopiesPrefixes(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	res := clientip.NewResolver(trusted)
	trusted[0] = netip.MustParsePrefix("0.0.0.0/0")

	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "203.0.113.9:1234"
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	if got := res.ClientIP(r); got != "203.0.113.9" {
		t.Errorf("ClientIP = %q after the caller changed its slice, want the untrusted peer", got)
	}
}

// TestClientIPLongForgedHeader checks a header stuffed with trusted-looking
// addresses is walked without trouble and ends at the leftmost.
func TestClientIPLongForgedHeader(t *testing.T) {
	trusted, err := clientip.ParseTrusted("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.2:1234"
	r.Header.Set("X-Forwarded-For", "198.51.100.7"+strings.Repeat(", 10.0.0.1", 50_000))
	if got := clientip.NewResolver(trusted).ClientIP(r); got != "198.51.100.7" {
		t.Errorf("ClientIP = %q, want 198.51.100.7", got)
	}
}

func TestThrottleKeyCountsIPv6ClientsPerSlash64(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		if got := clientip.ThrottleKey(tc.ip); got != tc.want {
			t.Errorf("ThrottleKey(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
