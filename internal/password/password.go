// Package password hashes and verifies passwords with argon2id, storing them
// as PHC strings ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
//
// One argon2id hash at the default parameters takes about 20 ms of CPU and
// 20 MB of memory, so a Hasher bounds how many run at once: a burst of sign-ins
// queues rather than exhausting memory, and a caller whose context ends while
// queued gets ErrBusy.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Password length limits, in bytes. The upper bound keeps a single request
// from buying an arbitrarily long hash computation.
const (
	MinLength = 8
	MaxLength = 256
)

// Errors returned by this package; check them with errors.Is.
var (
	// ErrTooShort is returned by Validate for a password under MinLength bytes.
	ErrTooShort = errors.New("password too short")
	// ErrTooLong is returned for a password over MaxLength bytes.
	ErrTooLong = errors.New("password too long")
	// ErrBusy is returned when the context ends before a hashing slot frees up.
	ErrBusy = errors.New("password hasher busy")
	// ErrMalformedHash is returned by Verify for a stored hash that is not a
	// valid argon2id PHC string.
	ErrMalformedHash = errors.New("malformed password hash")
	// ErrInvalidParams is returned by Hash when the Hasher's parameters are
	// unusable (see Params.Validate).
	ErrInvalidParams = errors.New("invalid argon2id parameters")
)

// Params are argon2id cost parameters.
type Params struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen is the length of the random salt in bytes.
	SaltLen uint32
	// KeyLen is the length of the derived key in bytes.
	KeyLen uint32
}

// DefaultParams are the OWASP-recommended argon2id parameters Hallpass uses:
// m=19456 KiB, t=2, p=1, 16-byte salt, 32-byte key. Copy them and raise
// them; Verify then reports older hashes as needing a rehash.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Limits on parameters, for hashing and for parsing stored hashes alike: a
// corrupted or hostile stored hash must not make Verify allocate gigabytes.
const (
	maxMemory  = 4 << 20 // KiB: 4 GiB
	maxTime    = 1 << 10
	minSaltLen = 8
	maxSaltLen = 1 << 10
	minKeyLen  = 16
	maxKeyLen  = 1 << 10
)

