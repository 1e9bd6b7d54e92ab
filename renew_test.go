package entraauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

// renewal is a stack with a signed-in browser whose middleware clock the
// test moves: past the lifetime, requests renew the session.
type renewalStack struct {
	*stack
	user   *http.Client // the signed-in browser
	logs   *lockedBuffer
	mu     sync.Mutex
	offset time.Duration
}

func newRenewalStack(t *testing.T, user entraidtest.User, change func(c *Config)) *renewalStack {
	t.Helper()
	return newPreparedRenewalStack(t, user, change, nil)
}

// newPreparedRenewalStack is newRenewalStack with prepare run on the
// tenant before the sign-in.
func newPreparedRenewalStack(t *testing.T, user entraidtest.User, change func(c *Config), prepare func(ten *entraidtest.Tenant)) *renewalStack {
	t.Helper()
	st := newStackFor(t, user, change)
	if prepare != nil {
		prepare(st.tenant)
	}
	rs := &renewalStack{stack: st, user: st.browser(), logs: &lockedBuffer{}}
	st.mw.log = log.New(rs.logs, "", 0)
	setClock(st.mw, func() time.Time {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		return time.Now().Add(rs.offset)
	})
	st.signIn(rs.user)
	return rs
}

// advance moves the middleware's clock.
func (rs *renewalStack) advance(d time.Duration) {
	rs.mu.Lock()
	rs.offset += d
	rs.mu.Unlock()
}

// send makes a request of the given kind with the browser's cookies,
// without following redirects, and returns the response and its body.
func (rs *renewalStack) send(t *testing.T, method, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rs.server.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := noRedirects(rs.user).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func apiCall() http.Header {
	return http.Header{"Accept": {"application/json"}, "Sec-Fetch-Mode": {"cors"}}
}

func browserNavigation() http.Header {
	return http.Header{"Accept": {"text/html,application/xhtml+xml"}, "Sec-Fetch-Mode": {"navigate"}}
}

// cookies are the cookies the browser holds for the site.
func (rs *renewalStack) cookies() []*http.Cookie {
	u, _ := url.Parse(rs.server.URL)
	return rs.user.Jar.Cookies(u)
}

// sendWith sends a GET with exactly these cookies, as a browser that still
// had them would, and returns the response with its body read.
func (rs *renewalStack) sendWith(t *testing.T, cookies []*http.Cookie, path string, header http.Header) *http.Response {
	t.Helper()
	resp, err := rs.get(cookies, path, header)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// get is sendWith for other goroutines than the test's.
func (rs *renewalStack) get(cookies []*http.Cookie, path string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, rs.server.URL+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirects(&http.Client{Transport: rs.server.Client().Transport}).Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// sessionOf opens the session the browser holds, as a request under the
// portal's path (where the portal cookie goes too) would.
func (rs *renewalStack) sessionOf(t *testing.T) *session.Session {
	t.Helper()
	u, _ := url.Parse(rs.server.URL + "/portals/main/profile")
	r := &http.Request{Header: http.Header{}, Host: u.Host, URL: u}
	for _, c := range rs.user.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	s := rs.mw.openSession(r)
	if s == nil {
		t.Fatal("the browser's session does not open")
	}
	return s
}

func TestASessionPastItsLifetimeRenewsInBandOnAnyRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		header http.Header
	}{
		{"an API call", http.MethodGet, apiCall()},
		{"a navigation", http.MethodGet, browserNavigation()},
		{"a POST", http.MethodPost, http.Header{"Accept": {"application/json"}, "Content-Type": {"application/json"}}},
		{"a WebSocket upgrade", http.MethodGet, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}},
	} {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			rs := newRenewalStack(t, alice, nil)
			before := rs.sessionOf(t)
			if before.RefreshToken == "" || before.AuthTime == 0 {
				t.Fatal("the session holds no refresh token or sign-in time")
			}
			refreshes := rs.tenant.Hits(entraidtest.Refresh)
			rs.advance(time.Hour + time.Minute)
			resp, body := rs.send(t, tc.method, "/data", tc.header)
			if resp.StatusCode != http.StatusOK || body != "upstream /data" {
				t.Fatalf("past the lifetime: %d %.300q, want the upstream", resp.StatusCode, body)
			}
			if got := rs.lastUpstream().Get("X-Forwarded-User"); got != alice.OID {
				t.Errorf("X-Forwarded-User = %q", got)
			}
			if rs.tenant.Hits(entraidtest.Refresh) != refreshes+1 {
				t.Errorf("%d refresh-token requests, want 1", rs.tenant.Hits(entraidtest.Refresh)-refreshes)
			}
			if findSetCookie(resp, "__Host-entraauth_main=") == "" {
				t.Fatal("the response sets no renewed session")
			}
			after := rs.sessionOf(t)
			if after.RefreshToken == before.RefreshToken || after.RefreshToken == "" {
				t.Error("the renewed session keeps the old refresh token: Entra ID rotates them")
			}
			if after.AuthTime != before.AuthTime || after.Expires != before.Expires || after.IssuedAt <= before.IssuedAt {
				t.Errorf("times: before %d/%d/%d, after %d/%d/%d (sign-in/issued/expires): want the sign-in and the end kept, issued now",
					before.AuthTime, before.IssuedAt, before.Expires, after.AuthTime, after.IssuedAt, after.Expires)
			}
			// The renewed session is trusted for a lifetime: no more
			// refreshes for the next requests.
			for i := 0; i < 3; i++ {
				if resp, _ := rs.send(t, http.MethodGet, "/again", apiCall()); resp.StatusCode != http.StatusOK {
					t.Fatalf("after the renewal: %d", resp.StatusCode)
				}
			}
			if rs.tenant.Hits(entraidtest.Refresh) != refreshes+1 {
				t.Errorf("%d refresh-token requests after the renewal, want 1 in all", rs.tenant.Hits(entraidtest.Refresh)-refreshes)
			}
		})
	}
}

