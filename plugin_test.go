package entraauth

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

var alice = entraidtest.User{
	OID:               "6c1e3d5a-7b8f-4a2e-9d1c-0b2a3c4d5e6f",
	Name:              "Alice Example",
	PreferredUsername: "alice@contoso.example",
	Email:             "alice@contoso.example",
	Groups:            []string{"a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002"},
	Roles:             []string{"Reader"},
}

// stack is a fake tenant, the middleware in front of an upstream that
// echoes what it receives, and a browser with a cookie jar.
type stack struct {
	t        *testing.T
	tenant   *entraidtest.Tenant
	mw       *Middleware
	server   *httptest.Server
	upstream chan http.Header
}

// setClock makes now the middleware's clock, for authorize and for
// passCached alike.
func setClock(m *Middleware, now func() time.Time) {
	m.now = now
	m.until = func(t time.Time) time.Duration { return t.Sub(now()) }
}

func newStack(t *testing.T, change func(c *Config)) *stack {
	t.Helper()
	return newStackFor(t, alice, change)
}

// newStackFor is newStack with user as the tenant's one user, signed in
// automatically.
func newStackFor(t *testing.T, user entraidtest.User, change func(c *Config)) *stack {
	t.Helper()
	return newStackForUsers(t, []entraidtest.User{user}, change)
}

// newStackForUsers is newStack with users as the tenant's users, the first
// one signed in automatically (tenant.SetSignIn picks another).
func newStackForUsers(t *testing.T, users []entraidtest.User, change func(c *Config)) *stack {
	t.Helper()
	tenant := entraidtest.NewTenant(entraidtest.Options{
		TenantID: testTenantID,
		ClientID: testClientID,
		// A secret of its own: Entra ID clients are shared by configuration,
		// and a later test's tenant may get this one's port.
		ClientSecret: "client-secret-" + randomToken(),
		Users:        users,
		SignIn:       users[0].PreferredUsername,
	})
	t.Cleanup(func() { tenant.Close() })
	st := &stack{t: t, tenant: tenant, upstream: make(chan http.Header, 100)}

	c := validConfig()
	c.MicrosoftEntraID.AuthorityHost = tenant.URL
	c.MicrosoftEntraID.ClientSecret = tenant.ClientSecret
	if change != nil {
		change(c)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		// When the buffer is full the oldest request makes room: the
		// latest is always kept for lastUpstream.
		select {
		case st.upstream <- h:
		default:
			select {
			case <-st.upstream:
			default:
			}
			select {
			case st.upstream <- h:
			default:
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "upstream "+r.URL.RequestURI())
	})
	h, err := New(context.Background(), next, c, "test")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	st.mw = h.(*Middleware)
	st.server = httptest.NewTLSServer(h)
	t.Cleanup(func() { st.server.Close() })
	return st
}

// browser returns a client that behaves like a browser navigating: a cookie
// jar, Accept: text/html, and redirects followed.
func (st *stack) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		st.t.Fatal(err)
	}
	// Server.Client returns one shared client: give each browser its own.
	return &http.Client{Transport: st.server.Client().Transport, Jar: jar}
}

