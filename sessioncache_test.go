package entraauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// newCacheMiddleware builds a middleware as New does, and its cache scope.
func newCacheMiddleware(t *testing.T, change func(c *Config)) (*Middleware, *cacheScope) {
	t.Helper()
	c := validConfig()
	if change != nil {
		change(c)
	}
	h, err := New(context.Background(), http.NotFoundHandler(), c, "cache")
	if err != nil {
		t.Fatal(err)
	}
	m := h.(*Middleware)
	return m, newCacheScope(m)
}

// cacheUser is the session the tests seal, expiring an hour from now.
func cacheUser(oid string, now time.Time) *session.Session {
	return &session.Session{
		OID:               oid,
		TID:               testTenantID,
		Name:              "Cache User",
		PreferredUsername: "cache@contoso.example",
		Email:             "cache@contoso.example",
		Groups:            []string{"a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"},
		Roles:             []string{"Reader"},
		IssuedAt:          now.Unix(),
		Expires:           now.Add(time.Hour).Unix(),
	}
}

// sealCookie seals s as m's session cookie value.
func sealCookie(t testing.TB, m *Middleware, s *session.Session) string {
	t.Helper()
	plain, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := m.sealer.Seal(plain, m.sessionAAD, time.Unix(s.Expires, 0))
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// cacheRequest is a request as Traefik hands it over: the Cookie header
// given, and spoofed identity headers.
func cacheRequest(path, cookie string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com"+path, nil)
	r.Header.Set("Cookie", cookie)
	r.Header.Set("X-Forwarded-User", "mallory")
	r.Header["X-FORWARDED-EMAIL"] = []string{"mallory@evil.example"}
	r.Header.Set("X-Forwarded-For", "192.0.2.10")
	return r
}

// authorizeSignedIn is the signed-in branch of authorize: strip the spoofed
// headers, open the session, set the identity headers and remember the
// outcome.
func authorizeSignedIn(m *Middleware, c *cacheScope, r *http.Request) bool {
	m.stripIdentityHeaders(r.Header)
	s := m.openSession(r)
	if s == nil {
		return false
	}
	values := m.identityValues(s)
	m.setIdentityHeaders(r.Header, values)
	rememberSignedIn(m, c, r, s, values, m.renewAt(s))
	return true
}

func TestACachedRequestGetsTheSameIdentity(t *testing.T) {
	m, c := newCacheMiddleware(t, nil)
	cookie := m.cookie.Name + "=" + sealCookie(t, m, cacheUser("11111111-0000-4000-8000-000000000001", time.Now())) + "; theme=dark; a=b=c"

	first := cacheRequest("/reports", cookie)
	if passCached(m, c, first) {
		t.Fatal("a first request was served from the cache")
	}
	if !authorizeSignedIn(m, c, first) {
		t.Fatal("the session does not open")
	}
	second := cacheRequest("/other", cookie)
	if !passCached(m, c, second) {
		t.Fatal("the second request with the same cookies missed the cache")
	}
	if len(second.Header) != len(first.Header) {
		t.Errorf("headers from the cache %v, want %v", second.Header, first.Header)
	}
	for k, want := range first.Header {
		if got := second.Header[k]; strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s = %q from the cache, %q from the session", k, got, want)
		}
	}
	for k := range second.Header {
		if strings.EqualFold(k, "X-Forwarded-Email") && k != "X-Forwarded-Email" {
			t.Errorf("a spoofed %s passed", k)
		}
	}
	if got := second.Header.Get("X-Forwarded-User"); got != "11111111-0000-4000-8000-000000000001" {
		t.Errorf("X-Forwarded-User = %q", got)
	}
	if got := second.Header.Get("Cookie"); got != "theme=dark; a=b=c" {
		t.Errorf("Cookie for the upstream = %q, want the other cookies untouched", got)
	}
	if s := m.openSession(cacheRequest("/", cookie)); s == nil || s.OID != "11111111-0000-4000-8000-000000000001" {
		t.Errorf("openSession = %+v, want the cached session", s)
	}

	// Only the session cookie: no Cookie header left for the upstream.
	alone := m.cookie.Name + "=" + sealCookie(t, m, cacheUser("11111111-0000-4000-8000-000000000002", time.Now()))
	authorizeSignedIn(m, c, cacheRequest("/", alone))
	r := cacheRequest("/", alone)
	if !passCached(m, c, r) {
		t.Fatal("missed the cache")
	}
	if _, ok := r.Header["Cookie"]; ok {
		t.Errorf("Cookie = %q, want none", r.Header["Cookie"])
	}
}