func TestARenewalReadsTheClaimsAgain(t *testing.T) {
	rs := newRenewalStack(t, alice, func(c *Config) { c.AllowedGroups = []string{alice.Groups[0]} })
	rs.tenant.UpdateUser(alice.PreferredUsername, func(u *entraidtest.User) {
		u.Name = "Alice Renamed"
		u.Roles = []string{"Writer"}
	})
	rs.advance(time.Hour + time.Minute)
	resp, _ := rs.send(t, http.MethodGet, "/a", apiCall())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("renewal: %d", resp.StatusCode)
	}
	h := rs.lastUpstream()
	if h.Get("X-Forwarded-Name") != "Alice Renamed" || h.Get("X-Forwarded-Roles") != "Writer" {
		t.Errorf("after the renewal: name %q, roles %q, want the tenant's current ones", h.Get("X-Forwarded-Name"), h.Get("X-Forwarded-Roles"))
	}
	// Removed from the group the rule needs: the next renewal refuses.
	rs.tenant.UpdateUser(alice.PreferredUsername, func(u *entraidtest.User) { u.Groups = alice.Groups[1:] })
	rs.advance(time.Hour + time.Minute)
	resp, body := rs.send(t, http.MethodGet, "/b", apiCall())
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "access_denied") {
		t.Fatalf("after leaving the group: %d %.200q, want 403", resp.StatusCode, body)
	}
}

func TestParallelRequestsShareOneRenewal(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	// A slow token endpoint keeps the renewal in flight while the others
	// arrive.
	rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Delay: 300 * time.Millisecond})
	refreshes := rs.tenant.Hits(entraidtest.Refresh)
	rs.advance(time.Hour + time.Minute)
	old := rs.cookies()
	const n = 20
	type outcome struct {
		status    int
		setCookie bool
	}
	results := make(chan outcome, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := rs.get(old, "/parallel", apiCall())
			if err != nil {
				results <- outcome{}
				return
			}
			results <- outcome{resp.StatusCode, findSetCookie(resp, "__Host-entraauth_main=") != ""}
		}()
	}
	wg.Wait()
	close(results)
	for o := range results {
		if o.status != http.StatusOK || !o.setCookie {
			t.Errorf("a parallel request: %d, renewed cookie set: %v; want 200 with the renewed cookie", o.status, o.setCookie)
		}
	}
	if got := rs.tenant.Hits(entraidtest.Refresh) - refreshes; got != 1 {
		t.Errorf("%d parallel requests made %d refresh-token requests, want 1", n, got)
	}
	// A request still carrying the old cookie a moment later gets the same
	// renewal, without asking Entra ID again.
	rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{})
	resp := rs.sendWith(t, old, "/late", apiCall())
	if resp.StatusCode != http.StatusOK || findSetCookie(resp, "__Host-entraauth_main=") == "" || rs.tenant.Hits(entraidtest.Refresh)-refreshes != 1 {
		t.Errorf("a late request with the old cookie: %d, %d refreshes", resp.StatusCode, rs.tenant.Hits(entraidtest.Refresh)-refreshes)
	}
}