func navigate(t *testing.T, c *http.Client, rawURL string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// lastUpstream returns the headers of the latest request the upstream
// received since the previous call, and forgets the earlier ones: the
// upstream records a request before it answers, so a response in hand
// means its request is in.
func (st *stack) lastUpstream() http.Header {
	var last http.Header
	for {
		select {
		case h := <-st.upstream:
			last = h
		default:
			if last == nil {
				st.t.Fatal("the upstream received no request")
			}
			return last
		}
	}
}

// signIn runs the whole sign-in in c and returns the final response.
func (st *stack) signIn(c *http.Client) *http.Response {
	st.t.Helper()
	resp, body := navigate(st.t, c, st.server.URL+"/start")
	if resp.StatusCode != 200 || body != "upstream /start" {
		st.t.Fatalf("sign-in ended with %d %q", resp.StatusCode, body)
	}
	st.lastUpstream()
	return resp
}

func TestSignInReturnsToTheOriginalURLWithIdentityHeaders(t *testing.T) {
	st := newStack(t, nil)
	c := st.browser()
	req, _ := http.NewRequest("GET", st.server.URL+"/reports/2026?year=2026&q=a%20b", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("X-Forwarded-User", "mallory")
	req.Header["X-FORWARDED-EMAIL"] = []string{"mallory@evil.example"}
	req.Header.Add("X-Forwarded-Groups", "admins")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "upstream /reports/2026?year=2026&q=a%20b" {
		t.Fatalf("got %d %q, want the original URL from the upstream", resp.StatusCode, body)
	}
	h := st.lastUpstream()
	want := map[string]string{
		"X-Forwarded-User":               alice.OID,
		"X-Forwarded-Email":              alice.Email,
		"X-Forwarded-Name":               alice.Name,
		"X-Forwarded-Preferred-Username": alice.PreferredUsername,
		"X-Forwarded-Groups":             strings.Join(alice.Groups, ","),
		"X-Forwarded-Roles":              "Reader",
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("upstream %s = %q, want [%q]", k, got, v)
		}
	}
	for k := range h {
		if strings.EqualFold(k, "X-Forwarded-Email") && k != "X-Forwarded-Email" {
			t.Errorf("a spoofed %s reached the upstream", k)
		}
	}
	if cookie := h.Get("Cookie"); strings.Contains(cookie, "entraauth_") {
		t.Errorf("the session cookie reached the upstream: %q", cookie)
	}
	if st.tenant.Hits("token") != 1 {
		t.Errorf("token endpoint hits = %d, want 1", st.tenant.Hits("token"))
	}

	// Signed in now: no trip to the tenant.
	resp, body2 := navigate(t, c, st.server.URL+"/again")
	if resp.StatusCode != 200 || body2 != "upstream /again" || st.tenant.Hits("authorize") != 1 {
		t.Fatalf("second visit: %d %q, authorize hits %d", resp.StatusCode, body2, st.tenant.Hits("authorize"))
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	st := newStack(t, nil)
	c := noRedirects(st.browser())
	resp, _ := navigate(t, c, st.server.URL+"/")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want 302", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	for _, p := range []string{"state", "nonce", "code_challenge", "redirect_uri", "client_id"} {
		if q.Get(p) == "" {
			t.Errorf("authorize URL lacks %s: %s", p, loc)
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("response_type") != "code" {
		t.Errorf("authorize URL: %s", loc)
	}
	if want := st.server.URL + "/portals/main/oauth2/callback"; q.Get("redirect_uri") != want {
		t.Errorf("redirect_uri = %q, want %q", q.Get("redirect_uri"), want)
	}
	login := findSetCookie(resp, "entraauth_main_login_")
	for _, attr := range []string{"Path=/portals/main/oauth2/callback", "Max-Age=600", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(login, attr) {
			t.Errorf("login cookie %q lacks %s", login, attr)
		}
	}
	// The cookie that ties the sign-in to this browser (see bindLogin).
	binding := findSetCookie(resp, "__Host-entraauth_main_login=")
	for _, attr := range []string{"Path=/;", "Max-Age=600", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(binding, attr) || strings.Contains(binding, "Domain=") {
			t.Errorf("binding cookie %q lacks %s or has a Domain", binding, attr)
		}
	}

	// Follow to the tenant and back to the callback by hand.
	resp, _ = navigate(t, c, loc.String())
	callback := resp.Header.Get("Location")
	resp, _ = navigate(t, c, callback)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != st.server.URL+"/" {
		t.Fatalf("callback: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// __Host-: Secure, Path=/ and no Domain, so that no sibling subdomain
	// can set a cookie of that name (see TestSessionCookieNames).
	sess := findSetCookie(resp, "__Host-entraauth_main=")
	// Kept until maxLifetime (24 hours by default): renewals go on that long.
	for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=86400"} {
		if !strings.Contains(sess, attr) {
			t.Errorf("session cookie %q lacks %s", sess, attr)
		}
	}
	if strings.Contains(sess, "Domain=") {
		t.Errorf("session cookie %q has a Domain without cookieDomain", sess)
	}
	if !strings.Contains(findSetCookie(resp, "entraauth_main_login_"), "Max-Age=0") {
		t.Errorf("the login cookie was not deleted at the callback")
	}
}

// The session cookie's name: __Host- before the configured or default
// name where browsers allow it (Secure, no Domain), so that a sibling
// subdomain cannot plant one for the parent domain.
func TestSessionCookieNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"the default name gets the __Host- prefix", nil, "__Host-entraauth_main"},
		{"a configured name gets it too", func(c *Config) { c.Session.CookieName = "myapp" }, "__Host-myapp"},
		{"a name with the __Host- prefix keeps it", func(c *Config) { c.Session.CookieName = "__Host-myapp" }, "__Host-myapp"},
		{"a name with the __Secure- prefix is kept", func(c *Config) { c.Session.CookieName = "__Secure-myapp" }, "__Secure-myapp"},
		{"a cookie for a parent domain cannot have it", func(c *Config) { c.Session.CookieDomain = "example.com" }, "entraauth_main"},
		{"nor can a cookie that is not Secure", func(c *Config) { c.Session.InsecureCookies = true }, "entraauth_main"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := guard(t, tc.change)
			if m.cookie.Name != tc.want {
				t.Errorf("session cookie %q, want %q", m.cookie.Name, tc.want)
			}
		})
	}
}

