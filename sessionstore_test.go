package entraauth

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

// userInGroups is alice in n groups.
func userInGroups(n int) entraidtest.User {
	u := alice
	u.Groups = make([]string, n)
	for i := range u.Groups {
		u.Groups[i] = fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", i)
	}
	return u
}

// cookieBytes is what the jar of c sends to rawURL as its Cookie header,
// and how many cookies.
func cookieBytes(c *http.Client, rawURL string) (int, int) {
	u, _ := url.Parse(rawURL)
	// Counted, not joined: under Yaegi the joined pairs came out empty.
	total, n := 0, 0
	for _, ck := range c.Jar.Cookies(u) {
		if n > 0 {
			total += len("; ")
		}
		total += len(ck.Name) + len("=") + len(ck.Value)
		n++
	}
	return total, n
}

// forgetEverySession empties this process's memory of sessions, as a
// Traefik replica that never saw them (or a restarted one) has it.
func forgetEverySession() {
	remembered.forget("")
	sessions.forget("")
}

// The cookie a browser sends with every request holds a handle, whatever
// the user's groups and refresh token: at most about 1 KB. The test
// prints the table the readme shows.
func TestTheCookieOnEveryRequestStaysSmall(t *testing.T) {
	t.Logf("| groups in the token | refresh token | cookie on every request | portal cookie (restore hop only) |")
	t.Logf("|---:|---:|---:|---:|")
	for _, groups := range []int{2, 20, 50, 150, 200, 201} {
		for _, rt := range []int{1800, 4000} {
			st := newStackFor(t, userInGroups(groups), func(c *Config) {
				if groups > 200 {
					// An overage is resolved through Graph for group rules.
					c.AllowedGroups = []string{"c0ffee00-0000-4000-8000-000000000000"}
				}
			})
			st.tenant.SetRefreshTokenLength(rt)
			c := st.browser()
			st.signIn(c)
			every, n := cookieBytes(c, st.server.URL+"/any/page")
			all, m := cookieBytes(c, st.server.URL+"/portals/main/session")
			t.Logf("| %d | %d | %d bytes, %d cookies | %d bytes, %d cookies |", groups, rt, every, n, all-every-2, m-n)
			// The sign-in binding cookie (bindLogin) is the other one.
			if every > 1024 {
				t.Errorf("%d groups, a refresh token of %d: %d cookies of %d bytes on every request, want at most 1024", groups, rt, n, every)
			}
			if m <= n {
				t.Errorf("%d groups: no portal cookie under /portals/main/", groups)
			}
		}
	}
}

// Another Traefik process sharing the secret (simulated by emptying this
// one's memory) gets the session back through one same-origin redirect,
// without a call to Entra ID, for navigations and for requests with a
// body alike.
func TestAProcessWithoutTheSessionRestoresItThroughTheHop(t *testing.T) {
	st := newStackFor(t, userInGroups(200), nil)
	st.tenant.SetRefreshTokenLength(1800)
	c := st.browser()
	st.signIn(c)
	tokens, authorizes := st.tenant.Hits("token"), st.tenant.Hits("authorize")

	forgetEverySession()
	first, _ := st.send(c, http.MethodGet, "/reports?year=2026", nil)
	if first.StatusCode != http.StatusTemporaryRedirect || first.Header.Get("Location") != "/portals/main/session?rd=%2Freports%3Fyear%3D2026" {
		t.Fatalf("without the session in memory: %d to %q, want 307 to the restore hop", first.StatusCode, first.Header.Get("Location"))
	}
	resp, body := navigate(t, c, st.server.URL+"/reports?year=2026")
	if resp.StatusCode != http.StatusOK || body != "upstream /reports?year=2026" {
		t.Fatalf("after the hop: %d %q", resp.StatusCode, body)
	}
	if h := st.lastUpstream(); h.Get("X-Forwarded-User") != alice.OID || strings.Count(h.Get("X-Forwarded-Groups"), ",") != 199 {
		t.Errorf("after the hop the upstream got user %q and %d groups", h.Get("X-Forwarded-User"), strings.Count(h.Get("X-Forwarded-Groups"), ",")+1)
	}

	forgetEverySession()
	req, _ := http.NewRequest(http.MethodPost, st.server.URL+"/api/items", strings.NewReader(`{"name":"x"}`))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	post, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(post.Body)
	post.Body.Close()
	if post.StatusCode != http.StatusOK || string(b) != "upstream /api/items" {
		t.Errorf("a POST (fetch) after the hop: %d %q", post.StatusCode, b)
	}
	st.lastUpstream()
	if st.tenant.Hits("token") != tokens || st.tenant.Hits("authorize") != authorizes {
		t.Errorf("the hop called Entra ID: token %d -> %d, authorize %d -> %d", tokens, st.tenant.Hits("token"), authorizes, st.tenant.Hits("authorize"))
	}
}