func TestWhenEntraRefusesTheRenewalTheSessionEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse func(ten *entraidtest.Tenant)
		code   string
	}{
		{"a disabled user", func(ten *entraidtest.Tenant) { ten.SetUserDisabled(alice.PreferredUsername, true) }, "AADSTS50057"},
		{"revoked sessions (a password reset)", func(ten *entraidtest.Tenant) { ten.RevokeSessions(alice.PreferredUsername) }, "AADSTS50173"},
		{"MFA now required", func(ten *entraidtest.Tenant) { ten.SetMFARequired(alice.PreferredUsername, true) }, "AADSTS50076"},
	} {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			rs := newRenewalStack(t, alice, nil)
			tc.refuse(rs.tenant)
			rs.advance(time.Hour + time.Minute)
			refreshes := rs.tenant.Hits(entraidtest.Refresh)
			old := rs.cookies()

			resp, body := rs.send(t, http.MethodGet, "/api", apiCall())
			var doc map[string]interface{}
			json.Unmarshal([]byte(body), &doc)
			if resp.StatusCode != http.StatusUnauthorized || doc["error"] != "session_expired" {
				t.Fatalf("an API call: %d %.300q, want 401 session_expired", resp.StatusCode, body)
			}
			if !strings.Contains(findSetCookie(resp, "__Host-entraauth_main="), "Max-Age=0") {
				t.Error("the ended session's cookie was not deleted")
			}
			if !strings.Contains(rs.logs.String(), tc.code) {
				t.Errorf("the log does not say why: %q", rs.logs.String())
			}
			if strings.Contains(rs.logs.String(), "1.A") {
				t.Error("the log shows a refresh token")
			}
			// A navigation with the same old cookie goes to sign in, and
			// Entra ID is not asked again.
			resp = rs.sendWith(t, old, "/page", browserNavigation())
			if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/oauth2/v2.0/authorize") {
				t.Fatalf("a navigation: %d to %q, want a sign-in", resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := rs.tenant.Hits(entraidtest.Refresh) - refreshes; got != 1 {
				t.Errorf("%d refresh-token requests, want 1: a refusal is remembered", got)
			}
		})
	}
}

func TestWhileEntraIsUnreachableASessionKeepsWorkingForABoundedGrace(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Status: http.StatusServiceUnavailable, Body: "<html>Service Unavailable</html>"})
	rs.advance(time.Hour + time.Minute)
	tokens := rs.tenant.Hits(entraidtest.Token)

	// Within the grace: the request passes with the session as it is, and
	// a burst of requests tries Entra ID once.
	for i := 0; i < 5; i++ {
		resp, body := rs.send(t, http.MethodGet, "/grace", apiCall())
		if resp.StatusCode != http.StatusOK || body != "upstream /grace" {
			t.Fatalf("within the grace: %d %.200q, want the upstream", resp.StatusCode, body)
		}
		if findSetCookie(resp, "__Host-entraauth_main=") != "" {
			t.Fatal("a session was set although the renewal failed")
		}
	}
	if got := rs.tenant.Hits(entraidtest.Token) - tokens; got != 1 {
		t.Errorf("5 requests in a burst tried Entra ID %d times, want 1 (failures are remembered for %s)", got, failureMemory)
	}

	// Past the grace: a clear 503, the cookie kept for when Entra ID is back.
	rs.advance(renewalGrace)
	resp, body := rs.send(t, http.MethodGet, "/late", apiCall())
	var doc map[string]interface{}
	json.Unmarshal([]byte(body), &doc)
	if resp.StatusCode != http.StatusServiceUnavailable || doc["error"] != "idp_unavailable" {
		t.Fatalf("past the grace: %d %.300q, want 503 idp_unavailable", resp.StatusCode, body)
	}
	if strings.Contains(findSetCookie(resp, "__Host-entraauth_main="), "Max-Age=0") {
		t.Fatal("the session was deleted during an outage")
	}
	nav, page := rs.send(t, http.MethodGet, "/page", browserNavigation())
	if nav.StatusCode != http.StatusServiceUnavailable || !strings.Contains(page, "cannot be reached") {
		t.Fatalf("a navigation past the grace: %d %.300q, want the outage page", nav.StatusCode, page)
	}

	// Entra ID is back: the next request renews by itself.
	rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{})
	rs.advance(failureMemory + time.Second)
	resp, _ = rs.send(t, http.MethodGet, "/back", apiCall())
	if resp.StatusCode != http.StatusOK || findSetCookie(resp, "__Host-entraauth_main=") == "" {
		t.Fatalf("after the outage: %d, want 200 with the renewed session", resp.StatusCode)
	}
}

