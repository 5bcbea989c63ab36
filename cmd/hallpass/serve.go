package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hallpass/hallpass/internal/clientip"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/metrics"
	"github.com/hallpass/hallpass/internal/web"
)

// shutdownGrace is how long in-flight requests may take to finish after
// SIGTERM.
const shutdownGrace = 15 * time.Second

// serve runs the web app until ctx ends.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, hostname())
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(stderr)
		return nil
	}
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if cfg.Factors && len(cfg.SecretKeys) == 0 {
		return errors.New("configuration:\nHALLPASS_SECRET_KEY is required while second factors are on (HALLPASS_FACTORS=true): it encrypts TOTP secrets outside the database. Make one with `openssl rand -base64 32`, or set HALLPASS_FACTORS=false")
	}
	log := newLogger(stderr, cfg.LogFormat, cfg.LogLevel).With(slog.String("replica", cfg.ReplicaID))

	var m *metrics.Metrics
	var activeSessions func(context.Context) (int, error)
	if cfg.MetricsAddr != "" {
		m = metrics.New(func(ctx context.Context) (int, error) { return activeSessions(ctx) })
	}
	// Each argon2id hash holds about 19 MiB; two per core keeps the cores
	// busy without letting a login flood exhaust memory.
	b, err := openBackends(ctx, cfg, log, m, 2*runtime.NumCPU(), true)
	if err != nil {
		return err
	}
	defer b.close()
	activeSessions = b.store.Count
	if b.link != nil {
		// Only the process that keeps the cache reports it; without
		// metrics, m is nil and this does nothing.
		m.SessionCache(b.cached.Stats)
	}
	log.Info("database ready", slog.String("database", database.DescribeURL(cfg.DatabaseURL)))
	if n, err := b.users.Count(ctx); err == nil && n == 0 {
		log.Warn("no users yet: create the first administrator with `hallpass user add NAME --admin` (the password is read from standard input)")
	}
	if !b.shared {
		log.Warn("sessions are local to this process: they end when it stops and other replicas cannot see them; set HALLPASS_REDIS_URL to share them")
	}
	if !cfg.CookieSecure {
		log.Warn("HALLPASS_COOKIE_SECURE=false: the session cookie is sent over plain http and loses the __Host- prefix; use this only on a test rig")
	}

	var draining atomic.Bool
	handler, err := web.NewServer(web.Deps{
		Logger:       log,
		ReplicaID:    cfg.ReplicaID,
		SignupOpen:   cfg.Signup == config.SignupOpen,
		CookieSecure: cfg.CookieSecure,
		IdleTimeout:  cfg.SessionIdleTimeout,
		RememberFor:  rememberFor(cfg),
		Sessions:     b.sessions,
		Account:      b.account,
		Ready:        []web.Check{{Name: "session store", Ping: b.store.Ping}, {Name: "database", Ping: b.users.Ping}},
		Metrics:      m,
		Draining:     draining.Load,
		Live:         b.live,
		ClientIP:     clientip.NewResolver(cfg.TrustedProxies),
	})
	if err != nil {
		return err
	}

	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	log.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("url", "http://"+displayHost(ln.Addr())))

	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	var metricsSrv *http.Server
	if m != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		// Profiles on the same private listener, never the public one, so a
		// running replica can be profiled under real load.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		metricsSrv = &http.Server{Addr: cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("listen on %s for metrics: %w", cfg.MetricsAddr, err)
		}
		log.Info("serving metrics", slog.String("addr", mln.Addr().String()))
		go func() { serveErr <- metricsSrv.Serve(mln) }()
	}
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Drain: report not-ready so the load balancer stops sending requests,
	// give it time to notice, then stop accepting and let in-flight
	// requests finish.
	draining.Store(true)
	// Open tabs reconnect (EventSource retries) to a replica that stays.
	b.live.Shutdown()
	log.Info("draining", slog.Duration("delay", cfg.DrainDelay), slog.Int("streams_closed", b.live.Count()))
	if cfg.DrainDelay > 0 {
		select {
		case <-time.After(cfg.DrainDelay):
		case err := <-serveErr:
			return fmt.Errorf("serve: %w", err)
		}
	}
	log.Info("shutting down", slog.Duration("grace", shutdownGrace))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if metricsSrv != nil {
		defer metricsSrv.Close()
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	log.Info("stopped")
	return nil
}

// displayHost turns a listen address into something a browser can open.
func displayHost(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		if ok {
			return fmt.Sprintf("localhost:%d", tcp.Port)
		}
		return a.String()
	}
	return tcp.String()
}

// rememberFor is how long "keep me signed in" keeps a session, or zero
// when no role may use it (the sign-in form then hides the box).
func rememberFor(cfg config.Config) time.Duration {
	if len(cfg.RememberRoles) == 0 {
		return 0
	}
	return cfg.RememberLifetime
}
