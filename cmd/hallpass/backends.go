package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/gomodule/redigo/redis"

	"github.com/hallpass/hallpass/internal/account"
	"github.com/hallpass/hallpass/internal/audit"
	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/database"
	"github.com/hallpass/hallpass/internal/devicetrust"
	"github.com/hallpass/hallpass/internal/factor"
	"github.com/hallpass/hallpass/internal/keyring"
	"github.com/hallpass/hallpass/internal/live"
	"github.com/hallpass/hallpass/internal/metrics"
	"github.com/hallpass/hallpass/internal/password"
	"github.com/hallpass/hallpass/internal/rediscluster"
	"github.com/hallpass/hallpass/internal/redisx"
	"github.com/hallpass/hallpass/internal/secretbox"
	"github.com/hallpass/hallpass/internal/session"
	"github.com/hallpass/hallpass/internal/sessioncache"
	"github.com/hallpass/hallpass/internal/throttle"
	"github.com/hallpass/hallpass/internal/user"
)

// backends are the stores a Hallpass process works with, opened and
// checked once, and closed together.
type backends struct {
	db    *database.DB
	users *user.SQLStore
	// userStore is users, instrumented when metrics are on.
	userStore user.Store
	audit     *audit.SQLStore
	store     session.Store
	shared    bool // the session store is Redis, shared with other processes
	sessions  *session.Manager
	// throttle counts sign-in and sign-up attempts, shared like sessions.
	throttle throttle.Store
	// account runs the use cases over all of the above: the pages and the
	// command line reach the rules only through it.
	account  *account.Service
	pool     *redis.Pool
	sentinel *redisx.SentinelPool
	// cluster is the Redis Cluster sessions are spread over (nil
	// otherwise); pool is its routing pool, and dialNode opens a
	// connection to one of its nodes.
	cluster  *rediscluster.Cluster
	dialNode func(ctx context.Context, addr string) (redis.Conn, error)
	// link keeps this replica's session cache honest (nil without one);
	// cached is the Redis session store with the cache or the revocation
	// fence in front (nil without Redis).
	link   *sessioncache.Link
	cached *sessioncache.Store
	// live holds the server's open tabs' event streams (nil outside serve).
	live *live.Hub
}