// A renewal that fails slowly (Entra ID black-holed: every token request
// waits out the request timeout) is remembered from when it failed, not
// from when it started: the requests after it pass within the grace at
// once, with no token request of their own, for failureMemory.
func TestASlowlyFailingRenewalIsRememberedFromItsEnd(t *testing.T) {
	rs := newRenewalStack(t, alice, func(c *Config) { c.MicrosoftEntraID.RequestTimeout = "1s" })
	// The token endpoint answers too late: the client gives up after 1 s.
	rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Delay: 2 * time.Second, Status: http.StatusServiceUnavailable})
	rs.advance(time.Hour + time.Minute)
	tokens := rs.tenant.Hits(entraidtest.Token)

	first := make(chan int, 1)
	go func() {
		resp, err := rs.get(rs.cookies(), "/first", apiCall())
		if err != nil {
			first <- 0
			return
		}
		first <- resp.StatusCode
	}()
	// While the token request hangs, the middleware's clock passes a
	// black hole's 10 s timeout.
	waitFor(t, "the token request", func() bool { return rs.tenant.Hits(entraidtest.Token) > tokens })
	rs.advance(10 * time.Second)
	if status := <-first; status != http.StatusOK {
		t.Fatalf("the request that tried to renew: %d, want 200 within the grace", status)
	}
	for i := 0; i < 3; i++ {
		resp, _ := rs.send(t, http.MethodGet, "/next", apiCall())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a request right after the failure: %d, want 200 within the grace", resp.StatusCode)
		}
	}
	if got := rs.tenant.Hits(entraidtest.Token) - tokens; got != 1 {
		t.Errorf("%d token requests, want 1: the failure is remembered for %s from its end", got, failureMemory)
	}
	// failureMemory after the failure, the next request tries again.
	rs.advance(failureMemory)
	rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{})
	resp, _ := rs.send(t, http.MethodGet, "/later", apiCall())
	if resp.StatusCode != http.StatusOK || findSetCookie(resp, "__Host-entraauth_main=") == "" {
		t.Errorf("%s after the failure: %d, want the renewed session", failureMemory, resp.StatusCode)
	}
}

func TestMaxLifetimeForcesASignIn(t *testing.T) {
	rs := newRenewalStack(t, alice, func(c *Config) {
		c.Session.Lifetime = "1h"
		c.Session.MaxLifetime = "3h"
	})
	// Two renewals fit in the three hours...
	for i := 0; i < 2; i++ {
		rs.advance(time.Hour + time.Minute)
		if resp, _ := rs.send(t, http.MethodGet, "/renew", apiCall()); resp.StatusCode != http.StatusOK {
			t.Fatalf("renewal %d: %d", i+1, resp.StatusCode)
		}
	}
	refreshes := rs.tenant.Hits(entraidtest.Refresh)
	// ...then the sign-in is too old: no renewal, a real sign-in.
	rs.advance(time.Hour)
	resp, body := rs.send(t, http.MethodGet, "/api", apiCall())
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "session_expired") {
		t.Fatalf("past maxLifetime, an API call: %d %.200q, want 401 session_expired", resp.StatusCode, body)
	}
	resp, _ = rs.send(t, http.MethodGet, "/page", browserNavigation())
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/oauth2/v2.0/authorize") {
		t.Fatalf("past maxLifetime, a navigation: %d to %q, want a sign-in", resp.StatusCode, resp.Header.Get("Location"))
	}
	if rs.tenant.Hits(entraidtest.Refresh) != refreshes {
		t.Error("a session past maxLifetime was renewed")
	}
}

func TestARefreshedIDTokenOfAnotherUserEndsTheSession(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	rs.tenant.SetClaimsHook(func(c map[string]interface{}) { c["oid"] = "99999999-0000-4000-8000-000000000099" })
	rs.advance(time.Hour + time.Minute)
	resp, body := rs.send(t, http.MethodGet, "/api", apiCall())
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "session_expired") {
		t.Fatalf("a refreshed token of another user: %d %.200q, want 401 session_expired", resp.StatusCode, body)
	}
	if !strings.Contains(rs.logs.String(), "oid") {
		t.Errorf("the log does not say why: %q", rs.logs.String())
	}
}

func TestWithoutRenewalASessionEndsAtItsLifetime(t *testing.T) {
	rs := newRenewalStack(t, alice, func(c *Config) { c.Session.Renew = false })
	if s := rs.sessionOf(t); s.RefreshToken != "" || s.Expires-s.IssuedAt != int64(time.Hour/time.Second) {
		t.Fatalf("without renewal the session holds a refresh token (%v) or lives %ds", s.RefreshToken != "", s.Expires-s.IssuedAt)
	}
	if strings.Contains(strings.Join(rs.mw.client.Scopes(), " "), "offline_access") {
		t.Error("offline_access requested without renewal")
	}
	rs.advance(time.Hour + time.Second)
	resp, body := rs.send(t, http.MethodGet, "/api", apiCall())
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "session_expired") {
		t.Fatalf("past the lifetime: %d %.200q, want 401 session_expired", resp.StatusCode, body)
	}
}