func TestCachedRequestsLoseEverySpellingOfTheIdentityHeaders(t *testing.T) {
	m, c := newCacheMiddleware(t, func(c *Config) {
		c.Headers = map[string]string{"X-User": "oid", "X-Forwarded-Email": "email", "X-Auth-Roles-": "roles"}
	})
	cookie := m.cookie.Name + "=" + sealCookie(t, m, cacheUser("77777777-0000-4000-8000-000000000001", time.Now()))
	authorizeSignedIn(m, c, cacheRequest("/", cookie))
	spellings := []string{
		"X-Forwarded-User", "x-forwarded-user", "X_FORWARDED_USER", "x_Forwarded-email", "X-FORWARDED-NAME",
		"X-Forwarded-Preferred_Username", "x-forwarded-groups", "X_Forwarded_Roles", "X-User", "x_user",
		"X-Auth-Roles-", "x-auth-roles_", "X-Forwarded-Host", "X-Userx", "Xx-User", "X-Custom",
		// As Go's servers hand them over: canonical, '_' kept.
		"X_forwarded_user", "X-Forwarded_user", "X_forwarded-Email", "X-Forwarded-Preferred_username",
		"X_forwarded_preferred_username", "X_user", "X-Auth-Roles_",
		// Other separators, which CGI gateways read as '-' too.
		"X.Forwarded.User", "x.forwarded-email", "X~Forwarded~Roles", "X-Forwarded+Groups", "x.user", "X|User",
		"X-Auth-Roles.", "X.Auth.Roles~", "X.Userx", "X.Custom",
	}
	for _, spelling := range spellings {
		spelling := spelling
		t.Run(spelling, func(t *testing.T) {
			r := cacheRequest("/", cookie)
			r.Header[spelling] = []string{"mallory"}
			r.Header["Accept"] = []string{"text/html"}
			want := r.Header.Clone()
			m.stripIdentityHeaders(want)
			if !passCached(m, c, r) {
				t.Fatal("missed the cache")
			}
			for k := range r.Header {
				if _, kept := want[k]; !kept && !isIdentityHeader(m, k) {
					t.Errorf("%s passed, the middleware strips it", k)
				}
			}
			for k := range want {
				if _, ok := r.Header[k]; !ok && k != "Cookie" {
					t.Errorf("%s was removed, the middleware keeps it", k)
				}
			}
		})
	}
}

func isIdentityHeader(m *Middleware, name string) bool {
	for _, h := range m.headers {
		if h.name == name {
			return true
		}
	}
	return false
}

func TestCachedRequestsKeepTheOtherCookiesAsAuthorizeDoes(t *testing.T) {
	m, c := newCacheMiddleware(t, nil)
	tests := []struct {
		name, cookie string
	}{
		{"the session alone", "S"},
		{"the session first", "S; theme=dark"},
		{"the session last", "theme=dark; S"},
		{"the session between", "a=1; S; b=x=y"},
		{"a trailing separator", "S; "},
		{"no space after the separator", "S;theme=dark"},
		{"a login-state cookie too", "S; " + m.loginPrefix + "abcdefabcdef=x; c=3"},
		{"a look-alike cookie", "entraauth_mainly=keep; S"},
	}
	for i, tt := range tests {
		i, tt := i, tt
		t.Run(tt.name, func(t *testing.T) {
			value := sealCookie(t, m, cacheUser(fmt.Sprintf("88888888-0000-4000-8000-%012d", i), time.Now()))
			line := strings.Replace(tt.cookie, "S", m.cookie.Name+"="+value, 1)
			slow := cacheRequest("/", line)
			if !authorizeSignedIn(m, c, slow) {
				t.Fatal("the session does not open")
			}
			fast := cacheRequest("/", line)
			if !passCached(m, c, fast) {
				t.Fatal("missed the cache")
			}
			want, wantOK := slow.Header["Cookie"]
			got, gotOK := fast.Header["Cookie"]
			if gotOK != wantOK || strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("Cookie from the cache %q (present %v), from authorize %q (present %v)", got, gotOK, want, wantOK)
			}
		})
	}
}

