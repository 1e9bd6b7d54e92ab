package entraauth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// The session cache makes the signed-in request, almost every request a
// user makes, cheap under Yaegi, where every interpreted statement costs:
// reading the cookie, opening it (AES-GCM), decoding the session, checking
// the rules, sanitizing the header values and stripping the plugin's
// cookies happen once per session and Cookie header, after which a request
// with the same Cookie header costs a map lookup and the header edits.
//
// It is the package's reload-safe cache of sessions: package-level, because
// Traefik builds new middlewares on every reload (and one per router) and
// never closes the old ones, so that a per-middleware cache would start
// empty each time; bounded, so that neither reloads nor many users make it
// grow; and keyed by a scope that captures everything a cached outcome
// depends on (see newCacheScope), so that a cookie sealed with one secret,
// or for another cookie name, is never served to a middleware configured
// with another. It starts no goroutine: eviction happens on insertion.
var sessions = newSessionCache(cacheGeneration, cacheGenerationBytes)

const (
	// cacheGeneration bounds the entries of one generation: the cache keeps
	// at most two generations, the current one and the previous one. A
	// signed-in user takes one entry per Cookie header (the outcome; the
	// session itself is in remembered), about 1 KB under Yaegi: the cache
	// stays under 5 MB and serves 2000 users or more at once.
	cacheGeneration = 2048
	// cacheGenerationBytes bounds the key bytes (mostly Cookie headers) of
	// one generation, so that large chunked cookies cannot blow the bound.
	cacheGenerationBytes = 4 << 20
	// maxCachedKey is the longest key cached: longer Cookie headers take
	// the uncached path every time.
	maxCachedKey = 16 << 10
)

// cacheEntry is what a cache remembers under a key: the outcome of one
// signed-in request (in sessions) or one session under its handle (in
// remembered).
type cacheEntry struct {
	// sealer opened the session. The entry holds it, so that the sealer's
	// address, which is part of every key it was cached under, cannot be
	// reused for another sealer while the entry lives.
	sealer *session.Sealer
	// session is the remembered session (remembered only), shared by
	// every caller of openSession: read only.
	session *session.Session
	// expires is the session's end (Unix seconds): the entry is never served
	// at or after it. Sessions are sealed with the same expiry.
	expires int64
	// end is expires as a time, set by put: what passCached compares with
	// the clock in one call.
	end time.Time
	// headers are what passCached sets on the request: the identity
	// headers with a value (sanitized by identityValues), in order, and
	// the Cookie header for the upstream when cookies other than the
	// plugin's remain.
	headers []cachedHeader
	// dropCookie is set when no other cookie remains: the Cookie header
	// goes.
	dropCookie bool
	// ref names the session's sign-in (sessionRef) and signedIn is its
	// sign-in time: a sign-out forgets the entries of its session, and
	// put refuses entries of a signed-out one.
	ref      string
	signedIn int64
	// size is what the entry costs beyond its key, counted against the
	// cache's byte bound (remembered sessions; 0 elsewhere).
	size int
}

// cachedHeader is one header passCached sets. value has one element and
// no spare capacity, and is shared by every request the entry serves: an
// append by a later handler copies it, and nothing in Traefik or Go's
// reverse proxy writes into a header's slice in place (the proxy clones
// the header before it edits it).
type cachedHeader struct {
	name  string
	value []string
}

// sessionCache is a bounded map with O(1) eviction: two generations of
// maps; when the current one is full it becomes the previous one and the
// previous one is dropped whole. A hit in the previous generation moves the
// entry to the current one, so that sessions in use stay. It is safe for
// concurrent use.
type sessionCache struct {
	mu       sync.Mutex
	current  map[string]*cacheEntry
	previous map[string]*cacheEntry
	bytes    int // key and entry bytes in current
	limit    int // entries per generation
	maxBytes int // key and entry bytes per generation
}

func newSessionCache(limit, maxBytes int) *sessionCache {
	return &sessionCache{
		current:  map[string]*cacheEntry{},
		previous: map[string]*cacheEntry{},
		limit:    limit,
		maxBytes: maxBytes,
	}
}