func TestTheFastPathNeverServesASessionPastItsRenewalTime(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	for i := 0; i < 3; i++ {
		if resp, _ := rs.send(t, http.MethodGet, "/cached", apiCall()); resp.StatusCode != http.StatusOK {
			t.Fatalf("signed in: %d", resp.StatusCode)
		}
	}
	refreshes := rs.tenant.Hits(entraidtest.Refresh)
	rs.advance(time.Hour + time.Second)
	resp, _ := rs.send(t, http.MethodGet, "/cached", apiCall())
	if resp.StatusCode != http.StatusOK || findSetCookie(resp, "__Host-entraauth_main=") == "" || rs.tenant.Hits(entraidtest.Refresh) != refreshes+1 {
		t.Fatalf("past the lifetime, a request the cache knew: %d, renewed cookie %v, %d refreshes: want one renewal",
			resp.StatusCode, findSetCookie(resp, "__Host-entraauth_main=") != "", rs.tenant.Hits(entraidtest.Refresh)-refreshes)
	}
}

// Entra ID's refresh tokens are opaque and often 1.5 to 2 KB, sometimes
// more: the portal cookie holding one must stay within a few cookies (the
// session cookie holds a handle: TestTheCookieOnEveryRequestStaysSmall).
func TestSessionCookieSizeWithRealisticRefreshTokens(t *testing.T) {
	for _, tc := range []struct {
		tokenLength int
		maxChunks   int
	}{
		{1800, 1}, // Entra ID's usual size: one cookie
		{3000, 2},
		{6000, 3},
	} {
		st := newStackFor(t, alice, nil)
		st.tenant.SetRefreshTokenLength(tc.tokenLength)
		c := st.browser()
		st.signIn(c)
		u, _ := url.Parse(st.server.URL + "/portals/main/session")
		total, chunks := 0, 0
		for _, ck := range c.Jar.Cookies(u) {
			if session.IsChunkName(st.mw.portalCookie.Name, ck.Name) {
				total += len(ck.Name) + 1 + len(ck.Value)
				chunks++
			}
		}
		t.Logf("a refresh token of %d characters: portal cookie %d bytes in %d cookie(s)", tc.tokenLength, total, chunks)
		if chunks == 0 || chunks > tc.maxChunks {
			t.Errorf("a refresh token of %d characters takes %d cookies, want at most %d", tc.tokenLength, chunks, tc.maxChunks)
		}
	}
}

// sibling is another router's middleware for the same tenant, app, secret
// and (unless change says otherwise) cookie, with change applied, on the
// stack's clock and log, in front of the stack's upstream.
func (rs *renewalStack) sibling(t *testing.T, change func(c *Config)) *Middleware {
	t.Helper()
	c := validConfig()
	c.MicrosoftEntraID.AuthorityHost = rs.tenant.URL
	c.MicrosoftEntraID.ClientSecret = rs.tenant.ClientSecret
	change(c)
	h, err := New(context.Background(), rs.mw.next, c, "sibling")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m := h.(*Middleware)
	m.log = rs.mw.log
	setClock(m, rs.mw.now)
	return m
}

// serveBy sends a GET with exactly these cookies through m, over HTTPS,
// and returns the response.
func serveBy(m *Middleware, cookies []*http.Cookie, path string, header http.Header) *http.Response {
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com"+path, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	return w.Result()
}