// A session cookie from before the __Host- prefix keeps working for the
// rest of its life (at most maxLifetime): its first request moves it to
// the new name and deletes the old one, chunks included.
func TestASessionFromBeforeTheHostPrefixIsMovedToIt(t *testing.T) {
	m, upstream := guard(t, nil)
	before, _ := guard(t, func(c *Config) { c.Session.InsecureCookies = true }) // seals as the old name did
	for _, tc := range []struct {
		name    string
		session *session.Session
	}{
		{"a session in one cookie", aliceSession()},
		{"a session in three chunks", func() *session.Session {
			s := aliceSession()
			for i := 0; i < 200; i++ {
				s.Groups = append(s.Groups, fmt.Sprintf("b0b0b0b0-0000-4000-8000-%012d", i))
			}
			return s
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := oldSessionCookie(t, before, tc.session)
			if !strings.HasPrefix(old, "entraauth_main=") {
				t.Fatalf("the old cookie: %.40q", old)
			}
			r := httptest.NewRequest("GET", "https://app.example.com/moved", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Cookie", old+"; theme=dark")
			w := httptest.NewRecorder()
			m.ServeHTTP(w, r)
			if w.Code != http.StatusOK || (*upstream).Get("X-Forwarded-User") != alice.OID {
				t.Fatalf("with the old cookie: %d, user %q", w.Code, (*upstream).Get("X-Forwarded-User"))
			}
			if got := (*upstream).Get("Cookie"); got != "theme=dark" {
				t.Errorf("the upstream got the cookies %.60q", got)
			}
			var moved []string
			deleted := map[string]bool{}
			for _, c := range w.Result().Cookies() {
				switch {
				case c.MaxAge < 0 && c.Path == "/" && c.Domain == "":
					deleted[c.Name] = true
				case strings.HasPrefix(c.Name, "__Host-entraauth_main") && c.Secure && c.Path == "/" && c.Domain == "" && c.HttpOnly:
					moved = append(moved, c.Name+"="+c.Value)
				case strings.HasPrefix(c.Name, "entraauth_main_full") && c.Secure && c.Path == "/portals/main/" && c.Domain == "" && c.HttpOnly:
					// The whole session, for the restore hop.
				default:
					t.Errorf("unexpected cookie %s", c)
				}
			}
			for _, pair := range strings.Split(old, "; ") {
				name, _, _ := strings.Cut(pair, "=")
				if !deleted[name] {
					t.Errorf("the old cookie %s was not deleted", name)
				}
			}
			if len(moved) == 0 {
				t.Fatal("the session was not moved to the __Host- cookie")
			}
			r = httptest.NewRequest("GET", "https://app.example.com/after", nil)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Cookie", strings.Join(moved, "; "))
			w = httptest.NewRecorder()
			m.ServeHTTP(w, r)
			if w.Code != http.StatusOK || (*upstream).Get("X-Forwarded-User") != alice.OID {
				t.Errorf("with the moved cookie: %d, user %q", w.Code, (*upstream).Get("X-Forwarded-User"))
			}
		})
	}
}

// Sign-out deletes the session under both names, chunks included (a
// browser may still hold the cookie from before the __Host- prefix), and
// the sign-in binding cookie: nothing of the plugin's is left.
func TestSignOutDeletesTheSessionUnderBothNames(t *testing.T) {
	// Entra ID unreachable at once: sign-out continues without it.
	m, _ := guard(t, func(c *Config) { c.MicrosoftEntraID.AuthorityHost = "http://127.0.0.1:1" })
	r := httptest.NewRequest("POST", "https://app.example.com/portals/main/logout", nil)
	r.Header.Set("Origin", "https://app.example.com")
	r.Header.Set("Cookie", "__Host-entraauth_main=2.new; __Host-entraauth_main_1=chunk; entraauth_main=2.old; entraauth_main_1=chunk; __Host-entraauth_main_login=binding")
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	deleted := map[string]bool{}
	for _, c := range w.Result().Cookies() {
		if c.MaxAge < 0 {
			deleted[c.Name] = true
		}
	}
	for _, name := range []string{"__Host-entraauth_main", "__Host-entraauth_main_1", "entraauth_main", "entraauth_main_1", "__Host-entraauth_main_login"} {
		if !deleted[name] {
			t.Errorf("sign-out (%d) did not delete %s", w.Code, name)
		}
	}
}

func noRedirects(c *http.Client) *http.Client {
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func findSetCookie(resp *http.Response, prefix string) string {
	for _, v := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(v, prefix) {
			return v
		}
	}
	return ""
}

func TestRequestsThatAreNotNavigationsGet401(t *testing.T) {
	st := newStack(t, nil)
	tests := []struct {
		name    string
		method  string
		headers map[string]string
	}{
		{"an API call without Accept", "GET", nil},
		{"a JSON request", "GET", map[string]string{"Accept": "application/json"}},
		{"a fetch from a page", "GET", map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "cors"}},
		{"a POST form", "POST", map[string]string{"Accept": "text/html"}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, st.server.URL+"/api", nil)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := noRedirects(st.browser()).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("got %d with WWW-Authenticate %q, want 401 with the header", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// startLogin begins a sign-in in c and returns the callback URL the tenant
// sends the browser to, without following it.
func (st *stack) startLogin(c *http.Client, path string) string {
	st.t.Helper()
	resp, _ := navigate(st.t, c, st.server.URL+path)
	if resp.StatusCode != http.StatusFound {
		st.t.Fatalf("start: status %d", resp.StatusCode)
	}
	resp, _ = navigate(st.t, c, resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound {
		st.t.Fatalf("authorize: status %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func TestCallbackRefusesForgedReplayedAndForeignState(t *testing.T) {
	st := newStack(t, nil)

	t.Run("a state no browser was given", func(t *testing.T) {
		c := noRedirects(st.browser())
		st.startLogin(c, "/")
		resp, body := navigate(t, c, st.server.URL+"/portals/main/oauth2/callback?code=abc&state="+randomToken())
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid_state") {
			t.Fatalf("got %d, want 400 invalid_state", resp.StatusCode)
		}
	})

	t.Run("a malformed state", func(t *testing.T) {
		c := noRedirects(st.browser())
		resp, _ := navigate(t, c, st.server.URL+"/portals/main/oauth2/callback?code=abc&state=../../x")
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("got %d, want 400", resp.StatusCode)
		}
	})

	t.Run("a state from another browser", func(t *testing.T) {
		victim := noRedirects(st.browser())
		callback := st.startLogin(victim, "/")
		attacker := noRedirects(st.browser())
		resp, _ := navigate(t, attacker, callback)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("got %d, want 400", resp.StatusCode)
		}
		if findSetCookie(resp, "__Host-entraauth_main=") != "" {
			t.Fatal("a session was set for a foreign state")
		}
	})

	t.Run("a replayed callback with the login cookie kept", func(t *testing.T) {
		c := noRedirects(st.browser())
		callback := st.startLogin(c, "/")
		u, _ := url.Parse(callback)
		kept := c.Jar.Cookies(u)
		resp, _ := navigate(t, c, callback)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("first use: %d", resp.StatusCode)
		}
		// The replay comes from a browser that kept the login cookie but
		// has no session (one with a session is just sent home).
		replayer := noRedirects(st.browser())
		replayer.Jar.SetCookies(u, kept)
		hits := st.tenant.Hits("token")
		resp, _ = navigate(t, replayer, callback)
		if resp.StatusCode != http.StatusBadRequest || findSetCookie(resp, "__Host-entraauth_main=") != "" || st.tenant.Hits("token") != hits {
			t.Fatalf("replay: got %d, want 400 with no session and no code redemption", resp.StatusCode)
		}
	})

	t.Run("several tabs signing in at once", func(t *testing.T) {
		c := noRedirects(st.browser())
		first := st.startLogin(c, "/tab1")
		second := st.startLogin(c, "/tab2")
		for _, tab := range []struct{ callback, want string }{{second, "/tab2"}, {first, "/tab1"}} {
			resp, _ := navigate(t, c, tab.callback)
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != st.server.URL+tab.want {
				t.Fatalf("tab %s: %d to %q", tab.want, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})
}

func TestCallbackRefusesIDTokensThatFailAnyCheck(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(claims map[string]interface{})
	}{
		{"a wrong nonce", func(c map[string]interface{}) { c["nonce"] = "replayed-nonce" }},
		{"no nonce", func(c map[string]interface{}) { delete(c, "nonce") }},
		{"another issuer", func(c map[string]interface{}) {
			c["iss"] = "https://login.microsoftonline.com/" + testTenantID + "/v2.0"
		}},
		{"another audience", func(c map[string]interface{}) { c["aud"] = "00000000-1111-2222-3333-444444444444" }},
		{"another tenant", func(c map[string]interface{}) { c["tid"] = "00000000-1111-2222-3333-444444444444" }},
		{"an expired token", func(c map[string]interface{}) { c["exp"] = float64(time.Now().Add(-time.Hour).Unix()) }},
		{"a token not yet valid", func(c map[string]interface{}) { c["nbf"] = float64(time.Now().Add(time.Hour).Unix()) }},
	}
	st := newStack(t, nil)
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			st.tenant.SetClaimsHook(tt.mutate)
			defer st.tenant.SetClaimsHook(nil)
			c := noRedirects(st.browser())
			callback := st.startLogin(c, "/")
			resp, body := navigate(t, c, callback)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "invalid_id_token") {
				t.Fatalf("got %d, want 401 invalid_id_token", resp.StatusCode)
			}
			if findSetCookie(resp, "__Host-entraauth_main=") != "" {
				t.Fatal("a session was set")
			}
		})
	}
}