func TestRequestsForAuthorizeAreNotServedFromTheCache(t *testing.T) {
	m, c := newCacheMiddleware(t, func(c *Config) { c.ExcludedPaths = []string{"/public/*"} })
	cookie := m.cookie.Name + "=" + sealCookie(t, m, cacheUser("22222222-0000-4000-8000-000000000001", time.Now()))
	authorizeSignedIn(m, c, cacheRequest("/", cookie))
	tests := []struct {
		name string
		r    *http.Request
	}{
		{"the portal's profile page", cacheRequest("/portals/main/profile", cookie)},
		{"the callback", cacheRequest("/portals/main/oauth2/callback", cookie)},
		{"the sign-out", cacheRequest("/portals/main/logout", cookie)},
		{"an excluded path", cacheRequest("/public/logo.png", cookie)},
		{"two Cookie headers", func() *http.Request {
			r := cacheRequest("/", cookie)
			r.Header.Add("Cookie", "theme=dark")
			return r
		}()},
		{"declared trailers", func() *http.Request {
			r := cacheRequest("/", cookie)
			r.Trailer = http.Header{"X-Checksum": nil}
			return r
		}()},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			before := tt.r.Header.Clone()
			if passCached(m, c, tt.r) {
				t.Fatal("served from the cache")
			}
			if len(tt.r.Header) != len(before) || tt.r.Header.Get("X-Forwarded-User") != "mallory" {
				t.Errorf("the request was changed: %v", tt.r.Header)
			}
		})
	}
	if !passCached(m, c, cacheRequest("/private", cookie)) {
		t.Error("a path that is not excluded missed the cache")
	}
}

func TestAnExpiredSessionIsNotServedFromTheCache(t *testing.T) {
	m, c := newCacheMiddleware(t, nil)
	now := time.Now()
	s := cacheUser("33333333-0000-4000-8000-000000000001", now)
	cookie := m.cookie.Name + "=" + sealCookie(t, m, s)
	if !authorizeSignedIn(m, c, cacheRequest("/", cookie)) {
		t.Fatal("the session does not open")
	}
	tests := []struct {
		name string
		now  time.Time
		pass bool
	}{
		{"a second before the expiry", time.Unix(s.Expires-1, 0), true},
		{"at the expiry", time.Unix(s.Expires, 0), false},
		{"two hours later", now.Add(2 * time.Hour), false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			setClock(m, func() time.Time { return tt.now })
			if got := passCached(m, c, cacheRequest("/", cookie)); got != tt.pass {
				t.Errorf("passCached = %v, want %v", got, tt.pass)
			}
			if got := m.openSession(cacheRequest("/", cookie)) != nil; got != tt.pass {
				t.Errorf("openSession opened = %v, want %v", got, tt.pass)
			}
		})
	}
}

