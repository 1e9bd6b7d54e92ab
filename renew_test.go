package entraauth

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
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