// get returns the entry under key, or nil.
func (c *sessionCache) get(key string) *cacheEntry {
	c.mu.Lock()
	e := c.current[key]
	if e == nil {
		e = c.promoteLocked(key)
	}
	c.mu.Unlock()
	return e
}

// promoteLocked moves key's entry from the previous generation to the
// current one and returns it, or returns nil.
func (c *sessionCache) promoteLocked(key string) *cacheEntry {
	e := c.previous[key]
	if e != nil {
		delete(c.previous, key)
		c.addLocked(key, e)
	}
	return e
}

// put remembers e under key, its end set from its expiry; keys longer
// than maxCachedKey are not cached, nor are outcomes of a signed-out
// session: checked under the cache's lock, which forget takes after the
// sign-out is listed, so that a request that opened the session before the
// sign-out cannot put it back after forget.
func (c *sessionCache) put(key string, e *cacheEntry) {
	if len(key) > maxCachedKey {
		return
	}
	e.end = time.Unix(e.expires, 0)
	c.mu.Lock()
	if e.ref == "" || !signedOut.endedRef(e.ref, e.signedIn) {
		c.addLocked(key, e)
	}
	c.mu.Unlock()
}

// forget drops the entries of the session named ref (sessionRef), or
// every entry when ref is empty.
func (c *sessionCache) forget(ref string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref == "" {
		c.current = map[string]*cacheEntry{}
		c.previous = map[string]*cacheEntry{}
		c.bytes = 0
		return
	}
	for _, gen := range []map[string]*cacheEntry{c.current, c.previous} {
		for k, e := range gen {
			if e.ref == ref {
				delete(gen, k)
			}
		}
	}
}

func (c *sessionCache) addLocked(key string, e *cacheEntry) {
	if old, ok := c.current[key]; ok {
		c.current[key] = e
		c.bytes += e.size - old.size
		return
	}
	if len(c.current) >= c.limit || c.bytes+len(key)+e.size > c.maxBytes {
		c.previous = c.current
		c.current = map[string]*cacheEntry{}
		c.bytes = 0
	}
	c.current[key] = e
	c.bytes += len(key) + e.size
}

// len is the number of entries, both generations.
func (c *sessionCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.current) + len(c.previous)
}

// cacheScope is what a middleware's keys start with, and what it knows
// before the first request about which requests its fast path may serve.
type cacheScope struct {
	// prefix starts the keys of request outcomes: it names the sealer
	// (hence the secrets that open the cookies), the cookie name, the
	// identity headers and the rules. Middlewares whose prefixes are equal
	// decide a signed-in request alike.
	prefix string
	// special is set when some requests pass without a session or with a
	// bearer token: refuseCached tells which.
	special bool
	// portal holds the paths authorize answers itself, whatever the
	// session.
	portal map[string]bool
	// common holds header names that requests commonly carry and that are
	// no spelling of a stripped header: a request whose headers are all
	// in it has no spelling of any of them, and needs no stripping.
	common map[string]bool
}

// commonHeaders are what browsers, API clients, WebSocket upgrades and
// Traefik's entry points commonly send, canonical, as Go's servers hand
// them over. A request with a header not listed here takes the
// middleware's own stripping loop (slower, as safe).
var commonHeaders = []string{
	"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Access-Control-Request-Headers",
	"Access-Control-Request-Method", "Authorization", "Baggage", "Cache-Control", "Connection",
	"Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "Cookie", "Device-Memory",
	"Dnt", "Downlink", "Dpr", "Ect", "Expect", "Forwarded", "If-Match", "If-Modified-Since", "If-None-Match",
	"If-Range", "If-Unmodified-Since", "Keep-Alive", "Last-Event-Id", "Origin", "Pragma", "Priority",
	"Purpose", "Range", "Referer", "Rtt", "Save-Data", "Sec-Ch-Prefers-Color-Scheme",
	"Sec-Ch-Prefers-Reduced-Motion", "Sec-Ch-Ua", "Sec-Ch-Ua-Arch", "Sec-Ch-Ua-Bitness",
	"Sec-Ch-Ua-Full-Version", "Sec-Ch-Ua-Full-Version-List", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Model",
	"Sec-Ch-Ua-Platform", "Sec-Ch-Ua-Platform-Version", "Sec-Ch-Ua-Wow64", "Sec-Fetch-Dest",
	"Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Sec-Gpc", "Sec-Purpose", "Sec-Websocket-Extensions",
	"Sec-Websocket-Key", "Sec-Websocket-Protocol", "Sec-Websocket-Version", "Sentry-Trace", "Te",
	"Traceparent", "Tracestate", "Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via",
	"Viewport-Width", "Width", "X-Csrf-Token", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "X-Forwarded-Proto", "X-Forwarded-Server", "X-Real-Ip", "X-Request-Id",
	"X-Requested-With", "X-Xsrf-Token",
}