func TestABadSessionCookieMeansSignInAgain(t *testing.T) {
	st := newStack(t, nil)
	c := st.browser()
	st.signIn(c)
	u, _ := url.Parse(st.server.URL)
	var value string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "__Host-entraauth_main" {
			value = ck.Value
		}
	}
	if value == "" {
		t.Fatal("no session cookie after sign-in")
	}
	foreign, _ := session.NewSealer("another-secret-of-at-least-32-chars!", nil)
	sealedElsewhere, _ := foreign.Seal([]byte(`{}`), st.mw.sessionAAD, time.Now().Add(time.Hour))
	plain, err := st.mw.sealer.Open(value, st.mw.sessionAAD, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The same content sealed for a login-state cookie must not open as
	// the session: the cookie name is authenticated.
	sealedForLogin, _ := st.mw.sealer.Seal(plain, st.mw.loginAAD("entraauth_main_login_abcdefghijkl"), time.Now().Add(time.Hour))

	tests := []struct {
		name    string
		cookies string
	}{
		{"a tampered cookie", "__Host-entraauth_main=" + flipChar(value, len(value)/2)},
		{"a truncated cookie", "__Host-entraauth_main=" + value[:len(value)-5]},
		{"a cookie sealed with another secret", "__Host-entraauth_main=" + sealedElsewhere},
		{"garbage", "__Host-entraauth_main=%%%not-base64"},
		{"trailing junk", "__Host-entraauth_main=" + value + "x"},
		{"a value sealed for a login cookie", "__Host-entraauth_main=" + sealedForLogin},
		{"a chunk count above the bound", "__Host-entraauth_main=99." + value},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", st.server.URL+"/private", nil)
			req.Header.Set("Accept", "text/html")
			req.Header.Set("Cookie", tt.cookies)
			resp, err := noRedirects(&http.Client{Transport: st.server.Client().Transport}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), st.tenant.URL) {
				t.Fatalf("got %d to %q, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

func flipChar(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestAnExpiredSessionMeansSignInAgain(t *testing.T) {
	st := newStack(t, nil)
	c := noRedirects(st.browser())
	callback := st.startLogin(c, "/")
	navigate(t, c, callback)
	resp, _ := navigate(t, c, st.server.URL+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in: %d", resp.StatusCode)
	}
	setClock(st.mw, func() time.Time { return time.Now().Add(24*time.Hour + time.Second) })
	resp, _ = navigate(t, c, st.server.URL+"/")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("after maxLifetime: %d, want a redirect to sign in", resp.StatusCode)
	}
}

func TestPreviousSecretsStillOpenSessions(t *testing.T) {
	st := newStack(t, nil)
	c := st.browser()
	st.signIn(c)
	// Rotate: a new secret seals, the old one only opens.
	cfg := validConfig()
	cfg.MicrosoftEntraID.ClientSecret = st.tenant.ClientSecret
	cfg.MicrosoftEntraID.AuthorityHost = st.tenant.URL
	cfg.Session.Secret = "a-brand-new-secret-with-32-characters"
	cfg.Session.PreviousSecrets = []string{testSecret}
	h, err := New(context.Background(), st.mw.next, cfg, "rotated")
	if err != nil {
		t.Fatal(err)
	}
	st.server.Config.Handler = h
	resp, body := navigate(t, c, st.server.URL+"/after-rotation")
	if resp.StatusCode != 200 || body != "upstream /after-rotation" {
		t.Fatalf("after rotation: %d %q", resp.StatusCode, body)
	}
}

func TestLogout(t *testing.T) {
	st := newStack(t, nil)

	post := func(c *http.Client, headers map[string]string) *http.Response {
		req, _ := http.NewRequest("POST", st.server.URL+"/portals/main/logout", strings.NewReader("rd=%2Fbye"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	t.Run("from the same origin it ends the session at Entra", func(t *testing.T) {
		c := st.browser()
		st.signIn(c)
		resp := post(noRedirects(c), map[string]string{"Origin": st.server.URL})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d, want 303", resp.StatusCode)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if !strings.HasPrefix(loc.String(), st.tenant.URL) || !strings.HasSuffix(loc.Path, "/oauth2/v2.0/logout") {
			t.Fatalf("logout went to %s, want the tenant's end_session_endpoint", loc)
		}
		if got := loc.Query().Get("post_logout_redirect_uri"); got != st.server.URL+"/bye" {
			t.Errorf("post_logout_redirect_uri = %q", got)
		}
		r2, _ := navigate(t, noRedirects(c), st.server.URL+"/")
		if r2.StatusCode != http.StatusFound {
			t.Fatalf("after logout: %d, want a redirect to sign in", r2.StatusCode)
		}
	})

	for _, tt := range []struct {
		name    string
		headers map[string]string
	}{
		{"from another origin it is refused", map[string]string{"Origin": "https://evil.example"}},
		{"with no origin it is refused", nil},
		{"from a cross-site fetch it is refused", map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := st.browser()
			st.signIn(c)
			resp := post(noRedirects(c), tt.headers)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			r2, _ := navigate(t, noRedirects(c), st.server.URL+"/")
			if r2.StatusCode != http.StatusOK {
				t.Fatalf("the session ended: %d", r2.StatusCode)
			}
		})
	}

	t.Run("without rd it ends on the portal's signed-out page, linking back", func(t *testing.T) {
		// Registering one URI makes the tenant check them all.
		st.tenant.AddRedirectURI(st.server.URL + "/portals/main/oauth2/callback")
		st.tenant.AddRedirectURI(st.server.URL + "/portals/main/signed-out")
		c := st.browser()
		st.signIn(c)
		req, _ := http.NewRequest("POST", st.server.URL+"/portals/main/logout", nil)
		req.Header.Set("Origin", st.server.URL)
		req.Header.Set("Referer", st.server.URL+"/reports?year=2026")
		resp, err := noRedirects(c).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if got := loc.Query().Get("post_logout_redirect_uri"); got != st.server.URL+"/portals/main/signed-out" {
			t.Fatalf("post_logout_redirect_uri = %q, want the signed-out page", got)
		}
		// Entra ID sends the browser back to the registered page.
		c.CheckRedirect = nil
		page, body := navigate(t, c, loc.String())
		if page.StatusCode != http.StatusOK || page.Request.URL.Path != "/portals/main/signed-out" || !strings.Contains(body, "You are signed out") {
			t.Fatalf("after end-session: %d at %s: %.300q", page.StatusCode, page.Request.URL, body)
		}
		if !strings.Contains(body, `href="`+st.server.URL+`/reports?year=2026"`) {
			t.Errorf("the page does not link back to where the user was: %.500q", body)
		}
		// The link-back cookie was used up; the page alone links home.
		_, body = navigate(t, c, st.server.URL+"/portals/main/signed-out")
		if !strings.Contains(body, `href="/"`) {
			t.Errorf("the signed-out page again: %.400q", body)
		}
	})

	t.Run("GET shows a sign-out button", func(t *testing.T) {
		resp, body := navigate(t, st.browser(), st.server.URL+"/portals/main/logout")
		if resp.StatusCode != 200 || !strings.Contains(body, `method=post`) {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	})
}

func TestProfileShowsTheSignedInUser(t *testing.T) {
	st := newStack(t, nil)
	c := st.browser()
	st.signIn(c)
	req, _ := http.NewRequest("GET", st.server.URL+"/portals/main/profile", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]interface{}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got["oid"] != alice.OID || got["preferred_username"] != alice.PreferredUsername || got["tid"] != testTenantID {
		t.Fatalf("profile = %v", got)
	}
}

func TestEntraErrorsBecomeClearPages(t *testing.T) {
	t.Run("the user cancels at the tenant: a page that says so, a way to sign in again, the codes folded away and logged", func(t *testing.T) {
		st := newStack(t, nil)
		logs := &lockedBuffer{}
		st.mw.log = log.New(logs, "entraauth[test]: ", 0)
		c := noRedirects(st.browser())
		callback := st.startLogin(c, "/reports?year=2025")
		u, _ := url.Parse(callback)
		q := url.Values{"state": {u.Query().Get("state")}, "error": {"access_denied"},
			"error_description": {"AADSTS65004: User declined to consent to access the app.\r\nTrace ID: 0d1e2f30-aaaa-bbbb-cccc-0123456789ab\r\nCorrelation ID: x"}}
		resp, body := navigate(t, c, st.server.URL+"/portals/main/oauth2/callback?"+q.Encode())
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("got %d, want 403: %q", resp.StatusCode, body)
		}
		for _, want := range []string{
			"<title>Sign-in cancelled</title>",
			"You cancelled signing in",
			`<a class=button href="` + st.server.URL + `/reports?year=2025">Sign in again</a>`,
			"<details><summary>Details</summary>",
			"<code>AADSTS65004</code>",
			"<code>0d1e2f30-aaaa-bbbb-cccc-0123456789ab</code>",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("the page lacks %q: %s", want, body)
			}
		}
		if strings.Contains(body, "declined to consent") || strings.Contains(body, "Try again") {
			t.Errorf("the page reads as an error: %s", body)
		}
		if line := logs.String(); !strings.Contains(line, "access_denied") || !strings.Contains(line, "AADSTS65004") || !strings.Contains(line, "0d1e2f30-aaaa-bbbb-cccc-0123456789ab") {
			t.Errorf("Traefik's log got %q, want the code and the trace ID", line)
		}
	})

	t.Run("an error Entra ID sends back shows its codes open, and logs them on one line", func(t *testing.T) {
		st := newStack(t, nil)
		logs := &lockedBuffer{}
		st.mw.log = log.New(logs, "entraauth[test]: ", 0)
		c := noRedirects(st.browser())
		callback := st.startLogin(c, "/")
		u, _ := url.Parse(callback)
		q := url.Values{"state": {u.Query().Get("state")}, "error": {"access_denied\r\nentraauth[test]: forged"},
			"error_description": {"AADSTS53003: Access has been blocked by Conditional Access policies.\r\nTrace ID: 1a2b\r\nentraauth[test]: forged"}}
		resp, body := navigate(t, c, st.server.URL+"/portals/main/oauth2/callback?"+q.Encode())
		if resp.StatusCode < 400 || !strings.Contains(body, "<details open><summary>Details</summary>") || !strings.Contains(body, "AADSTS53003") || !strings.Contains(body, "Try again") {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
		if lines := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "AADSTS53003") || !strings.Contains(lines[0], "1a2b") {
			t.Errorf("logged %q, want one line with the code and the trace ID", logs.String())
		}
	})

	t.Run("a wrong client secret", func(t *testing.T) {
		st := newStack(t, func(c *Config) { c.MicrosoftEntraID.ClientSecret = "wrong-secret-value" })
		c := noRedirects(st.browser())
		callback := st.startLogin(c, "/")
		req, _ := http.NewRequest("GET", callback, nil)
		req.Header.Set("Accept", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got map[string]interface{}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("not JSON: %q", b)
		}
		if resp.StatusCode != http.StatusBadGateway || got["aadsts"] != "AADSTS7000215" || got["trace_id"] == nil || got["hint"] == nil {
			t.Fatalf("got %d %v", resp.StatusCode, got)
		}
		if strings.Contains(string(b), "wrong-secret-value") {
			t.Fatal("the page reveals the client secret")
		}
	})

	t.Run("an unreachable tenant, then recovery", func(t *testing.T) {
		st := newStack(t, nil)
		st.tenant.SetFault("discovery", entraidtest.Fault{Status: http.StatusServiceUnavailable})
		resp, body := navigate(t, noRedirects(st.browser()), st.server.URL+"/")
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "unreachable") {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		st.tenant.SetFault("discovery", entraidtest.Fault{})
		st.mw.client = mustClient(t, st)
		resp, _ = navigate(t, noRedirects(st.browser()), st.server.URL+"/")
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("after recovery: %d", resp.StatusCode)
		}
	})

	t.Run("plain HTTP without insecureCookies is explained", func(t *testing.T) {
		st := newStack(t, nil)
		req := httptest.NewRequest("GET", "http://app.example.com/", nil)
		req.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		st.mw.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "insecureCookies") {
			t.Fatalf("got %d %q", w.Code, w.Body.String())
		}
	})
}

// mustClient gives the stack a fresh Entra ID client, as a later request
// would once the failure memory has passed.
func mustClient(t *testing.T, st *stack) *entraid.Client {
	t.Helper()
	s, err := validate(func() *Config {
		c := validConfig()
		c.MicrosoftEntraID.ClientSecret = st.tenant.ClientSecret
		c.MicrosoftEntraID.AuthorityHost = st.tenant.URL
		return c
	}(), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := entraid.NewClient(s.entra)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthHostMode(t *testing.T) {
	st := newStack(t, nil)
	// In auth-host mode the test server plays both hosts: requests name
	// the host in the URL and all reach the same handler.
	cfg := validConfig()
	cfg.MicrosoftEntraID.ClientSecret = st.tenant.ClientSecret
	cfg.MicrosoftEntraID.AuthorityHost = st.tenant.URL
	cfg.AuthHost = "auth.example.com"
	cfg.Session.CookieDomain = "example.com"
	h, err := New(context.Background(), st.mw.next, cfg, "authhost")
	if err != nil {
		t.Fatal(err)
	}
	m := h.(*Middleware)

	req := httptest.NewRequest("GET", "https://app1.example.com/dashboard?x=1", nil)
	req.Header.Set("Accept", "text/html")
	w := httptest.NewRecorder()
	m.ServeHTTP(w, req)
	if w.Code != http.StatusFound {
		t.Fatalf("status %d", w.Code)
	}
	loc, _ := url.Parse(w.Header().Get("Location"))
	if got := loc.Query().Get("redirect_uri"); got != "https://auth.example.com/portals/main/oauth2/callback" {
		t.Fatalf("redirect_uri = %q", got)
	}
	login := findSetCookie(&http.Response{Header: w.Header()}, "entraauth_main_login_")
	if !strings.Contains(login, "Domain=example.com") {
		t.Fatalf("login cookie %q is not shared with the auth host", login)
	}

	// The tenant sends the browser to the auth host's callback.
	c := noRedirects(st.browser())
	resp, _ := navigate(t, c, loc.String())
	callback, _ := url.Parse(resp.Header.Get("Location"))
	cb := httptest.NewRequest("GET", callback.RequestURI(), nil)
	cb.Host = "auth.example.com"
	cb.TLS = req.TLS
	cb.Header.Set("Cookie", strings.SplitN(login, ";", 2)[0])
	w = httptest.NewRecorder()
	m.ServeHTTP(w, cb)
	if w.Code != http.StatusFound || w.Header().Get("Location") != "https://app1.example.com/dashboard?x=1" {
		t.Fatalf("callback: %d to %q", w.Code, w.Header().Get("Location"))
	}
	sess := findSetCookie(&http.Response{Header: w.Header()}, "entraauth_main=")
	if !strings.Contains(sess, "Domain=example.com") {
		t.Fatalf("session cookie %q is not set for the cookie domain", sess)
	}

	// The session opens on another application host.
	app2 := httptest.NewRequest("GET", "https://app2.example.com/", nil)
	app2.Header.Set("Cookie", strings.SplitN(sess, ";", 2)[0])
	w = httptest.NewRecorder()
	m.ServeHTTP(w, app2)
	if w.Code != http.StatusOK {
		t.Fatalf("app2: %d", w.Code)
	}
}

func TestOtherCookiesReachTheUpstreamUntouched(t *testing.T) {
	st := newStack(t, nil)
	c := st.browser()
	st.signIn(c)
	u, _ := url.Parse(st.server.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "app", Value: "v=1"}, {Name: "entraauth_mainly", Value: "keep"}})
	navigate(t, c, st.server.URL+"/x")
	h := st.lastUpstream()
	cookie := h.Get("Cookie")
	if !strings.Contains(cookie, "app=v=1") || !strings.Contains(cookie, "entraauth_mainly=keep") || strings.Contains(cookie, "entraauth_main=") {
		t.Fatalf("upstream Cookie = %q", cookie)
	}
}

func TestAStaleCallbackOffersToStartAgainAtTheSiteRoot(t *testing.T) {
	st := newStack(t, nil)
	c := noRedirects(st.browser())
	callback := st.startLogin(c, "/portals/main/profile")
	u, _ := url.Parse(callback)
	// Bookmarked, or opened after the sign-in's 10 minutes: this browser
	// has no sign-in under the state, so where it was going is unknown.
	q := url.Values{"state": {strings.Repeat("B", tokenLength)}, "code": {"x"}}
	resp, body := navigate(t, c, st.server.URL+u.Path+"?"+q.Encode())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "<title>Sign-in expired</title>") || !strings.Contains(body, `<a class=button href="/">Try again</a>`) {
		t.Fatalf("got %d %s, want the sign-in-expired page leading to the site root", resp.StatusCode, body)
	}
}