// send makes one request with c's cookies, without following redirects.
func (st *stack) send(c *http.Client, method, path string, header http.Header) (*http.Response, string) {
	st.t.Helper()
	req, err := http.NewRequest(method, st.server.URL+path, nil)
	if err != nil {
		st.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	// A copy: noRedirects changes the client it is given.
	once := *c
	resp, err := noRedirects(&once).Do(req)
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The restore hop redirects only where a sign-in's return URL may go:
// anything else goes home, never to another origin.
func TestTheRestoreHopIsNoOpenRedirect(t *testing.T) {
	st := newStack(t, nil)
	c := st.browser()
	st.signIn(c)
	for _, tc := range []struct{ rd, want string }{
		{"/reports?x=1", "/reports?x=1"},
		{st.server.URL + "/same/origin", st.server.URL + "/same/origin"},
		{"https://evil.example/", "/"},
		{"//evil.example/", "/"},
		{"/\\evil.example/", "/"},
		{"/%2f%2fevil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"https://user@evil.example/", "/"},
		{"", "/"},
	} {
		forgetEverySession()
		resp, _ := st.send(c, http.MethodGet, "/portals/main/session?rd="+url.QueryEscape(tc.rd), nil)
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != tc.want {
			t.Errorf("rd %q: %d to %q, want 307 to %q", tc.rd, resp.StatusCode, resp.Header.Get("Location"), tc.want)
		}
	}
}

// A WebSocket upgrade cannot follow a redirect: served when the process
// remembers the session, a clear 401 otherwise.
func TestAnUpgradeIsServedFromMemoryOrGetsAClear401(t *testing.T) {
	st := newStack(t, nil)
	c := st.browser()
	st.signIn(c)
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	if resp, body := st.send(c, http.MethodGet, "/ws", upgrade); resp.StatusCode != http.StatusOK || body != "upstream /ws" {
		t.Errorf("an upgrade with the session in memory: %d %q", resp.StatusCode, body)
	}
	st.lastUpstream()
	forgetEverySession()
	resp, body := st.send(c, http.MethodGet, "/ws", upgrade)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, restoreCode) {
		t.Errorf("an upgrade without the session in memory: %d %q, want 401 %s", resp.StatusCode, body, restoreCode)
	}
	// Any page request brings the session back; the upgrade then passes.
	navigate(t, c, st.server.URL+"/")
	st.lastUpstream()
	if resp, _ := st.send(c, http.MethodGet, "/ws", upgrade); resp.StatusCode != http.StatusOK {
		t.Errorf("an upgrade after a page request: %d", resp.StatusCode)
	}
}

// Sign-out deletes both cookies, and a copy of either (taken before) is
// refused: in memory at once, and by the portal cookie's restore.
func TestSignOutEndsEveryPartOfTheSession(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	u, _ := url.Parse(rs.server.URL + "/portals/main/session")
	copied := rs.user.Jar.Cookies(u)
	resp := rs.signOut(t)
	deleted := map[string]string{}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			deleted[c.Name] = c.Path
		}
	}
	if deleted["__Host-entraauth_main"] != "/" || deleted["entraauth_main_full"] != "/portals/main/" {
		t.Errorf("sign-out deleted %v, want the session cookie (Path /) and the portal cookie (Path /portals/main/)", deleted)
	}
	if w := serveBy(rs.mw, copied, "/private", apiCall()); w.StatusCode != http.StatusUnauthorized {
		t.Errorf("a copy of the cookies after sign-out: %d, want 401 (no hop)", w.StatusCode)
	}
	forgetEverySession()
	if w := serveBy(rs.mw, copied, "/portals/main/session?rd=/private", apiCall()); w.StatusCode != http.StatusTemporaryRedirect || w.Header.Get("Location") != "/private" || !strings.Contains(strings.Join(w.Header["Set-Cookie"], "\n"), "__Host-entraauth_main=;") {
		t.Errorf("the restore hop with a copy after sign-out: %d to %q, cookies %q: want the cookies deleted", w.StatusCode, w.Header.Get("Location"), w.Header["Set-Cookie"])
	}
	if w := serveBy(rs.mw, copied, "/private", apiCall()); w.StatusCode == http.StatusOK {
		t.Errorf("a copy after sign-out, in a process that forgot it, passed")
	}
}

