package sessioncache_test

import (
	"net"
	"sync"
	"testing"
)

// stallProxy forwards TCP connections to a Redis and can stall them: while
// stalled, bytes are held in both directions but no connection is closed,
// as with a network path that silently stops delivering.
type stallProxy struct {
	addr string

	mu      sync.Mutex
	stalled bool
	resume  *sync.Cond
}

// startStallProxy listens on a free loopback port and forwards to target.
func startStallProxy(t testing.TB, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &stallProxy{addr: ln.Addr().String()}
	p.resume = sync.NewCond(&p.mu)
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		p.Resume()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			open = append(open, in, out)
			mu.Unlock()
			conns.Add(2)
			go func() { defer conns.Done(); p.pipe(out, in) }()
			go func() { defer conns.Done(); p.pipe(in, out) }()
		}
	}()
	return p
}

// pipe copies src to dst, holding each chunk while the proxy is stalled.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.stalled {
				p.resume.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF included: the other side closed
			return
		}
	}
}

// Stall holds every byte from now on.
func (p *stallProxy) Stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Resume delivers what was held and forwards again.
func (p *stallProxy) Resume() {
	p.mu.Lock()
	p.stalled = false
	p.resume.Broadcast()
	p.mu.Unlock()
}