// newCacheScope computes m's scope. It must run once m is complete.
//
// The sealer is named by its address, which makes a scope per secret
// configuration when sealers are shared between middlewares with the same
// secrets (sharedSealer), and per middleware otherwise: correct either way,
// since entries keep their sealer alive and a live sealer's address is its
// own. Everything else a signed-in request's outcome depends on is spelt
// out, and hashed to keep keys short: if authorize's signed-in decision
// comes to depend on more of the configuration, it must be added here.
func newCacheScope(m *Middleware) *cacheScope {
	config := fmt.Sprintf("%q\x00%q\x00%s\x00%v\x00%v\x00%v\x00%v\x00%v\x00%v", m.sessionAAD, m.legacyAAD, m.loginPrefix+"\x00"+m.loginBinding, m.lifetime, m.maxLifetime, m.renew, m.upstream, m.headers, m.rules)
	c := &cacheScope{
		prefix:  fmt.Sprintf("r%p:%s:", m.sealer, digest(config)),
		special: m.api != nil || !m.exclusions.empty(),
		portal:  map[string]bool{},
		common:  map[string]bool{},
	}
	for _, path := range m.portalPaths() {
		c.portal[path] = true
	}
	folded := map[string]bool{}
	for _, name := range m.stripped {
		folded[foldHeaderName(name)] = true
	}
	for _, name := range commonHeaders {
		if !folded[foldHeaderName(name)] {
			c.common[name] = true
		}
	}
	return c
}

// refuseCached reports whether authorize must decide r even with a cached
// session: a bearer token for the API, or a path or method that passes
// without a session.
func refuseCached(m *Middleware, r *http.Request) bool {
	return m.api != nil && len(r.Header["Authorization"]) > 0 || m.exclusions.match(r)
}

// sessionCachePrefix starts the keys of m's remembered sessions (see
// remembered) sealed under aad (m.sessionAAD): the sealer (see
// newCacheScope) and the sealed value's additional data, which names the
// cookie and binds it to the app registration. Middlewares that share them
// open the same sessions alike, except for their lifetimes, which
// openSession applies to every hit (sessionEnd).
func sessionCachePrefix(m *Middleware, aad string) string {
	return fmt.Sprintf("s%p:%q:", m.sealer, aad)
}

// passCached prepares a signed-in request for the upstream from the
// session cache, as authorize did for the first request with the same
// Cookie header, and reports true; it reports false, touching nothing,
// when authorize must decide: no cache entry, an expired session, the
// portal's own endpoints, a path that exclusions may let through, a bearer
// token for the API, declared trailers (rare; authorize strips identity
// headers from them too). c is m's scope.
//
// It runs on almost every request, interpreted by Yaegi, which on every
// call allocates a slot for each value the function computes and spends
// thousands of instructions on each call of a compiled function with
// arguments and on each interpreted statement (see the readme's
// Performance section): hence one plain function of few expressions, four
// compiled calls, no allocation of its own, and the loops in compiled
// code. The spoofed identity headers are found by http.Header.WriteSubset,
// which ranges over the request's headers in compiled code, skips the
// common ones (c.common, which holds no spelling of an identity header)
// and fails on the first other one it would write, to noWriter; only then
// does the middleware's own method strip them. The cached headers are set
// from shared slices (see cachedHeader). The previous generation is not
// looked at: its entries return through authorize, which puts them back.
func passCached(m *Middleware, c *cacheScope, r *http.Request) bool {
	h := r.Header
	lines := h["Cookie"]
	if len(lines) != 1 {
		return false
	}
	sessions.mu.Lock()
	e := sessions.current[c.prefix+lines[0]]
	sessions.mu.Unlock()
	if e == nil || m.until(e.end) <= 0 || c.portal[r.URL.Path] || c.special && refuseCached(m, r) || r.Trailer != nil {
		return false
	}
	if h.WriteSubset(noWriter, c.common) != nil {
		m.stripIdentityHeaders(h)
	}
	for _, v := range e.headers {
		h[v.name] = v.value
	}
	if e.dropCookie {
		delete(h, "Cookie")
	}
	return true
}