// setCookies are the browser's cookies updated by resp's Set-Cookie
// headers, as a browser keeps them.
func setCookies(cookies []*http.Cookie, resp *http.Response) []*http.Cookie {
	byName := map[string]*http.Cookie{}
	var order []string
	for _, c := range cookies {
		if byName[c.Name] == nil {
			order = append(order, c.Name)
		}
		byName[c.Name] = c
	}
	for _, c := range resp.Cookies() {
		if byName[c.Name] == nil {
			order = append(order, c.Name)
		}
		byName[c.Name] = c
	}
	var out []*http.Cookie
	for _, name := range order {
		if c := byName[name]; c.MaxAge >= 0 && c.Value != "" {
			out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return out
}

// The request that renews the session is the one request per lifetime a
// user can predict: it must reach the upstream as clean as any other,
// without spoofed identity headers (even for a claim the user lacks) and
// without the plugin's cookie, which holds the sealed refresh token.
func TestTheRenewingRequestReachesTheUpstreamClean(t *testing.T) {
	// No email, groups or roles: their headers have no value to replace a
	// spoofed one.
	dana := entraidtest.User{OID: "3d4e5f60-0000-4000-8000-00000000da7a", Name: "Dana Example", PreferredUsername: "dana@contoso.example"}
	rs := newRenewalStack(t, dana, nil)
	u, _ := url.Parse(rs.server.URL)
	rs.user.Jar.SetCookies(u, []*http.Cookie{{Name: "app", Value: "1"}})
	rs.advance(time.Hour + time.Minute)
	refreshes := rs.tenant.Hits(entraidtest.Refresh)
	h := apiCall()
	h["X_Forwarded_User"] = []string{"mallory"}
	h["X-Forwarded-Email"] = []string{"ceo@contoso.example"}
	h["X-Forwarded-Groups"] = []string{"admins"}
	h["X-Forwarded-Roles"] = []string{"Admin,Owner"}
	resp, _ := rs.send(t, http.MethodGet, "/renewing", h)
	if resp.StatusCode != http.StatusOK || findSetCookie(resp, rs.mw.cookie.Name+"=") == "" || rs.tenant.Hits(entraidtest.Refresh) != refreshes+1 {
		t.Fatalf("got %d, renewed cookie %v, %d refreshes: want the renewing request", resp.StatusCode,
			findSetCookie(resp, rs.mw.cookie.Name+"=") != "", rs.tenant.Hits(entraidtest.Refresh)-refreshes)
	}
	up := rs.lastUpstream()
	checkIdentityHeaderSet(t, up, dana.OID)
	for _, name := range []string{"X-Forwarded-Email", "X-Forwarded-Groups", "X-Forwarded-Roles"} {
		if v, ok := up[name]; ok {
			t.Errorf("the renewing request reached the upstream with %s = %q, a claim the user lacks", name, v)
		}
	}
	if got := up.Values("Cookie"); len(got) != 1 || got[0] != "app=1" {
		t.Errorf("the renewing request reached the upstream with Cookie %.80q, want the app's cookie alone", got)
	}
}

// No log line of any renewal or upstream-token outcome holds a refresh
// token or an access token: Traefik's log is read by more people than the
// tokens are meant for.
func TestNoLogLineOfARenewalOrUpstreamTokenHoldsAToken(t *testing.T) {
	orders := entraidtest.API{IdentifierURI: "api://orders", Scopes: []string{"Orders.Read"}}
	withToken := func(c *Config) {
		c.UpstreamAccessToken = UpstreamAccessToken{Scope: orders.IdentifierURI + "/.default"}
	}
	consentMissing := `{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented to use the application.\r\nTrace ID: 0d1e2f30-aaaa-bbbb-cccc-0123456789ab","error_codes":[65001],"trace_id":"0d1e2f30-aaaa-bbbb-cccc-0123456789ab"}`
	for _, tc := range []struct {
		name   string
		config func(c *Config)
		after  time.Duration // the renewal (1h) or the token's replacement (55m) is due
		tenant func(ten *entraidtest.Tenant)
		status int
	}{
		{"a renewal", nil, time.Hour + time.Minute, func(*entraidtest.Tenant) {}, http.StatusOK},
		{"a renewal Entra ID refuses", nil, time.Hour + time.Minute, func(ten *entraidtest.Tenant) { ten.SetUserDisabled(alice.PreferredUsername, true) }, http.StatusUnauthorized},
		{"a renewal while Entra ID is unreachable", nil, time.Hour + renewalGrace + time.Minute, func(ten *entraidtest.Tenant) {
			ten.SetFault(entraidtest.Token, entraidtest.Fault{Status: http.StatusServiceUnavailable, Body: "<html>Service Unavailable</html>"})
		}, http.StatusServiceUnavailable},
		{"a renewal while Entra ID is unreachable, within the grace", nil, time.Hour + time.Minute, func(ten *entraidtest.Tenant) {
			ten.SetFault(entraidtest.Token, entraidtest.Fault{Status: http.StatusServiceUnavailable, Body: "<html>Service Unavailable</html>"})
		}, http.StatusOK},
		{"an upstream token", withToken, 56 * time.Minute, func(*entraidtest.Tenant) {}, http.StatusOK},
		{"an upstream token Entra ID refuses", withToken, 56 * time.Minute, func(ten *entraidtest.Tenant) { ten.SetUserDisabled(alice.PreferredUsername, true) }, http.StatusUnauthorized},
		{"an upstream token while Entra ID is unreachable", withToken, 56 * time.Minute, func(ten *entraidtest.Tenant) {
			ten.SetFault(entraidtest.Token, entraidtest.Fault{Status: http.StatusBadGateway})
		}, http.StatusServiceUnavailable},
		{"an upstream token without consent", withToken, 56 * time.Minute, func(ten *entraidtest.Tenant) {
			ten.SetFault(entraidtest.Token, entraidtest.Fault{Status: http.StatusBadRequest, Body: consentMissing})
		}, http.StatusForbidden},
	} {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			rs := newPreparedRenewalStack(t, alice, tc.config, func(ten *entraidtest.Tenant) { ten.AddAPI(orders) })
			var secrets []string
			secrets = append(secrets, rs.sessionOf(t).RefreshToken)
			if tc.config != nil {
				resp, _ := rs.send(t, http.MethodGet, "/first", apiCall())
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("signed in: %d", resp.StatusCode)
				}
				secrets = append(secrets, strings.TrimPrefix(rs.lastUpstream().Get("Authorization"), "Bearer "))
			}
			tc.tenant(rs.tenant)
			rs.advance(tc.after)
			resp, body := rs.send(t, http.MethodGet, "/due", apiCall())
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d %.300q, want %d", resp.StatusCode, body, tc.status)
			}
			if resp.StatusCode == http.StatusOK {
				if tc.config != nil {
					secrets = append(secrets, strings.TrimPrefix(rs.lastUpstream().Get("Authorization"), "Bearer "))
				}
				if findSetCookie(resp, rs.mw.cookie.Name+"=") != "" {
					secrets = append(secrets, rs.sessionOf(t).RefreshToken)
				}
			}
			logs := rs.logs.String()
			for _, secret := range secrets {
				// Any 20 characters of a token give it away.
				if len(secret) < 40 {
					t.Fatalf("a token of %d characters: the test lost it", len(secret))
				}
				if strings.Contains(logs, secret[3:23]) || strings.Contains(logs, secret[len(secret)-20:]) {
					t.Errorf("the log holds a token: %.200q", logs)
				}
			}
		})
	}
}