func TestAnotherSecretOrCookieNameMissesTheCache(t *testing.T) {
	m, c := newCacheMiddleware(t, nil)
	cookie := m.cookie.Name + "=" + sealCookie(t, m, cacheUser("44444444-0000-4000-8000-000000000001", time.Now())) + "; other=1"
	if !authorizeSignedIn(m, c, cacheRequest("/", cookie)) {
		t.Fatal("the session does not open")
	}

	tests := []struct {
		name   string
		change func(c *Config)
		// shareSealer gives the other middleware this one's sealer, as
		// when sealers are shared: then the scope alone must tell them
		// apart.
		shareSealer bool
		hit         bool
	}{
		{"another secret", func(c *Config) { c.Session.Secret = "another-secret-with-at-least-32-characters" }, false, false},
		{"the secret moved to previousSecrets", func(c *Config) {
			c.Session.Secret = "another-secret-with-at-least-32-characters"
			c.Session.PreviousSecrets = []string{testSecret}
		}, false, false},
		{"another cookie name, same sealer", func(c *Config) { c.Session.CookieName = "other" }, true, false},
		{"another portal, same sealer", func(c *Config) { c.Portal = "second" }, true, false},
		{"other identity headers, same sealer", func(c *Config) { c.Headers = map[string]string{"X-User": "oid"} }, true, false},
		{"the same configuration, same sealer", nil, true, true},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			other, _ := newCacheMiddleware(t, tt.change)
			if tt.shareSealer {
				other.sealer = m.sealer
			}
			oc := newCacheScope(other)
			if got := passCached(other, oc, cacheRequest("/", cookie)); got != tt.hit {
				t.Fatalf("passCached = %v, want %v", got, tt.hit)
			}
		})
	}

	// A middleware that dropped a previous secret must not open, from the
	// cache, the sessions sealed with it.
	rotated, rc := newCacheMiddleware(t, func(c *Config) {
		c.Session.Secret = "the-new-secret-with-at-least-32-characters"
		c.Session.PreviousSecrets = []string{testSecret}
	})
	if !authorizeSignedIn(rotated, rc, cacheRequest("/", cookie)) {
		t.Fatal("the previous secret does not open the session")
	}
	dropped, dc := newCacheMiddleware(t, func(c *Config) { c.Session.Secret = "the-new-secret-with-at-least-32-characters" })
	if passCached(dropped, dc, cacheRequest("/", cookie)) || dropped.openSession(cacheRequest("/", cookie)) != nil {
		t.Error("a session sealed with a dropped secret still opens")
	}
}

func TestSharedSealers(t *testing.T) {
	a, err := sharedSealer("shared-sealer-secret-0123456789abcdef", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sharedSealer("shared-sealer-secret-0123456789abcdef", nil)
	withPrevious, _ := sharedSealer("shared-sealer-secret-0123456789abcdef", []string{"previous-secret-0123456789abcdefghij"})
	other, _ := sharedSealer("shared-sealer-secret-0123456789abcdeX", nil)
	if a != b {
		t.Error("the same secrets gave two sealers")
	}
	if a == withPrevious || a == other {
		t.Error("other secrets gave the same sealer")
	}
	if _, err := sharedSealer("short", nil); err == nil {
		t.Error("a short secret was accepted")
	}
}

func TestTheCacheSizeIsBounded(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		c := newSessionCache(4, 1<<20)
		for i := 0; i < 100; i++ {
			c.put(fmt.Sprintf("key-%d", i), &cacheEntry{})
			if n := c.len(); n > 8 {
				t.Fatalf("%d entries after %d puts, want at most 8", n, i+1)
			}
		}
		if c.get("key-99") == nil || c.get("key-0") != nil {
			t.Error("want the newest entries kept and the oldest dropped")
		}
	})
	t.Run("bytes", func(t *testing.T) {
		c := newSessionCache(1000, 100)
		for i := 0; i < 100; i++ {
			c.put(fmt.Sprintf("%040d", i), &cacheEntry{})
		}
		if n := c.len(); n > 6 {
			t.Errorf("%d entries of 40 bytes, want at most 6 within 2x100 bytes", n)
		}
		c.put(strings.Repeat("k", maxCachedKey+1), &cacheEntry{})
		if c.get(strings.Repeat("k", maxCachedKey+1)) != nil {
			t.Error("a key longer than maxCachedKey was cached")
		}
	})
	t.Run("entries in use stay", func(t *testing.T) {
		c := newSessionCache(4, 1<<20)
		c.put("hot", &cacheEntry{})
		for i := 0; i < 100; i++ {
			c.put(fmt.Sprintf("cold-%d", i), &cacheEntry{})
			if c.get("hot") == nil {
				t.Fatalf("the entry in use was dropped after %d others", i+1)
			}
		}
	})
	t.Run("many distinct sessions", func(t *testing.T) {
		m, c := newCacheMiddleware(t, nil)
		now := time.Now()
		n := 2*cacheGeneration + 100
		if testing.Short() {
			n = cacheGeneration + 10
		}
		for i := 0; i < n; i++ {
			cookie := m.cookie.Name + "=" + sealCookie(t, m, cacheUser(fmt.Sprintf("55555555-0000-4000-8000-%012d", i), now))
			if !authorizeSignedIn(m, c, cacheRequest("/", cookie)) {
				t.Fatalf("session %d does not open", i)
			}
			if got := sessions.len(); got > 2*cacheGeneration {
				t.Fatalf("%d entries after %d sessions, want at most %d", got, i+1, 2*cacheGeneration)
			}
		}
	})
}

