package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestFirstVisitSignsInAndReturnsToTheOriginalURLWithItsQuery(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	start := e.traefik.url(appHost, "/reports/q3?year=2024&tag=a%20b&tag=c")

	first := e.client.visit(start)
	if first.StatusCode != http.StatusFound {
		t.Fatalf("first visit: got %s, want 302 to the tenant: %.300s", first.Status, first.body)
	}
	authz, err := url.Parse(first.location())
	if err != nil {
		t.Fatal(err)
	}
	wantAuthz := e.tenant.URL + "/" + e.tenant.TenantID + "/oauth2/v2.0/authorize"
	if got := authz.Scheme + "://" + authz.Host + authz.Path; got != wantAuthz {
		t.Fatalf("first visit redirects to %s, want %s", got, wantAuthz)
	}
	q := authz.Query()
	wantQuery := map[string]string{
		"client_id":             e.tenant.ClientID,
		"response_type":         "code",
		"code_challenge_method": "S256",
		"redirect_uri":          e.traefik.url(appHost, "/portals/main/oauth2/callback"),
	}
	for k, want := range wantQuery {
		if got := q.Get(k); got != want {
			t.Errorf("authorize %s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge", "scope"} {
		if q.Get(k) == "" {
			t.Errorf("authorize request has no %s", k)
		}
	}
	loginCookie := findSetCookie(first.Cookies(), "entraauth_main_login_")
	if loginCookie == nil {
		t.Fatalf("first visit set no login-state cookie: %v", first.Header.Values("Set-Cookie"))
	}
	checkCookieAttributes(t, loginCookie, "/portals/main/oauth2/callback")
	if wantName := "entraauth_main_login_" + prefix(q.Get("state"), 12); loginCookie.Name != wantName {
		t.Errorf("login-state cookie %q, want %q", loginCookie.Name, wantName)
	}

	final, hops := e.client.navigate(first.location())
	if final.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended with %s: %v: %.300s", final.Status, hopURLs(hops), final.body)
	}
	if got := final.Request.URL.String(); got != start {
		t.Fatalf("sign-in ended at %s, want the original %s (hops %v)", got, start, hopURLs(hops))
	}
	echo := e.client.echoed(final)
	if echo.Path != "/reports/q3" || echo.RawQuery != "year=2024&tag=a%20b&tag=c" {
		t.Errorf("upstream got %s?%s, want /reports/q3?year=2024&tag=a%%20b&tag=c", echo.Path, echo.RawQuery)
	}
	if got := echo.Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Errorf("X-Forwarded-User = %q, want alice's oid %q", got, alice.OID)
	}

	var sessionCookie *http.Cookie
	for _, h := range hops {
		for _, c := range h.Cookies() {
			if c.Name == sessionCookieName && c.MaxAge >= 0 {
				sessionCookie = c
			}
		}
	}
	if sessionCookie == nil {
		t.Fatalf("no session cookie set on the way: %v", hopURLs(hops))
	}
	checkCookieAttributes(t, sessionCookie, "/")

	// Signed in: the next visit goes straight to the upstream.
	again := e.client.visit(e.traefik.url(appHost, "/other"))
	if again.StatusCode != http.StatusOK {
		t.Fatalf("second visit: got %s, want 200 without a new sign-in", again.Status)
	}
	if n := e.tenant.Hits("token"); n != 1 {
		t.Errorf("token endpoint hit %d times, want 1", n)
	}
}

func TestUpstreamGetsIdentityHeadersAndNeverClientSentCopies(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	e.client.signIn(e.traefik.url(appHost, "/"))

	h := navigationHeader()
	// Raw keys: HTTP/1.1 sends them with this casing, as an attacker would.
	h["x-forwarded-user"] = []string{"mallory"}
	h["X-FORWARDED-EMAIL"] = []string{"mallory@evil.example"}
	h["X-Forwarded-name"] = []string{"Mallory"}
	h["x-Forwarded-Preferred-Username"] = []string{"mallory@evil.example"}
	h["X-Forwarded-Groups"] = []string{"admins"}
	h["x-forwarded-roles"] = []string{"Admin", "Owner"}
	// CGI-style servers read underscores as dashes.
	h["X_Forwarded_User"] = []string{"mallory-underscore"}
	echo := e.client.echoed(e.client.do(e.client.request(http.MethodGet, e.traefik.url(appHost, "/whoami"), h)))

	want := map[string]string{
		"X-Forwarded-User":               alice.OID,
		"X-Forwarded-Email":              alice.Email,
		"X-Forwarded-Name":               alice.Name,
		"X-Forwarded-Preferred-Username": alice.PreferredUsername,
		"X-Forwarded-Groups":             strings.Join(alice.Groups, ","),
		"X-Forwarded-Roles":              strings.Join(alice.Roles, ","),
	}
	for name, v := range want {
		if got := echo.Header.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("upstream %s = %q, want exactly %q", name, got, v)
		}
	}
	for name, vs := range echo.Header {
		for _, v := range vs {
			if strings.Contains(strings.ToLower(v), "mallory") || v == "admins" || v == "Admin" || v == "Owner" {
				t.Errorf("a client-sent value reached the upstream: %s: %q", name, v)
			}
		}
	}
	for _, c := range echo.Header.Values("Cookie") {
		if strings.Contains(c, "entraauth_") {
			t.Errorf("the plugin's cookies reached the upstream: %q", c)
		}
	}

	// A spoofed identity never replaces a sign-in.
	stranger := newClient(t, e.certs)
	spoof := apiHeader()
	spoof["X-Forwarded-User"] = []string{alice.OID}
	resp := stranger.do(stranger.request(http.MethodGet, e.traefik.url(appHost, "/"), spoof))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unauthenticated request with a spoofed X-Forwarded-User: got %s, want 401", resp.Status)
	}
}