// Validate reports whether p can be used to hash.
func (p Params) Validate() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("%w: memory %d KiB must be between 8×threads and %d", ErrInvalidParams, p.Memory, maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("%w: time %d must be between 1 and %d", ErrInvalidParams, p.Time, maxTime)
	case p.Threads < 1:
		return fmt.Errorf("%w: threads must be at least 1", ErrInvalidParams)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("%w: salt length %d must be between %d and %d", ErrInvalidParams, p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("%w: key length %d must be between %d and %d", ErrInvalidParams, p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// Validate checks a new password against the length policy: ErrTooShort
// under MinLength bytes, ErrTooLong over MaxLength bytes.
func Validate(plain string) error {
	switch {
	case len(plain) < MinLength:
		return fmt.Errorf("%w: use at least %d characters", ErrTooShort, MinLength)
	case len(plain) > MaxLength:
		return fmt.Errorf("%w: use at most %d bytes", ErrTooLong, MaxLength)
	}
	return nil
}

// Hasher hashes and verifies passwords with fixed parameters, running at most
// a fixed number of hashes at once. It is safe for concurrent use.
type Hasher struct {
	params    Params
	paramsErr error
	slots     chan struct{} // semaphore: one token per running hash

	dummyOnce sync.Once
	dummy     phc // what VerifyDummy verifies against
	dummyErr  error
}

// NewHasher returns a Hasher using p that runs at most maxConcurrent hashes
// at once (at least one). Invalid parameters make every Hash fail with
// ErrInvalidParams; check them first with p.Validate.
func NewHasher(p Params, maxConcurrent int) *Hasher {
	return &Hasher{
		params:    p,
		paramsErr: p.Validate(),
		slots:     make(chan struct{}, max(maxConcurrent, 1)),
	}
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC string of plain hashed with a fresh random salt. It
// refuses passwords over MaxLength bytes before doing any work, but does not
// apply the minimum length: that is Validate's job, for new passwords.
func (h *Hasher) Hash(ctx context.Context, plain string) (string, error) {
	if len(plain) > MaxLength {
		return "", fmt.Errorf("hash password: %w", ErrTooLong)
	}
	if h.paramsErr != nil {
		return "", fmt.Errorf("hash password: %w", h.paramsErr)
	}
	if err := h.acquire(ctx); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	defer h.release()
	return h.hash(plain).String(), nil
}

// Verify reports whether plain matches the stored PHC string encoded, and
// whether the stored hash is weaker than the Hasher's parameters (lower
// memory, time, threads, salt or key length), in which case the caller should
// store a fresh Hash while it has the plain password at hand. needsRehash is
// only ever true alongside ok.
//
// A password over MaxLength bytes gives ok=false and ErrTooLong without
// hashing; a stored hash that cannot be parsed gives ErrMalformedHash.
func (h *Hasher) Verify(ctx context.Context, plain, encoded string) (ok, needsRehash bool, err error) {
	if len(plain) > MaxLength {
		return false, false, fmt.Errorf("verify password: %w", ErrTooLong)
	}
	stored, err := parsePHC(encoded)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	defer h.release()
	if !stored.matches(plain) {
		return false, false, nil
	}
	return true, h.weaker(stored), nil
}

// VerifyDummy does the work of a Verify that fails, against a hash made once
// with the Hasher's parameters. Call it when the user does not exist, so that
// the response takes as long as for a wrong password and does not reveal
// which usernames exist. Like Verify, it can fail with ErrBusy or ErrTooLong.
func (h *Hasher) VerifyDummy(ctx context.Context, plain string) error {
	if len(plain) > MaxLength {
		return fmt.Errorf("verify password: %w", ErrTooLong)
	}
	if err := h.acquire(ctx); err != nil {
		return fmt.Errorf("verify password: %w", err)
	}
	defer h.release()
	h.dummyOnce.Do(func() {
		if h.paramsErr != nil {
			h.dummyErr = h.paramsErr
			return
		}
		// A random password nobody knows: the comparison below always fails.
		h.dummy = h.hash(rand.Text())
	})
	if h.dummyErr != nil {
		return fmt.Errorf("verify password: %w", h.dummyErr)
	}
	h.dummy.matches(plain)
	return nil
}

// acquire takes a hashing slot, or fails with ErrBusy once ctx ends.
func (h *Hasher) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrBusy, err)
	}
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }

// hash derives a new PHC value for plain with a fresh salt. Callers hold a
// slot and have validated the parameters.
func (h *Hasher) hash(plain string) phc {
	p := h.params
	salt := make([]byte, p.SaltLen)
	rand.Read(salt) // never fails (crypto/rand crashes the program instead)
	return phc{
		memory:  p.Memory,
		time:    p.Time,
		threads: p.Threads,
		salt:    salt,
		key:     argon2.IDKey([]byte(plain), salt, p.Time, p.Memory, p.Threads, p.KeyLen),
	}
}

// weaker reports whether stored was made with lower costs than h's.
func (h *Hasher) weaker(stored phc) bool {
	p := h.params
	return stored.memory < p.Memory ||
		stored.time < p.Time ||
		stored.threads < p.Threads ||
		uint32(len(stored.salt)) < p.SaltLen ||
		uint32(len(stored.key)) < p.KeyLen
}

// matches recomputes the key for plain with stored's parameters and salt and
// compares in constant time.
func (stored phc) matches(plain string) bool {
	key := argon2.IDKey([]byte(plain), stored.salt, stored.time, stored.memory, stored.threads, uint32(len(stored.key)))
	return subtle.ConstantTimeCompare(key, stored.key) == 1
}