func TestTheCacheIsSafeForConcurrentUse(t *testing.T) {
	m, c := newCacheMiddleware(t, nil)
	now := time.Now()
	var cookies []string
	for i := 0; i < 4; i++ {
		cookies = append(cookies, m.cookie.Name+"="+sealCookie(t, m, cacheUser(fmt.Sprintf("66666666-0000-4000-8000-%012d", i), now)))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		g := g
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				k := (g + i) % len(cookies)
				r := cacheRequest("/", cookies[k])
				if !passCached(m, c, r) && !authorizeSignedIn(m, c, r) {
					errs <- "a signed-in request did not pass"
					return
				}
				if got, want := r.Header.Get("X-Forwarded-User"), fmt.Sprintf("66666666-0000-4000-8000-%012d", k); got != want {
					errs <- "X-Forwarded-User " + got + ", want " + want
					return
				}
				// Other keys, to make the generations turn over.
				sessions.put(fmt.Sprintf("concurrency-%d-%d", g, i), &cacheEntry{})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestABrowsersRequestFromTheCacheIsTheRequestAuthorizeMakes(t *testing.T) {
	m, c := newCacheMiddleware(t, nil)
	cookie := "_ga=GA1.1.1409876543.1733011200; " + m.cookie.Name + "=" + sealCookie(t, m, cacheUser("99999999-0000-4000-8000-000000000001", time.Now())) + "; theme=dark"
	browser := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/reports/2026", nil)
		r.Header = http.Header{
			"Accept":                    {"text/html,application/xhtml+xml"},
			"Accept-Encoding":           {"gzip, deflate, br, zstd"},
			"Accept-Language":           {"en-US,en;q=0.9"},
			"Cookie":                    {cookie},
			"Priority":                  {"u=0, i"},
			"Referer":                   {"https://app.example.com/"},
			"Sec-Ch-Ua":                 {`"Chromium";v="131"`},
			"Sec-Ch-Ua-Mobile":          {"?0"},
			"Sec-Ch-Ua-Platform":        {`"Linux"`},
			"Sec-Fetch-Dest":            {"document"},
			"Sec-Fetch-Mode":            {"navigate"},
			"Sec-Fetch-Site":            {"same-origin"},
			"Sec-Fetch-User":            {"?1"},
			"Upgrade-Insecure-Requests": {"1"},
			"User-Agent":                {"Mozilla/5.0 Chrome/131.0.0.0"},
			"X-Forwarded-For":           {"192.0.2.10"},
			"X-Forwarded-Host":          {"app.example.com"},
			"X-Forwarded-Port":          {"443"},
			"X-Forwarded-Proto":         {"https"},
			"X-Forwarded-Server":        {"traefik-1"},
			"X-Real-Ip":                 {"192.0.2.10"},
		}
		return r
	}
	slow := browser()
	if !authorizeSignedIn(m, c, slow) {
		t.Fatal("the session does not open")
	}
	for i := 0; i < 2; i++ {
		fast := browser()
		if !passCached(m, c, fast) {
			t.Fatal("missed the cache")
		}
		if fmt.Sprint(fast.Header) != fmt.Sprint(slow.Header) {
			t.Errorf("from the cache:\n%v\nfrom authorize:\n%v", fast.Header, slow.Header)
		}
	}
}

func TestLaterHandlersCannotChangeWhatTheCacheSets(t *testing.T) {
	m, c := newCacheMiddleware(t, nil)
	cookie := m.cookie.Name + "=" + sealCookie(t, m, cacheUser("aaaaaaaa-0000-4000-8000-000000000001", time.Now())) + "; theme=dark"
	if !authorizeSignedIn(m, c, cacheRequest("/", cookie)) {
		t.Fatal("the session does not open")
	}
	first := cacheRequest("/", cookie)
	if !passCached(m, c, first) {
		t.Fatal("missed the cache")
	}
	// The values are shared by the requests of one session: no spare
	// capacity, so that an append copies.
	for _, name := range []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Name", "X-Forwarded-Roles", "Cookie"} {
		if v := first.Header[name]; len(v) != 1 || cap(v) != 1 {
			t.Errorf("%s = %q with capacity %d, want one value and no spare capacity", name, v, cap(v))
		}
	}
	// What handlers after the middleware may do with the headers it set.
	h := first.Header
	h.Add("X-Forwarded-User", "appended")
	h["X-Forwarded-Email"] = append(h["X-Forwarded-Email"], "appended@example.com")
	h.Set("X-Forwarded-Name", "replaced")
	h["Cookie"] = append(h["Cookie"], "late=1")
	h.Del("X-Forwarded-Roles")

	second := cacheRequest("/", cookie)
	if !passCached(m, c, second) {
		t.Fatal("missed the cache")
	}
	want := map[string]string{
		"X-Forwarded-User":  "aaaaaaaa-0000-4000-8000-000000000001",
		"X-Forwarded-Email": "cache@contoso.example",
		"X-Forwarded-Name":  "Cache User",
		"X-Forwarded-Roles": "Reader",
		"Cookie":            "theme=dark",
	}
	for name, value := range want {
		if got := second.Header[name]; len(got) != 1 || got[0] != value {
			t.Errorf("%s = %q, want [%q]", name, got, value)
		}
	}
}