// Entra ID asks for interaction (MFA, a new sign-in, consent) with these
// codes: the session ends and the user signs in, where they can satisfy
// it, rather than keep a few minutes of grace and then get 503s.
func TestEntraIDAskingForInteractionEndsTheSessionAtRenewal(t *testing.T) {
	for _, tc := range []struct {
		code   string
		aadsts int
	}{
		{"interaction_required", 50079},
		{"login_required", 50058},
		{"consent_required", 65001},
		{"invalid_grant", 50076},
	} {
		tc := tc
		t.Run(tc.code, func(t *testing.T) {
			rs := newRenewalStack(t, alice, nil)
			body := fmt.Sprintf(`{"error":%q,"error_description":"AADSTS%d: The user must interact.\r\nTrace ID: 0d1e2f30-aaaa-bbbb-cccc-0123456789ab","error_codes":[%d],"trace_id":"0d1e2f30-aaaa-bbbb-cccc-0123456789ab"}`, tc.code, tc.aadsts, tc.aadsts)
			rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Status: http.StatusBadRequest, Body: body})
			rs.advance(time.Hour + time.Minute)
			old := rs.cookies()
			resp, page := rs.send(t, http.MethodGet, "/api", apiCall())
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "session_expired") {
				t.Fatalf("an API call: %d %.300q, want 401 session_expired", resp.StatusCode, page)
			}
			if !deletesSession(resp, rs.mw.cookie.Name) {
				t.Error("the ended session's cookie was not deleted")
			}
			resp = rs.sendWith(t, old, "/page", browserNavigation())
			if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/oauth2/v2.0/authorize") {
				t.Fatalf("a navigation: %d to %q, want a sign-in", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.Contains(rs.logs.String(), fmt.Sprintf("AADSTS%d", tc.aadsts)) {
				t.Errorf("the log does not say why: %q", rs.logs.String())
			}
		})
	}
}

// A router's maxLifetime ends the sessions it opens, whenever and by
// whichever router they were issued: shortening it ends existing
// sessions at their next request.
func TestAShorterMaxLifetimeEndsExistingSessions(t *testing.T) {
	rs := newRenewalStack(t, alice, nil) // signed in under maxLifetime 24h
	shorter := rs.sibling(t, func(c *Config) { c.Session.MaxLifetime = "2h" })
	rs.advance(2*time.Hour + time.Minute)
	refreshes := rs.tenant.Hits(entraidtest.Refresh)
	resp := serveBy(shorter, rs.cookies(), "/api", apiCall())
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "session_expired") {
		t.Fatalf("2h1m after the sign-in, under maxLifetime 2h: %d %.300q, want 401 session_expired", resp.StatusCode, body)
	}
	if resp = serveBy(shorter, rs.cookies(), "/page", browserNavigation()); resp.StatusCode != http.StatusFound {
		t.Fatalf("a navigation: %d, want a sign-in", resp.StatusCode)
	}
	if rs.tenant.Hits(entraidtest.Refresh) != refreshes {
		t.Error("a session past this router's maxLifetime was renewed")
	}
	// Under the 24 hours it was issued with, the same session renews.
	if resp, _ := rs.send(t, http.MethodGet, "/api", apiCall()); resp.StatusCode != http.StatusOK {
		t.Fatalf("under maxLifetime 24h: %d, want a renewal", resp.StatusCode)
	}
}