// noWriter fails every write: a nil *os.File returns os.ErrInvalid, and
// holds no state that concurrent requests could share. It is an io.Writer
// variable, so that Yaegi passes it on without checking that *os.File
// implements io.Writer on every call.
var noWriter io.Writer = (*os.File)(nil)

// rememberSignedIn strips the plugin's cookies from a request that
// authorize lets pass signed in as s with the identity header values
// (aligned with m.headers) and, with upstreamAccessToken, the token it set,
// as stripOwnCookies does, and remembers the outcome for passCached until
// until (Unix seconds: s's renewal time, or the token's refresh time). c is
// m's scope.
func rememberSignedIn(m *Middleware, c *cacheScope, r *http.Request, s *session.Session, values []string, until int64) {
	lines := r.Header["Cookie"]
	m.stripOwnCookies(r)
	if len(lines) != 1 || len(values) != len(m.headers) {
		return
	}
	e := &cacheEntry{sealer: m.sealer, expires: until, dropCookie: true, ref: sessionRef(m.sessionAAD, s), signedIn: s.AuthTime}
	for i, hc := range m.headers {
		if values[i] != "" {
			e.headers = append(e.headers, cachedHeader{name: hc.name, value: []string{values[i]}})
		}
	}
	if m.upstream != nil {
		e.headers = append(e.headers, cachedHeader{name: m.upstream.header, value: []string{r.Header.Get(m.upstream.header)}})
		if m.appService {
			e.headers = append(e.headers, cachedHeader{name: appServiceTokenHeader, value: []string{r.Header.Get(appServiceTokenHeader)}})
		}
	}
	if kept := r.Header["Cookie"]; len(kept) == 1 {
		e.headers = append(e.headers, cachedHeader{name: "Cookie", value: []string{kept[0]}})
		e.dropCookie = false
	}
	sessions.put(c.prefix+lines[0], e)
}

// sealers shares one Sealer between the middlewares configured with the
// same secrets, across routers and reloads, so that they share their cache
// scope (and derive the keys once). Keyed by a digest of the secrets, not
// the secrets; bounded like the shared clients.
var sealers = struct {
	sync.Mutex
	byKey map[string]*session.Sealer
}{byKey: map[string]*session.Sealer{}}

const maxSealers = 64

// sharedSealer returns the Sealer for secret and previous, made once.
func sharedSealer(secret string, previous []string) (*session.Sealer, error) {
	var all strings.Builder
	for _, s := range append([]string{secret}, previous...) {
		fmt.Fprintf(&all, "%d:%s\n", len(s), s)
	}
	key := digest(all.String())
	sealers.Lock()
	defer sealers.Unlock()
	if s, ok := sealers.byKey[key]; ok {
		return s, nil
	}
	s, err := session.NewSealer(secret, previous)
	if err != nil {
		return nil, err
	}
	if len(sealers.byKey) >= maxSealers {
		sealers.byKey = map[string]*session.Sealer{}
	}
	sealers.byKey[key] = s
	return s, nil
}

// digest is a SHA-256 of s, in hex: keys that stand for configurations and
// secrets without holding them.
func digest(s string) string {
	sum := sha256.Sum256([]byte("entraauth cache key\x00" + s))
	return hex.EncodeToString(sum[:])
}