func TestTheCommonHeadersAreCanonicalAndNoIdentityHeader(t *testing.T) {
	for _, name := range commonHeaders {
		if http.CanonicalHeaderKey(name) != name {
			t.Errorf("%s is not canonical: Go's servers hand over %s", name, http.CanonicalHeaderKey(name))
		}
	}
	// A configured identity header named like a common one is no longer
	// common: requests carrying it are stripped.
	m, c := newCacheMiddleware(t, func(c *Config) { c.Headers = map[string]string{"X-Request-Id": "oid", "X-Requested-With": "email"} })
	for _, name := range []string{"X-Request-Id", "X-Requested-With", "X-Forwarded-User"} {
		if c.common[name] {
			t.Errorf("%s, stripped by the middleware, counts as common", name)
		}
	}
	if !c.common["Accept"] {
		t.Error("Accept does not count as common")
	}
	cookie := m.cookie.Name + "=" + sealCookie(t, m, cacheUser("bbbbbbbb-0000-4000-8000-000000000001", time.Now()))
	authorizeSignedIn(m, c, cacheRequest("/", cookie))
	r := cacheRequest("/", cookie)
	r.Header["X-Requested_with"] = []string{"mallory@evil.example"}
	if !passCached(m, c, r) {
		t.Fatal("missed the cache")
	}
	if got := r.Header["X-Requested-With"]; len(got) != 1 || got[0] != "cache@contoso.example" {
		t.Errorf("X-Requested-With = %q", got)
	}
	if _, ok := r.Header["X-Requested_with"]; ok {
		t.Error("X-Requested_with, a spelling of an identity header, passed")
	}
}
