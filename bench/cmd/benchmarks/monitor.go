package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// INFO commandstats counts the commands a script runs as well as the EVALSHA
// that ran it, and cannot tell them apart. MONITOR can: Redis prints each
// command with its source, "[0 lua]" for those a script ran. It is cheap only
// where Redis hears little, so the driver attaches it to the scenarios whose
// replicas answer page views from their caches, to tell the requests the
// replicas send (round trips) from the work those requests do inside Redis.

// redisTraffic is what a MONITOR connection saw over a window.
type redisTraffic struct {
	// sent are the commands clients sent, by name; inScripts those the
	// scripts they called ran. Monitoring and connection set-up (by the
	// names commandDeltas uses) and Sentinel's hello messages are left out.
	sent, inScripts map[string]int64
	window          time.Duration
}

// monitor is a MONITOR connection being read.
type monitor struct {
	conn    redis.Conn
	started time.Time
	done    chan struct{}

	mu      sync.Mutex
	traffic redisTraffic
	err     error
}

// startMonitor attaches MONITOR to the Redis at addr; stop returns what it
// saw.
func startMonitor(addr string) (*monitor, error) {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second))
	if err != nil {
		return nil, err
	}
	if err := c.Send("MONITOR"); err == nil {
		err = c.Flush()
	}
	if err == nil {
		var ok string
		if ok, err = redis.String(redis.ReceiveWithTimeout(c, 5*time.Second)); err == nil && ok != "OK" {
			err = fmt.Errorf("MONITOR answered %q", ok)
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("monitor %s: %w", addr, err)
	}
	m := &monitor{conn: c, started: time.Now(), done: make(chan struct{}),
		traffic: redisTraffic{sent: map[string]int64{}, inScripts: map[string]int64{}}}
	go m.read()
	return m, nil
}

func (m *monitor) read() {
	defer close(m.done)
	for {
		// No deadline: stop closes the connection to end the read.
		line, err := redis.String(redis.ReceiveWithTimeout(m.conn, 0))
		if err != nil {
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			return
		}
		source, name, arg, ok := parseMonitorLine(line)
		if !ok {
			continue
		}
		m.mu.Lock()
		switch f := family(name); {
		case source == "lua":
			m.traffic.inScripts[name]++
		case monitoring[f], setup[f], f == "publish" && strings.HasPrefix(arg, "__sentinel__:"):
		default:
			m.traffic.sent[name]++
		}
		m.mu.Unlock()
	}
}

// stop ends the window and returns what was seen in it; an error if the
// connection failed before, as the counts would then fall short.
func (m *monitor) stop() (redisTraffic, error) {
	window := time.Since(m.started)
	select {
	case <-m.done:
		return redisTraffic{}, fmt.Errorf("MONITOR connection failed during the run: %w", m.err)
	default:
	}
	m.conn.Close() // ends the read
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.traffic
	t.window = window
	return t, nil
}

// parseMonitorLine reads one MONITOR line,
//
//	1700000000.123456 [0 127.0.0.1:51234] "EVALSHA" "3f2a…" "1" "hp:cache:replicas"
//
// into its source ("127.0.0.1:51234", "lua", "unix:…"), its command name in
// lower case, and its first argument.
func parseMonitorLine(line string) (source, name, arg string, ok bool) {
	_, rest, ok := strings.Cut(line, "[")
	if !ok {
		return "", "", "", false
	}
	inside, rest, ok := strings.Cut(rest, "] ")
	if !ok {
		return "", "", "", false
	}
	_, source, ok = strings.Cut(inside, " ")
	if !ok {
		return "", "", "", false
	}
	words := quotedWords(rest, 2)
	if len(words) == 0 {
		return "", "", "", false
	}
	name = strings.ToLower(words[0])
	if len(words) > 1 {
		arg = words[1]
	}
	return source, name, arg, true
}

// quotedWords returns up to n of the double-quoted words of s (MONITOR
// escapes quotes inside them as \").
func quotedWords(s string, n int) []string {
	var words []string
	for len(words) < n {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		s = s[i+1:]
		var w strings.Builder
		j := 0
		for ; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			w.WriteByte(s[j])
		}
		words = append(words, w.String())
		if j >= len(s) {
			break
		}
		s = s[j+1:]
	}
	return words
}
