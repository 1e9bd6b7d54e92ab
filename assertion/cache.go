package assertion

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Cache policy. Entra ID refuses an assertion that expires during the token
// request, so it is replaced well before; a short-lived one (tsiam issues
// 5 minute tokens) would otherwise never be reused.
const (
	refreshBefore      = 5 * time.Minute
	shortLifetime      = 10 * time.Minute
	shortRefreshBefore = time.Minute
	// unknownLifetime is how long an assertion without expiry is reused.
	unknownLifetime = 5 * time.Minute
	// failureTTL is how long a failure is answered from memory, so a burst
	// of sign-ins does not hammer IMDS or Entra ID.
	failureTTL = 5 * time.Second
	// staleMargin: when a refresh fails, an assertion still valid for this
	// long is served rather than the error.
	staleMargin = 30 * time.Second
)

// Cache keeps the assertion of a Source and fetches a new one lazily when it
// nears expiry. Concurrent callers share one fetch, run by the first of them
// (no background goroutines). It is safe for concurrent use.
type Cache struct {
	// Now is the clock (nil: time.Now). Set it before the first call.
	Now func() time.Time

	src Source

	mu        sync.Mutex
	tok       Token
	refreshAt time.Time
	err       error
	retryAt   time.Time
	inflight  *flight
}

// flight is a fetch in progress that other callers wait for. Its fields
// are guarded by Cache.mu.
type flight struct {
	finished  bool // the fetch is over and its outcome recorded
	value     string
	err       error
	abandoned bool // the caller running it gave up; waiters try again themselves
}

// NewCache returns an empty cache over src, which must not be nil.
func NewCache(src Source) *Cache {
	return &Cache{src: src}
}

// Source returns the source the cache fetches from.
func (c *Cache) Source() Source { return c.src }

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Assertion returns a valid assertion, fetching one when there is none, when
// the current one is within 5 minutes of expiry (1 minute for lifetimes under
// 10 minutes), or when the last failure is more than a few seconds old.
func (c *Cache) Assertion(ctx context.Context) (string, error) {
	for {
		c.mu.Lock()
		now := c.now()
		if c.tok.Value != "" && now.Before(c.refreshAt) {
			v := c.tok.Value
			c.mu.Unlock()
			return v, nil
		}
		if c.err != nil && now.Before(c.retryAt) {
			v, err := c.stale(now), c.err
			c.mu.Unlock()
			if v != "" {
				return v, nil
			}
			return "", err
		}
		if f := c.inflight; f != nil {
			c.mu.Unlock()
			if err := waitUntil(ctx, c.finished(f)); err != nil {
				return "", fmt.Errorf("assertion: waiting for %s: %w", describe(c.src), err)
			}
			c.mu.Lock()
			abandoned := f.abandoned
			value := f.value
			err := f.err
			c.mu.Unlock()
			if abandoned {
				continue
			}
			return value, err
		}
		f := &flight{}
		c.inflight = f
		c.mu.Unlock()
		c.run(ctx, f)
		return f.value, f.err
	}
}

// run fetches for everyone waiting on f and records the outcome.
func (c *Cache) run(ctx context.Context, f *flight) {
	var tok Token
	var err error
	completed := false
	defer func() {
		if !completed {
			err = fmt.Errorf("assertion: %s panicked", describe(c.src))
		}
		c.mu.Lock()
		now := c.now()
		c.inflight = nil
		if err == nil && tok.Value == "" {
			err = fmt.Errorf("assertion: %s returned an empty assertion", describe(c.src))
		}
		if err == nil && !tok.Expires.IsZero() && !tok.Expires.After(now) {
			err = fmt.Errorf("assertion: %s returned an assertion that expired at %s; check the clock of this machine",
				describe(c.src), tok.Expires.UTC().Format(time.RFC3339))
		}
		switch {
		case err == nil:
			// One field per statement: Yaegi v0.16.1 loses fields in a
			// multiple assignment that includes a struct value.
			c.tok = tok
			c.refreshAt = refreshTime(now, tok)
			c.err = nil
			f.value = tok.Value
		case ctx.Err() != nil:
			// The caller gave up: not the source's fault, so nothing is
			// remembered and waiters fetch again with their own context.
			f.abandoned = true
			f.err = err
		default:
			c.err = err
			c.retryAt = now.Add(failureTTL)
			f.value = c.stale(now)
			if f.value == "" {
				f.err = err
			}
		}
		f.finished = true
		c.mu.Unlock()
	}()
	tok, err = c.src.Fetch(ctx)
	completed = true
}

// finished returns a check of whether f is over, for waitUntil.
func (c *Cache) finished(f *flight) func() bool {
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return f.finished
	}
}

// waitUntil polls done, pausing a little longer each time, until it
// reports true or ctx ends.
//
// It does not select on channels: Yaegi v0.16.1 keeps one list of cases
// per select statement, shared by every goroutine executing it
// (interp/run.go, _select), so concurrent requests would wait on each
// other's channels: a waiter gave up with no error, or woke at another
// cache's fetch.
func waitUntil(ctx context.Context, done func() bool) error {
	pause := 50 * time.Microsecond
	for !done() {
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(pause)
		if pause < 5*time.Millisecond {
			pause *= 2
		}
	}
	return nil
}