// A session cookie from before the hop (the whole session, chunked) is
// read once and moved into the new pair.
func TestAWholeSessionCookieMovesToTheHandleAndThePortalCookie(t *testing.T) {
	m, upstream := guard(t, nil)
	s := aliceSession()
	for i := 0; i < 200; i++ {
		s.Groups = append(s.Groups, fmt.Sprintf("b0b0b0b0-0000-4000-8000-%012d", i))
	}
	old := oldSessionCookie(t, m, s)
	if strings.Count(old, "; ") < 2 {
		t.Fatalf("the old cookie is not chunked: %.60q", old)
	}
	r := httptest.NewRequest("GET", "https://app.example.com/moved", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Cookie", old)
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	if w.Code != http.StatusOK || (*upstream).Get("X-Forwarded-User") != alice.OID {
		t.Fatalf("with the old cookie: %d, user %q", w.Code, (*upstream).Get("X-Forwarded-User"))
	}
	var ref, full, deleted []string
	for _, c := range w.Result().Cookies() {
		switch {
		case c.MaxAge < 0:
			deleted = append(deleted, c.Name)
		case c.Name == "__Host-entraauth_main":
			ref = append(ref, c.Name+"="+c.Value)
		case session.IsChunkName("entraauth_main_full", c.Name) && c.Path == "/portals/main/":
			full = append(full, c.Name+"="+c.Value)
		default:
			t.Errorf("unexpected cookie %.80s", c.String())
		}
	}
	if len(ref) != 1 || len(ref[0]) > 1024 || len(full) < 3 || len(deleted) != 2 {
		t.Fatalf("moved into %d session cookie(s) (%d bytes), %d portal cookies, deleted %v", len(ref), len(strings.Join(ref, "")), len(full), deleted)
	}
	forgetEverySession()
	r = httptest.NewRequest("GET", "https://app.example.com/portals/main/session?rd=/after", nil)
	r.Header.Set("Cookie", ref[0]+"; "+strings.Join(full, "; "))
	w = httptest.NewRecorder()
	m.ServeHTTP(w, r)
	if w.Code != http.StatusTemporaryRedirect || w.Header().Get("Location") != "/after" {
		t.Fatalf("the restore hop with the moved cookies: %d to %q", w.Code, w.Header().Get("Location"))
	}
	r = httptest.NewRequest("GET", "https://app.example.com/after", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Cookie", ref[0])
	w = httptest.NewRecorder()
	m.ServeHTTP(w, r)
	if w.Code != http.StatusOK || strings.Count((*upstream).Get("X-Forwarded-Groups"), ",") != 201 {
		t.Errorf("with the moved session cookie: %d, groups %.60q", w.Code, (*upstream).Get("X-Forwarded-Groups"))
	}
}

// The portal cookie opens only beside the session cookie it was issued
// with: one planted beside another user's handle restores nothing.
func TestThePortalCookieOpensOnlyWithItsHandle(t *testing.T) {
	m, _ := guard(t, nil)
	sealed := func(s *session.Session) (string, string) {
		w := httptest.NewRecorder()
		if err := m.writeSession(w, nil, s, time.Now()); err != nil {
			t.Fatal(err)
		}
		var ref, full string
		for _, c := range w.Result().Cookies() {
			if c.Path == "/" {
				ref = c.Name + "=" + c.Value
			} else {
				full = c.Name + "=" + c.Value
			}
		}
		return ref, full
	}
	victim, _ := sealed(aliceSession())
	_, planted := sealed(attackerSession())
	forgetEverySession()
	r := httptest.NewRequest("GET", "https://app.example.com/portals/main/profile", nil)
	r.Header.Set("Cookie", victim+"; "+planted)
	if s := m.openSession(r); s != nil {
		t.Errorf("a portal cookie of %s opened beside the handle of another session", s.OID)
	}
}

// Past the store's bound the oldest sessions are forgotten: their next
// request takes the hop, never an error.
func TestPastTheBoundASessionTakesTheHop(t *testing.T) {
	saved := remembered
	remembered = newSessionCache(2, storeGenerationBytes)
	defer func() { remembered = saved }()
	st := newStack(t, nil)
	first := st.browser()
	st.signIn(first)
	for i := 0; i < 4; i++ {
		st.signIn(st.browser())
	}
	// The fast path's outcomes have their own bound (sessions).
	sessions.forget("")
	resp, _ := st.send(first, http.MethodGet, "/page", http.Header{"Accept": {"application/json"}})
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("a session past the bound: %d, want the restore hop", resp.StatusCode)
	}
	if resp, body := navigate(t, first, st.server.URL+"/page"); resp.StatusCode != http.StatusOK || body != "upstream /page" {
		t.Errorf("after the hop: %d %q", resp.StatusCode, body)
	}
	st.lastUpstream()
}

// The store's byte bound counts each session's encoded size and
// storeEntryOverhead; the test measures what a remembered session costs
// on the heap and prints it (the readme's figures).
func TestBytesPerRememberedSession(t *testing.T) {
	m, _ := guard(t, nil)
	for _, groups := range []int{2, 200} {
		s := aliceSession()
		s.Groups = nil
		for i := 0; i < groups; i++ {
			s.Groups = append(s.Groups, fmt.Sprintf("b0b0b0b0-0000-4000-8000-%012d", i))
		}
		s.RefreshToken = strings.Repeat("r", 1800)
		const n = 2000
		saved := remembered
		remembered = newSessionCache(n, 1<<30)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		accounted := 0
		for i := 0; i < n; i++ {
			// Each session decoded on its own, as a restore or a sign-in
			// makes it.
			plain, _ := s.Marshal()
			own, err := session.Unmarshal(plain)
			if err != nil {
				t.Fatal(err)
			}
			size := storeSize(own, len(plain))
			m.remember(newSessionID(), own, size)
			accounted += size
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := int(after.HeapAlloc-before.HeapAlloc) / n
		t.Logf("%d groups, a refresh token of 1800: %d bytes per remembered session on the heap, %d accounted", groups, per, accounted/n)
		if remembered.len() != n {
			t.Fatalf("%d sessions remembered, want %d", remembered.len(), n)
		}
		remembered = saved
		if per > accounted/n*5/4 {
			t.Errorf("%d groups: a session takes %d bytes, the bound counts %d", groups, per, accounted/n)
		}
	}
}

// A renewal rewrites both cookies under a new handle and remembers the
// renewed session; a process that forgot it restores the renewed version
// from the portal cookie, without renewing again.
func TestARenewalRewritesBothCookiesAndTheStore(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	before := rs.sessionOf(t)
	rs.advance(rs.mw.lifetime + time.Minute)
	resp, body := rs.send(t, http.MethodGet, "/page", apiCall())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the renewing request: %d %q", resp.StatusCode, body)
	}
	set := map[string]string{}
	for _, c := range resp.Cookies() {
		if c.MaxAge > 0 {
			set[c.Name] = c.Path
		}
	}
	if set["__Host-entraauth_main"] != "/" || set["entraauth_main_full"] != "/portals/main/" {
		t.Fatalf("the renewal set %v, want both cookies", set)
	}
	renewed := rs.sessionOf(t)
	if renewed.IssuedAt <= before.IssuedAt || renewed.ID != before.ID {
		t.Fatalf("the remembered session was issued at %d (before %d), ID kept %v", renewed.IssuedAt, before.IssuedAt, renewed.ID == before.ID)
	}
	tokens := rs.tenant.Hits("token")
	forgetEverySession()
	restored := rs.sessionOf(t)
	if restored.IssuedAt != renewed.IssuedAt || rs.tenant.Hits("token") != tokens {
		t.Errorf("restored from the portal cookie: issued at %d, want the renewed %d; token requests %d -> %d", restored.IssuedAt, renewed.IssuedAt, tokens, rs.tenant.Hits("token"))
	}
}