func TestTheProfilePageLeadsBackToTheApplicationAndOffersToSignOut(t *testing.T) {
	st := newStack(t, nil)
	c := st.browser()
	st.signIn(c)
	tests := []struct {
		name, query, referer, back string
	}{
		{"to the page that linked to it", "", st.server.URL + "/reports?year=2025", st.server.URL + "/reports?year=2025"},
		{"to rd when the link names where to return", "?rd=%2Fdashboard", st.server.URL + "/elsewhere", "/dashboard"},
		{"to the site root from another site", "", "https://evil.example/", "/"},
		{"to the site root from the plugin's own pages", "", st.server.URL + "/portals/main/logout", "/"},
		{"to the site root without a referrer", "", "", "/"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", st.server.URL+"/portals/main/profile"+tt.query, nil)
			req.Header.Set("Accept", "text/html")
			if tt.referer != "" {
				req.Header.Set("Referer", tt.referer)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			back := `<a class="button secondary" href="` + html.EscapeString(tt.back) + `">Back to the application</a>`
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, back) {
				t.Fatalf("got %d %s, want %s", resp.StatusCode, body, back)
			}
			// The buttons come before the claims, which can be long.
			signOut := strings.Index(body, "<button class=button type=submit>Sign out</button>")
			if signOut < 0 || signOut > strings.Index(body, "<dl") {
				t.Fatalf("the Sign out button is missing or after the claims: %s", body)
			}
		})
	}
}