// stale returns the current assertion if it is still valid for a while.
func (c *Cache) stale(now time.Time) string {
	if c.tok.Value != "" && !c.tok.Expires.IsZero() && now.Add(staleMargin).Before(c.tok.Expires) {
		return c.tok.Value
	}
	return ""
}

// refreshTime is when an assertion fetched at now should be replaced.
func refreshTime(now time.Time, tok Token) time.Time {
	if tok.Expires.IsZero() {
		return now.Add(unknownLifetime)
	}
	if tok.Expires.Sub(now) < shortLifetime {
		return tok.Expires.Add(-shortRefreshBefore)
	}
	return tok.Expires.Add(-refreshBefore)
}

// Advice explains Entra ID error codes (from the error_codes of a token
// request that used this cache's assertion) that point at the federated
// credential, naming the issuer, subject and audience the app registration
// must trust. It returns "" for other codes.
func (c *Cache) Advice(errorCodes []int) string {
	c.mu.Lock()
	last := c.tok.Value
	c.mu.Unlock()
	for _, code := range errorCodes {
		switch code {
		case 70021, 700211, 700212, 700213, 7002138:
			msg := "the app registration has no federated identity credential matching the assertion from " + describe(c.src)
			if d := describeAssertion(last); d != "" {
				msg += " (" + d + ")"
			}
			msg += "; add one with exactly these issuer, subject and audience values (matching is case-sensitive)"
			if s, ok := c.src.(*ServiceAccountToken); ok {
				if note := s.audienceNote(); note != "" {
					msg += "; " + note
				}
			}
			return msg
		case 700024:
			return "Entra ID found the assertion from " + describe(c.src) + " expired or not yet valid; check this machine's clock"
		}
	}
	return ""
}

// describe names a source for messages and keys.
func describe(src Source) string {
	switch s := src.(type) {
	case *ManagedIdentity:
		return s.String()
	case *WorkloadIdentity:
		return s.String()
	case *ServiceAccountToken:
		return s.String()
	case *Tsiam:
		return s.String()
	}
	return fmt.Sprintf("source %T", src)
}

// maxShared bounds the registry: a few clientAssertion values per Traefik
// are normal; more means configurations churn.
const maxShared = 16

// The registry behind Shared: package-level on purpose, so the cache
// outlives the middleware instances Traefik rebuilds on every reload.
var (
	sharedMu     sync.Mutex
	sharedCaches = map[string]*sharedEntry{}
	sharedClock  uint64
)

type sharedEntry struct {
	cache *Cache
	used  uint64
}

// Shared parses value like Parse and returns the process-wide Cache for it,
// whose source bounds each request with requestTimeout (zero:
// DefaultRequestTimeout). Traefik calls the plugin's New on every
// configuration reload and never closes the old instance; Shared lets all of
// them use one cache, so a reload neither refetches the assertion nor leaks.
// Caches are keyed by the resolved source (the value, the authority host and
// the environment they read) and the timeout; at most 16 are kept, the least
// recently requested being dropped first (its holders keep using it).
func Shared(value, authorityHost string, requestTimeout time.Duration, getenv func(string) string) (*Cache, error) {
	src, err := Parse(value, authorityHost, getenv)
	if err != nil {
		return nil, err
	}
	setRequestTimeout(src, requestTimeout)
	key := sharedKey(src) + "\x00" + requestTimeout.String()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	sharedClock++
	if e, ok := sharedCaches[key]; ok {
		e.used = sharedClock
		return e.cache, nil
	}
	if len(sharedCaches) >= maxShared {
		oldest := ""
		var oldestUsed uint64
		for k, e := range sharedCaches {
			if oldest == "" || e.used < oldestUsed {
				oldest = k
				oldestUsed = e.used
			}
		}
		delete(sharedCaches, oldest)
	}
	c := NewCache(src)
	sharedCaches[key] = &sharedEntry{cache: c, used: sharedClock}
	return c, nil
}

// sharedKey identifies a resolved source, secrets included (the key never
// leaves memory).
func sharedKey(src Source) string {
	parts := []string{describe(src)}
	switch s := src.(type) {
	case *ManagedIdentity:
		parts = append(parts, s.IdentityHeader)
	case *ServiceAccountToken:
		parts = append(parts, s.Audience)
	}
	return strings.Join(parts, "\x00")
}

// setRequestTimeout sets the timeout of the sources that make HTTP requests
// (a service account token is a file).
func setRequestTimeout(src Source, d time.Duration) {
	switch s := src.(type) {
	case *ManagedIdentity:
		s.RequestTimeout = d
	case *WorkloadIdentity:
		s.RequestTimeout = d
	case *Tsiam:
		s.RequestTimeout = d
	}
}