// A router with session.renew false never redeems the refresh token of a
// session a sibling router (renew true) issued: past its lifetime the
// session ends there.
func TestARouterWithoutRenewalDoesNotRenewASiblingsSession(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	noRenewal := rs.sibling(t, func(c *Config) { c.Session.Renew = false })
	if resp := serveBy(noRenewal, rs.cookies(), "/api", apiCall()); resp.StatusCode != http.StatusOK {
		t.Fatalf("within the lifetime: %d, want the session accepted", resp.StatusCode)
	}
	rs.advance(time.Hour + time.Minute)
	refreshes := rs.tenant.Hits(entraidtest.Refresh)
	resp := serveBy(noRenewal, rs.cookies(), "/api", apiCall())
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "session_expired") {
		t.Fatalf("past the lifetime: %d %.300q, want 401 session_expired", resp.StatusCode, body)
	}
	if findSetCookie(resp, noRenewal.cookie.Name+"=") != "" && !deletesSession(resp, noRenewal.cookie.Name) {
		t.Error("the router without renewal set a renewed session")
	}
	if rs.tenant.Hits(entraidtest.Refresh) != refreshes {
		t.Error("the router without renewal redeemed the refresh token")
	}
}

// One renewal serves every request that needs it, but only those of the
// same router binding: a sibling router of the same app with another
// cookie gets a renewal of its own, sealed for its cookie, even for a
// session holding the same refresh token.
func TestARenewalIsNeverSharedWithAnotherCookiesRouter(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	other := rs.sibling(t, func(c *Config) { c.Session.CookieName = "othercookie" })
	s := rs.sessionOf(t)
	// The same session, refresh token included, under the sibling's cookie.
	var cookies []*http.Cookie
	for _, pair := range strings.Split(sessionCookie(t, other, s), "; ") {
		kv := strings.SplitN(pair, "=", 2)
		cookies = append(cookies, &http.Cookie{Name: kv[0], Value: kv[1]})
	}
	rs.advance(time.Hour + time.Minute)
	if resp, _ := rs.send(t, http.MethodGet, "/renew", apiCall()); resp.StatusCode != http.StatusOK || findSetCookie(resp, rs.mw.cookie.Name+"=") == "" {
		t.Fatalf("the first router's renewal: %d", resp.StatusCode)
	}
	resp := serveBy(other, cookies, "/renew", apiCall())
	if resp.StatusCode != http.StatusOK || findSetCookie(resp, other.cookie.Name+"=") == "" {
		t.Fatalf("the sibling's renewal: %d, renewed cookie %v", resp.StatusCode, findSetCookie(resp, other.cookie.Name+"=") != "")
	}
	cookies = setCookies(cookies, resp)
	refreshes := rs.tenant.Hits(entraidtest.Refresh)
	for i := 0; i < 2; i++ {
		if resp := serveBy(other, cookies, "/after", apiCall()); resp.StatusCode != http.StatusOK || findSetCookie(resp, other.cookie.Name+"=") != "" {
			t.Fatalf("the sibling's renewed session, request %d: %d, Set-Cookie %q: want it to open there as it is", i+1, resp.StatusCode, resp.Header.Values("Set-Cookie"))
		}
	}
	if rs.tenant.Hits(entraidtest.Refresh) != refreshes {
		t.Error("the sibling's renewed session was renewed again at once")
	}
}

// The grace while Entra ID is unreachable never outlasts a short
// lifetime: with a lifetime of 2 minutes, 2 minutes of grace, not 5.
func TestTheGraceIsCappedByAShortLifetime(t *testing.T) {
	rs := newRenewalStack(t, alice, func(c *Config) { c.Session.Lifetime = "2m" })
	rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Status: http.StatusServiceUnavailable, Body: "<html>Service Unavailable</html>"})
	rs.advance(2*time.Minute + 30*time.Second)
	if resp, _ := rs.send(t, http.MethodGet, "/grace", apiCall()); resp.StatusCode != http.StatusOK {
		t.Fatalf("30s into the grace: %d, want the upstream", resp.StatusCode)
	}
	rs.advance(2 * time.Minute) // 2m30s past the lifetime: within 5 minutes, past 2
	resp, body := rs.send(t, http.MethodGet, "/late", apiCall())
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "idp_unavailable") {
		t.Fatalf("2m30s past a 2m lifetime: %d %.200q, want 503 idp_unavailable", resp.StatusCode, body)
	}
}