// openBackends opens the database (migrating it) and the session store
// named by cfg, checks both answer, and builds the account service over
// them with a hasher that runs at most hashers hashes at once. With m,
// every store call is timed and sign-ins are counted. forServer says the
// process is the server itself; a command-line process cannot reach the
// sessions of a server that keeps them in its own memory.
func openBackends(ctx context.Context, cfg config.Config, log *slog.Logger, m *metrics.Metrics, hashers int, forServer bool) (*backends, error) {
	b := &backends{}
	db, err := database.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", database.DescribeURL(cfg.DatabaseURL), err)
	}
	b.db = db
	if err := database.Migrate(ctx, db); err != nil {
		b.close()
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	b.users = user.NewSQLStore(db, time.Now)
	b.userStore = b.users
	b.audit = audit.NewSQLStore(db, time.Now)

	// The store keeps sessions and tombstones for the longest any session
	// may last (a "keep me signed in" one); each refresh shortens a
	// session's own key to its own idle timeout.
	policies := cfg.SessionPolicies()
	longestIdle, longestLifetime := policies.Longest()
	storeOpts := session.StoreOptions(longestIdle, longestLifetime, nil)
	storeOpts.WaitReplicas, storeOpts.WaitTimeout = cfg.RedisWaitReplicas, cfg.RedisWaitTimeout
	pool, where, err := openRedis(ctx, cfg, b, log)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("session store: %w", err)
	}
	if pool != nil {
		b.pool = pool
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = redisx.Ping(pingCtx, pool)
		cancel()
		if err != nil {
			b.close()
			return nil, fmt.Errorf("session store %s is not reachable: %w", where, err)
		}
		redisStore := session.NewRedisStore(pool, storeOpts)
		var primaryLease func() (time.Time, uint64)
		if b.cluster != nil {
			redisStore = session.NewRedisClusterStore(pool, b.cluster.PrimaryFor, storeOpts)
		}
		if b.sentinel != nil {
			// The Sentinels confirm the primary within a round of
			// questions; until then reads would go to a replica. Not
			// fatal: reads work without it.
			leaseCtx, cancel := context.WithTimeout(ctx, time.Second)
			if err := b.sentinel.AwaitPrimaryLease(leaseCtx); err != nil {
				log.Warn("starting before the Sentinels confirmed the Redis primary: reads go to a replica until they do", slog.Any("err", err))
			}
			cancel()
			// Signed-in pages are read from a replica while no primary
			// can be reached, or while the Sentinels cannot confirm that
			// the primary is still the primary (a partition may have cut
			// this process off with it while a failover runs elsewhere);
			// writes answer 503 meanwhile.
			redisStore = session.NewRedisStoreWithReplicaAndLease(pool, b.sentinel.ReplicaPool(), b.sentinel.PrimaryLease, storeOpts)
			primaryLease = b.sentinel.PrimaryLeaseTerm
		}
		if forServer && cfg.SessionCache {
			linkOpts := sessioncache.LinkOptions{
				Dial:       pool.DialContext,
				Pool:       pool,
				KeyPrefix:  session.RedisSessionPrefix,
				ReplicaID:  cfg.ReplicaID,
				MaxEntries: cfg.SessionCacheEntries,
				MaxBytes:   int64(cfg.SessionCacheMiB) << 20,
				Logger:     log,
				// The cache answers only within the primary lease too.
				PrimaryLease: primaryLease,
			}
			if b.cluster != nil {
				// Tracking is per node: one invalidation connection to
				// each primary.
				linkOpts.Dial, linkOpts.Nodes, linkOpts.DialNode = nil, b.cluster.Primaries, b.dialNode
			}
			link, err := sessioncache.StartLink(linkOpts)
			if err != nil {
				b.close()
				return nil, fmt.Errorf("session cache: %w", err)
			}
			b.link = link
			b.cached = sessioncache.NewStore(redisStore, link)
		} else {
			// No cache here, but other replicas may keep one: a revocation
			// from this process still waits until they cannot serve it.
			b.cached = sessioncache.NewAwaitingStore(redisStore, pool)
			if b.cluster != nil {
				b.cached = sessioncache.NewAwaitingClusterStore(redisStore, pool, b.cluster.Primaries, b.dialNode)
			}
		}
		b.store = b.cached
		b.throttle = throttle.NewRedisStore(pool, nil)
		b.shared = true
		log.Info("sessions are stored in Redis", slog.String("redis", where), slog.Int("wait_replicas", cfg.RedisWaitReplicas))
	} else {
		b.store = session.NewMemoryStore(storeOpts)
		b.throttle = throttle.NewMemoryStore(nil)
	}
	if m != nil {
		b.store = metrics.InstrumentStore(b.store, m)
		b.userStore = metrics.InstrumentUsers(b.users, m)
	}
	b.sessions = session.NewManager(session.ManagerOptions{
		Store:                b.store,
		Policies:             &policies,
		CookieSecure:         cfg.CookieSecure,
		BrowserSessionCookie: cfg.BrowserSessionCookie,
		ReplicaID:            cfg.ReplicaID,
		// The manager asks the service, built just below, whether a
		// session it refreshes may go on.
		CheckUser: func(ctx context.Context, userID int64, created time.Time) (session.EndReason, error) {
			return b.account.CheckSession(ctx, userID, created)
		},
		Logger: log,
	})
	if forServer {
		// The open tabs hear of their session through the cache's link
		// when there is one (one subscription per replica), and otherwise
		// (one process, sessions in memory) by looking every second.
		liveOpts := live.Options{Sessions: b.sessions, PollEvery: time.Second, Logger: log}
		if b.link != nil {
			liveOpts.Publish, liveOpts.PollEvery = b.link.Publish, livePollWithLink
		}
		b.live = live.New(liveOpts)
		if b.link != nil {
			b.link.SetListener(b.live)
		}
	}
	var counts account.Metrics
	if m != nil {
		counts = m
	}
	var devices *devicetrust.Signer
	if forServer {
		key, err := keyring.Load(ctx, db, "device-cookie", devicetrust.KeySize)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("device-cookie key: %w", err)
		}
		devices = devicetrust.NewSigner(key)
	}
	// Second factors: the command line may run without the secret key
	// (resetting a user's factors needs none); the server may not (serve
	// refuses to start without it).
	var box *secretbox.Box
	if len(cfg.SecretKeys) > 0 {
		if box, err = secretbox.New(cfg.SecretKeys); err != nil {
			b.close()
			return nil, fmt.Errorf("secret key: %w", err)
		}
	}
	var factors factor.Store
	var relyingParty *webauthn.WebAuthn
	if cfg.Factors {
		factors = factor.NewSQLStore(db, box)
		if relyingParty, err = account.NewWebAuthn(cfg.WebAuthnRPID, cfg.WebAuthnOrigins, "Hallpass"); err != nil {
			b.close()
			return nil, fmt.Errorf("passkeys: %w", err)
		}
	}
	b.account = account.New(account.Options{
		Users:              b.userStore,
		Sessions:           b.sessions,
		Hasher:             password.NewHasher(password.DefaultParams, hashers),
		Throttle:           b.throttle,
		Audit:              b.audit,
		Metrics:            counts,
		Logger:             log,
		Replica:            cfg.ReplicaID,
		LoginPolicy:        throttle.DefaultLoginPolicy(),
		SignupPolicy:       throttle.DefaultSignupPolicy(),
		SessionsOutOfReach: !b.shared && !forServer,
		DeviceTrust:        devices,
		SignedIn:           b.signedIn,
		Factors:            factors,
		Secrets:            box,
		RequireMFA:         account.MFAPolicy(cfg.RequireMFA),
		WebAuthn:           relyingParty,
		SudoWindow:         cfg.SudoWindow,
	})
	return b, nil
}