func TestRequestsThatAreNotNavigationsGet401WithWWWAuthenticate(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	tests := []struct {
		name     string
		method   string
		header   http.Header
		wantJSON bool
	}{
		{"an API call accepting JSON", http.MethodGet, apiHeader(), true},
		{"a fetch accepting HTML but in cors mode", http.MethodGet, http.Header{"Accept": {"text/html"}, "Sec-Fetch-Mode": {"cors"}}, false},
		{"an image request", http.MethodGet, http.Header{"Accept": {"image/avif,image/webp,*/*"}, "Sec-Fetch-Mode": {"no-cors"}, "Sec-Fetch-Dest": {"image"}}, false},
		{"a form POST", http.MethodPost, navigationHeader(), false},
		{"a DELETE from a script", http.MethodDelete, apiHeader(), true},
		{"a client with no headers at all", http.MethodGet, http.Header{}, false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			resp := e.client.do(e.client.request(tt.method, e.traefik.url(appHost, "/api/items?x=1"), tt.header))
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("got %s (Location %q), want 401", resp.Status, resp.location())
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer realm="main"`; !strings.HasPrefix(got, want) {
				t.Errorf("WWW-Authenticate = %q, want %s", got, want)
			}
			if tt.wantJSON {
				var v map[string]interface{}
				if err := json.Unmarshal(resp.body, &v); err != nil {
					t.Errorf("body is not JSON (%v): %.200s", err, resp.body)
				}
			}
		})
	}
	if n := e.tenant.Hits("authorize"); n != 0 {
		t.Errorf("authorize endpoint hit %d times; no request here should start a sign-in", n)
	}
}

func TestAuthHostSignsInOnceForSeveralApps(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	up := newUpstream(t)
	certs := newCerts(t)
	tr := newTraefik(t, certs)

	pc := pluginConfig(tenant, sessionSecret)
	pc["authHost"] = fmt.Sprintf("%s:%d", authHost, tr.port)
	sessionSettings(pc)["cookieDomain"] = "example.test"
	tr.start(dynamicConfig{
		routes:      []route{{name: "apps", hosts: []string{appHost, app2Host, authHost}, middlewares: []string{authMiddleware}}},
		middlewares: map[string]map[string]interface{}{authMiddleware: pc},
		upstream:    up.srv.URL,
	})
	c := newClient(t, certs)

	start := tr.url(appHost, "/dashboard?tab=2")
	first := c.visit(start)
	if first.StatusCode != http.StatusFound {
		t.Fatalf("first visit: got %s, want 302", first.Status)
	}
	authz, err := url.Parse(first.location())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := authz.Query().Get("redirect_uri"), tr.url(authHost, "/portals/main/oauth2/callback"); got != want {
		t.Errorf("redirect_uri = %q, want the auth host's %q", got, want)
	}
	final, hops := c.navigate(first.location())
	if final.StatusCode != http.StatusOK || final.Request.URL.String() != start {
		t.Fatalf("sign-in ended with %s at %s, want 200 at %s: %v", final.Status, final.Request.URL, start, hopURLs(hops))
	}
	if got := c.echoed(final).Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Errorf("app: X-Forwarded-User = %q, want %q", got, alice.OID)
	}

	// The second app shares the session: no redirect at all.
	other := c.visit(tr.url(app2Host, "/"))
	if other.StatusCode != http.StatusOK {
		t.Fatalf("second app: got %s (Location %q), want 200 with the shared session", other.Status, other.location())
	}
	if got := c.echoed(other).Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Errorf("second app: X-Forwarded-User = %q, want %q", got, alice.OID)
	}
	if n := tenant.Hits("token"); n != 1 {
		t.Errorf("token endpoint hit %d times, want a single sign-in", n)
	}
}

// findSetCookie returns the first cookie whose name starts with prefix.
func findSetCookie(cookies []*http.Cookie, prefix string) *http.Cookie {
	for _, c := range cookies {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	return nil
}

// checkCookieAttributes checks what the contract promises for every cookie
// the plugin sets over HTTPS.
func checkCookieAttributes(t *testing.T, c *http.Cookie, path string) {
	t.Helper()
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != path {
		t.Errorf("cookie %s: Secure=%v HttpOnly=%v SameSite=%v Path=%q; want Secure, HttpOnly, SameSite=Lax, Path=%q",
			c.Name, c.Secure, c.HttpOnly, c.SameSite, c.Path, path)
	}
}

func prefix(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}