func TestAnOldCallbackOfASignedInUserGoesHome(t *testing.T) {
	st := newStack(t, nil)
	c := noRedirects(st.browser())
	callback := st.startLogin(c, "/")
	navigate(t, c, callback)
	resp, _ := navigate(t, c, callback)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" {
		t.Fatalf("got %d to %q, want a redirect home", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestHostOnlyCookiesLeftFromBeforeCookieDomainAreCleared(t *testing.T) {
	// Before session.cookieDomain, the browser kept host-only cookies: the
	// session cookie (__Host-entraauth_main, entraauth_main from older
	// releases) and the portal cookie under the portal's path, whose name
	// the domain cookie now shares: a pair that opens as neither.
	st := newStack(t, func(c *Config) { c.Session.CookieDomain = "example.com" })
	m := st.mw
	serve := func(r *http.Request, cookies string) *httptest.ResponseRecorder {
		r.Header.Set("Accept", "text/html")
		r.Header.Set("Cookie", cookies)
		w := httptest.NewRecorder()
		m.ServeHTTP(w, r)
		return w
	}
	// cleared lists the host-only cookies w deletes, as name and path.
	cleared := func(w *httptest.ResponseRecorder) []string {
		var got []string
		for _, c := range (&http.Response{Header: w.Header()}).Cookies() {
			if c.MaxAge < 0 && c.Domain == "" && c.Name != "__Host-entraauth_main_login" && !strings.HasPrefix(c.Name, "entraauth_main_login_") {
				got = append(got, c.Name+" "+c.Path)
			}
		}
		sort.Strings(got)
		return got
	}
	portal := "entraauth_main_full=old; entraauth_main_full=new; entraauth_main_full_1=old"
	all := []string{"__Host-entraauth_main /", "entraauth_main /", "entraauth_main_full /portals/main/", "entraauth_main_full_1 /portals/main/"}
	logout := httptest.NewRequest("POST", "https://app.example.com/portals/main/logout", nil)
	logout.Header.Set("Origin", "https://app.example.com")
	tests := []struct {
		name    string
		r       *http.Request
		cookies string
		status  int
		want    []string
	}{
		{"when a sign-in starts", httptest.NewRequest("GET", "https://app.example.com/", nil),
			"__Host-entraauth_main=old; entraauth_main=old; entraauth_main=new", http.StatusFound, all[:2]},
		{"when a session cannot be restored", httptest.NewRequest("GET", "https://app.example.com/portals/main/session?rd=%2F", nil),
			"entraauth_main=new; " + portal, http.StatusTemporaryRedirect, all[1:]},
		{"when the user signs out", logout,
			"__Host-entraauth_main=old; entraauth_main=old; entraauth_main=new; " + portal, http.StatusSeeOther, all},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			w := serve(tt.r, tt.cookies)
			if got := cleared(w); w.Code != tt.status || strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Fatalf("status %d, host-only cookies deleted %q, want %d deleting %q", w.Code, got, tt.status, tt.want)
			}
		})
	}

	t.Run("when the user signs in again", func(t *testing.T) {
		w := serve(httptest.NewRequest("GET", "https://app.example.com/", nil), "")
		login := findSetCookie(&http.Response{Header: w.Header()}, "entraauth_main_login_")
		resp, _ := navigate(t, noRedirects(st.browser()), w.Header().Get("Location"))
		callback, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || callback.Path != "/portals/main/oauth2/callback" {
			t.Fatalf("the tenant answered %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		w = serve(httptest.NewRequest("GET", "https://app.example.com"+callback.RequestURI(), nil), strings.SplitN(login, ";", 2)[0]+"; "+portal)
		if got := cleared(w); w.Code != http.StatusFound || strings.Join(got, ", ") != strings.Join(all[2:], ", ") {
			t.Fatalf("callback: status %d, host-only cookies deleted %q, want a redirect deleting %q", w.Code, got, all[2:])
		}
	})
}

func TestAMultiTenantAppRefusesAForeignTenantWithItsOwnPage(t *testing.T) {
	st := newStack(t, func(c *Config) {
		c.MicrosoftEntraID.TenantID = "organizations"
		c.MicrosoftEntraID.AllowedTenants = []string{"00000000-1111-2222-3333-444444444444"}
	})
	c := noRedirects(st.browser())
	resp, body := navigate(t, c, st.startLogin(c, "/"))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "tenant_not_allowed") || findSetCookie(resp, "__Host-entraauth_main=") != "" {
		t.Fatalf("got %d %q, want 403 tenant_not_allowed and no session", resp.StatusCode, body)
	}
}