// livePollWithLink is how often an open tab's stream looks its session up
// itself when the link tells it of changes anyway: a safety net only.
const livePollWithLink = 30 * time.Second

// signedIn tells the open tabs of the account's other sessions of a new
// sign-in, on every replica.
func (b *backends) signedIn(ctx context.Context, n account.SignInNotice) {
	if b.live != nil {
		b.live.SignedIn(ctx, live.SignIn{UserID: n.UserID, PublicID: n.PublicID, Device: n.Device, IP: n.IP, At: n.At})
	}
}

// openRedis opens the session store's pool: over a Redis Cluster when its
// nodes are configured, else through the Sentinels when they are, else
// straight to HALLPASS_REDIS_URL; nil when none is set. where describes it
// for logs, without passwords. Only the Sentinel pool keeps a primary
// lease: a single Redis has no failover, and Redis Cluster fails over by
// itself (see session.NewRedisClusterStore).
func openRedis(ctx context.Context, cfg config.Config, b *backends, log *slog.Logger) (pool *redis.Pool, where string, err error) {
	switch {
	case len(cfg.RedisCluster) > 0:
		o := redisx.DefaultPoolOptions()
		b.dialNode = func(ctx context.Context, addr string) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr,
				redis.DialPassword(cfg.RedisPassword),
				redis.DialClientName("hallpass-"+cfg.ReplicaID),
				redis.DialConnectTimeout(o.ConnectTimeout),
				redis.DialReadTimeout(o.ReadTimeout),
				redis.DialWriteTimeout(o.WriteTimeout))
		}
		dialCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := rediscluster.New(dialCtx, cfg.RedisCluster, rediscluster.Options{Dial: b.dialNode, MaxIdlePerNode: o.MaxIdle})
		if err != nil {
			return nil, "", err
		}
		b.cluster = c
		return c.Pool(), "cluster " + strings.Join(cfg.RedisCluster, ","), nil
	case len(cfg.RedisSentinels) > 0:
		sp, err := redisx.NewSentinelPool(redisx.SentinelOptions{
			Addrs:       cfg.RedisSentinels,
			MasterName:  cfg.RedisMaster,
			Password:    cfg.RedisPassword,
			ClientName:  "hallpass-" + cfg.ReplicaID,
			Logger:      log,
			PoolOptions: redisx.DefaultPoolOptions(),
		})
		if err != nil {
			return nil, "", err
		}
		b.sentinel = sp
		return sp.Pool(), "sentinels " + strings.Join(cfg.RedisSentinels, ",") + " master " + cfg.RedisMaster, nil
	case cfg.RedisURL != "":
		pool, err := redisx.NewPool(cfg.RedisURL, redisx.DefaultPoolOptions())
		return pool, redisx.DescribeURL(cfg.RedisURL), err
	}
	return nil, "", nil
}

// close releases the stores.
func (b *backends) close() {
	if b.link != nil {
		b.link.Close()
	}
	switch {
	case b.cluster != nil:
		b.cluster.Close() // closes its pools too
	case b.sentinel != nil:
		b.sentinel.Close() // closes its pool too
	case b.pool != nil:
		b.pool.Close()
	}
	if b.db != nil {
		b.db.Close()
	}
}
