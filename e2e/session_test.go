package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

// shortLifetime is the shortest session the plugin accepts (it refuses
// lifetimes under a minute, so a typo cannot make sessions useless).
const shortLifetime = time.Minute

// signedIn reports whether the client's session opens: an API call is
// served (200) rather than refused (401).
func signedIn(t *testing.T, c *client, rawURL string) bool {
	t.Helper()
	signed, _ := signedInThroughHop(t, c, rawURL)
	return signed
}

// signedInThroughHop is signedIn, following the restore hop as a browser
// does (a Traefik process that does not remember the session sends it
// through /portals/main/session), and reports whether it did.
func signedInThroughHop(t *testing.T, c *client, rawURL string) (signed, hopped bool) {
	t.Helper()
	resp := c.do(c.request(http.MethodGet, rawURL, apiHeader()))
	if resp.StatusCode == http.StatusTemporaryRedirect && strings.HasPrefix(resp.location(), "/portals/main/session?rd=") {
		u, _ := url.Parse(rawURL)
		back := c.do(c.request(http.MethodGet, u.Scheme+"://"+u.Host+resp.location(), apiHeader()))
		if back.StatusCode != http.StatusTemporaryRedirect || back.location() != u.RequestURI() {
			t.Fatalf("the restore hop for %s answered %s to %q, want 307 back", rawURL, back.Status, back.location())
		}
		hopped = true
		resp = c.do(c.request(http.MethodGet, rawURL, apiHeader()))
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return true, hopped
	case http.StatusUnauthorized:
		return false, hopped
	}
	t.Fatalf("GET %s: got %s, want 200 or 401: %.300s", rawURL, resp.Status, resp.body)
	return false, false
}

// logoutRequest is the POST the plugin's sign-out button sends.
func logoutRequest(c *client, rawURL, origin string) *http.Request {
	h := navigationHeader()
	h["Content-Type"] = []string{"application/x-www-form-urlencoded"}
	if origin != "" {
		h["Origin"] = []string{origin}
	}
	return c.request(http.MethodPost, rawURL, h)
}

func TestLogoutEndsTheSession(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	app := e.traefik.url(appHost, "/")
	e.client.signIn(app)

	resp := e.client.do(logoutRequest(e.client, e.traefik.url(appHost, "/portals/main/logout"), e.traefik.origin(appHost)))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: got %s, want 303: %.300s", resp.Status, resp.body)
	}
	if want := e.tenant.URL + "/" + e.tenant.TenantID + "/oauth2/v2.0/logout"; !strings.HasPrefix(resp.location(), want) {
		t.Errorf("logout redirects to %q, want Entra's end_session_endpoint %s", resp.location(), want)
	}
	if names := e.client.cookieNames(app); len(names) != 0 {
		t.Errorf("cookies left after logout: %v", names)
	}
	if signedIn(t, e.client, app) {
		t.Fatal("still signed in after logout")
	}
	// The sign-out page itself is a plain GET.
	page := e.client.visit(e.traefik.url(appHost, "/portals/main/logout"))
	if page.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(string(page.body)), "<form") {
		t.Errorf("GET logout: got %s, want a page with a sign-out form: %.300s", page.Status, page.body)
	}
}

func TestLogoutFromAnotherOriginIsRefused(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	app := e.traefik.url(appHost, "/")
	e.client.signIn(app)

	tests := []struct {
		name   string
		origin string
	}{
		{"another host", e.traefik.origin("evil.example.test")},
		{"the same host over plain HTTP", strings.Replace(e.traefik.origin(appHost), "https://", "http://", 1)},
		{"the same host on another port", "https://" + appHost + ":1"},
		{"an opaque origin", "null"},
		{"no Origin header", ""},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			resp := e.client.do(logoutRequest(e.client, e.traefik.url(appHost, "/portals/main/logout"), tt.origin))
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %s, want 403", resp.Status)
			}
			if !signedIn(t, e.client, app) {
				t.Fatal("a refused logout ended the session")
			}
		})
	}
}

func TestExpiredSessionLeadsBackToSignIn(t *testing.T) {
	// The wait is a minute long: let it overlap with the other parallel
	// tests.
	t.Parallel()
	e := newEnv(t, alice.PreferredUsername, func(pc map[string]interface{}) {
		sessionSettings(pc)["lifetime"] = shortLifetime.String()
		// Without renewal the session ends at its lifetime (renewal has
		// its own test).
		sessionSettings(pc)["renew"] = false
	})
	app := e.traefik.url(appHost, "/")
	signInAt := time.Now()
	e.client.signIn(app)

	if !signedIn(t, e.client, app) {
		t.Fatal("not signed in right after sign-in")
	}
	ok := waitFor(shortLifetime+30*time.Second, time.Second, func() bool { return !signedIn(t, e.client, app) })
	if !ok {
		t.Fatalf("session still open %v after sign-in with lifetime %v", time.Since(signInAt), shortLifetime)
	}
	// A session must not end much before its lifetime (the cookie's
	// Max-Age and the sealed expiry may round down to the second).
	if age := time.Since(signInAt); age < shortLifetime-2*time.Second {
		t.Errorf("session ended after %v, before its lifetime %v", age, shortLifetime)
	}

	nav := e.client.visit(app)
	if nav.StatusCode != http.StatusFound || !strings.HasPrefix(nav.location(), e.tenant.URL+"/") {
		t.Fatalf("after expiry: got %s to %q, want 302 to the tenant", nav.Status, nav.location())
	}
	e.client.signIn(app)
}

func TestTamperedSessionCookieLeadsBackToSignIn(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	app := e.traefik.url(appHost, "/")

	otherSealer, err := session.NewSealer("an-attacker-secret-that-is-long-enough-0123", nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := (&session.Session{OID: alice.OID, TID: e.tenant.TenantID, Name: alice.Name, IssuedAt: time.Now().Unix(), Expires: time.Now().Add(time.Hour).Unix()}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// Sealed exactly as the plugin seals (same cookie and app binding), but
	// with another secret.
	aad := session.AAD(sessionCookieName, e.tenant.URL, e.tenant.TenantID, e.tenant.ClientID)
	sealedElsewhere, err := otherSealer.Seal(forged, aad, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		tamper func(string) string
	}{
		{"one character changed", func(v string) string {
			i := len(v) / 2
			c := byte('A')
			if v[i] == 'A' {
				c = 'B'
			}
			return v[:i] + string(c) + v[i+1:]
		}},
		{"truncated", func(v string) string { return v[:len(v)-5] }},
		{"garbage", func(string) string { return "not-a-sealed-value" }},
		{"sealed with another secret", func(string) string { return sealedElsewhere }},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			e.client.signIn(app)
			ck, err := e.client.cookie(app, sessionCookieName)
			if err != nil {
				t.Fatalf("after sign-in: %v (cookies %v)", err, e.client.cookieNames(app))
			}
			u, _ := url.Parse(app)
			e.client.jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: tt.tamper(ck.Value), Path: "/", Secure: true, HttpOnly: true}})

			if signedIn(t, e.client, app) {
				t.Fatal("a tampered cookie opened a session")
			}
			nav := e.client.visit(app)
			if nav.StatusCode != http.StatusFound || !strings.HasPrefix(nav.location(), e.tenant.URL+"/") {
				t.Fatalf("with a tampered cookie: got %s to %q, want 302 to the tenant", nav.Status, nav.location())
			}
			e.client.signIn(app)
		})
	}
}

func TestSessionOpensOnEveryInstanceSharingTheSecretAcrossRotation(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	up := newUpstream(t)
	certs := newCerts(t)
	const newSecret = "the-rotated-session-secret-0123456789-qrstuvwxyz"

	config := func(secret string, previous ...string) dynamicConfig {
		pc := pluginConfig(tenant, secret)
		if len(previous) > 0 {
			sessionSettings(pc)["previousSecrets"] = previous
		}
		return dynamicConfig{
			routes:      []route{{name: "app", hosts: []string{appHost}, middlewares: []string{authMiddleware}}},
			middlewares: map[string]map[string]interface{}{authMiddleware: pc},
			upstream:    up.srv.URL,
		}
	}
	a := startTraefik(t, certs, config(sessionSecret))
	b := startTraefik(t, certs, config(sessionSecret))
	c := newClient(t, certs)

	c.signIn(a.url(appHost, "/"))
	// Cookies do not depend on the port: the jar sends A's cookies to B, as
	// a browser would behind a load balancer. B does not remember the
	// session: the first request takes the restore hop, which reads the
	// portal cookie (Path /portals/main/), never Entra ID.
	original, err := c.cookie(a.url(appHost, "/"), sessionCookieName)
	if err != nil {
		t.Fatal(err)
	}
	restore := func() {
		u, _ := url.Parse(b.url(appHost, "/"))
		c.jar.SetCookies(u, []*http.Cookie{{Name: original.Name, Value: original.Value, Path: "/", Secure: true, HttpOnly: true}})
	}

	steps := []struct {
		name       string
		cfg        dynamicConfig
		wantSigned bool
	}{
		{"B with the same secret", config(sessionSecret), true},
		{"B with a new secret and the old one in previousSecrets", config(newSecret, sessionSecret), true},
		{"B with only the new secret", config(newSecret), false},
	}
	for i, s := range steps {
		if i > 0 {
			b.reload(s.cfg)
		}
		restore()
		got, hopped := signedInThroughHop(t, c, b.url(appHost, "/"))
		if got != s.wantSigned {
			t.Errorf("%s: signed in = %v, want %v", s.name, got, s.wantSigned)
		}
		if got && !hopped {
			t.Errorf("%s: B served a session it never saw without the restore hop", s.name)
		}
		if s.wantSigned {
			echo := c.echoed(c.do(c.request(http.MethodGet, b.url(appHost, "/"), apiHeader())))
			if got := echo.Header.Get("X-Forwarded-User"); got != alice.OID {
				t.Errorf("%s: X-Forwarded-User = %q, want %q", s.name, got, alice.OID)
			}
		}
	}
	if n := tenant.Hits("token"); n != 1 {
		t.Errorf("token endpoint hit %d times, want the single sign-in through A", n)
	}
}

// sealLegacySession seals a session of user as the plugin did before the
// __Host- prefix: under the cookie name entraauth_main, with the e2e
// secret, bound to the tenant's app.
func sealLegacySession(t *testing.T, e *env, user entraidtest.User) string {
	t.Helper()
	sealer, err := session.NewSealer(sessionSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := &session.Session{OID: user.OID, TID: e.tenant.TenantID, Name: user.Name, PreferredUsername: user.PreferredUsername, Email: user.Email,
		IssuedAt: now.Unix(), AuthTime: now.Unix(), Expires: now.Add(time.Hour).Unix()}
	plain, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealer.Seal(plain, session.AAD("entraauth_main", e.tenant.URL, e.tenant.TenantID, e.tenant.ClientID), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// A session cookie from before the upgrade to the __Host- prefix keeps the
// user signed in: its first request through Traefik moves it to
// __Host-entraauth_main and deletes the old one, and the moved cookie works.
func TestASessionCookieFromBeforeTheHostPrefixIsMovedToIt(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	app := e.traefik.url(appHost, "/")
	u, _ := url.Parse(app)
	e.client.jar.SetCookies(u, []*http.Cookie{{Name: "entraauth_main", Value: sealLegacySession(t, e, alice), Path: "/", Secure: true, HttpOnly: true}})

	resp := e.client.visit(e.traefik.url(appHost, "/moved"))
	if got := e.client.echoed(resp).Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Fatalf("with the old cookie: X-Forwarded-User %q, want alice", got)
	}
	moved := findSetCookie(resp.Cookies(), sessionCookieName)
	if moved == nil || moved.MaxAge < 0 || !moved.Secure || moved.Path != "/" || moved.Domain != "" {
		t.Fatalf("the session was not moved to %s: %v", sessionCookieName, resp.Header.Values("Set-Cookie"))
	}
	deleted := false
	for _, c := range resp.Cookies() {
		if c.Name == "entraauth_main" && c.MaxAge < 0 {
			deleted = true
		}
	}
	if !deleted {
		t.Errorf("the old cookie was not deleted: %v", resp.Header.Values("Set-Cookie"))
	}
	if names := strings.Join(e.client.cookieNames(app), " "); names != sessionCookieName {
		t.Errorf("the browser holds %q, want %s alone", names, sessionCookieName)
	}
	again := e.client.visit(e.traefik.url(appHost, "/again"))
	if got := e.client.echoed(again).Header.Get("X-Forwarded-User"); got != alice.OID || len(again.Cookies()) != 0 {
		t.Errorf("with the moved cookie: X-Forwarded-User %q, cookies set %v", got, again.Header.Values("Set-Cookie"))
	}
	if n := e.tenant.Hits("authorize"); n != 0 {
		t.Errorf("%d sign-ins, want none: the session lives on", n)
	}
}

// A sibling subdomain sets a cookie for the parent domain under the
// session cookie's old name, holding a session of its own (cookie tossing,
// a session fixation): through Traefik, the victim's __Host- session wins.
func TestACookiePlantedForTheParentDomainDoesNotReplaceTheSession(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	app := e.traefik.url(appHost, "/")
	e.client.signIn(app)

	sibling, _ := url.Parse(strings.Replace(app, appHost, "evil.example.test", 1))
	e.client.jar.SetCookies(sibling, []*http.Cookie{{Name: "entraauth_main", Value: sealLegacySession(t, e, bob), Domain: "example.test", Path: "/", Secure: true}})
	planted := false
	for _, name := range e.client.cookieNames(app) {
		planted = planted || name == "entraauth_main"
	}
	if !planted {
		t.Fatalf("the planted cookie is not sent to the app: %q", e.client.cookieNames(app))
	}
	for _, path := range []string{"/first", "/second"} {
		echo := e.client.echoed(e.client.visit(e.traefik.url(appHost, path)))
		if got := echo.Header.Get("X-Forwarded-User"); got != alice.OID {
			t.Fatalf("%s: X-Forwarded-User %q, want the victim's own (alice), not the planted session's", path, got)
		}
		if c := strings.Join(echo.Header.Values("Cookie"), "; "); strings.Contains(c, "entraauth_") {
			t.Errorf("%s: the plugin's cookies reached the upstream: %q", path, c)
		}
	}
}

// twoTraefiksFor starts a tenant whose one user is user (an Entra-sized
// refresh token), an upstream, and two Traefik processes with the same
// plugin configuration and secret, as two replicas.
func twoTraefiksFor(t *testing.T, user entraidtest.User) (*entraidtest.Tenant, *upstream, *testCerts, *traefik, *traefik) {
	t.Helper()
	tenant := newTenantWith(t, user.PreferredUsername, user)
	tenant.SetRefreshTokenLength(1800)
	up := newUpstream(t)
	certs := newCerts(t)
	cfg := dynamicConfig{
		routes:      []route{{name: "app", hosts: []string{appHost}, middlewares: []string{authMiddleware}}},
		middlewares: map[string]map[string]interface{}{authMiddleware: pluginConfig(tenant, sessionSecret)},
		upstream:    up.srv.URL,
	}
	return tenant, up, certs, startTraefik(t, certs, cfg), startTraefik(t, certs, cfg)
}

// A user in 200 groups with an Entra-sized refresh token carries a cookie
// of well under 1 KB on every request; a second Traefik sharing the secret
// restores the session through the hop (never Entra ID) and sets every
// group; a WebSocket there gets a clear 401 until a page request brought
// the session, and passes after.
func TestAUserIn200GroupsCarriesASmallCookieAndAnotherTraefikRestoresIt(t *testing.T) {
	gina := entraidtest.User{
		OID:               "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
		Name:              "Gina Example",
		PreferredUsername: "gina@contoso.example",
		Email:             "gina@contoso.example",
		Groups:            manyGroups(7, 200),
	}
	tenant, _, certs, a, b := twoTraefiksFor(t, gina)
	c := newClient(t, certs)

	echo := c.signIn(a.url(appHost, "/"))
	if n := len(strings.Split(echo.Header.Get("X-Forwarded-Groups"), ",")); n != 200 {
		t.Errorf("A set %d groups, want 200", n)
	}
	u, _ := url.Parse(a.url(appHost, "/any/page"))
	var pairs []string
	for _, ck := range c.jar.Cookies(u) {
		pairs = append(pairs, ck.Name+"="+ck.Value)
	}
	if header := strings.Join(pairs, "; "); len(header) > 1024 {
		t.Errorf("the cookie on every request is %d bytes, want at most 1024: %.80s", len(header), header)
	}

	if ws, resp := wsOpen(t, &env{t: t, traefik: b}, c, "/ws"); ws != nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a WebSocket on B before any page request: %v, want 401 session_unavailable", resp)
	}
	signed, hopped := signedInThroughHop(t, c, b.url(appHost, "/reports"))
	if !signed || !hopped {
		t.Fatalf("on B: signed in %v through the hop %v, want both", signed, hopped)
	}
	echoB := c.echoed(c.do(c.request(http.MethodGet, b.url(appHost, "/reports"), apiHeader())))
	if echoB.Header.Get("X-Forwarded-User") != gina.OID || echoB.Header.Get("X-Forwarded-Groups") != echo.Header.Get("X-Forwarded-Groups") {
		t.Errorf("B set user %q and groups %.60q, want A's", echoB.Header.Get("X-Forwarded-User"), echoB.Header.Get("X-Forwarded-Groups"))
	}
	if ws, resp := wsOpen(t, &env{t: t, traefik: b}, c, "/ws"); ws == nil {
		t.Errorf("a WebSocket on B once it holds the session: %v, want 101", resp)
	}
	if n := tenant.Hits("token"); n != 1 {
		t.Errorf("token endpoint hit %d times, want the single sign-in through A", n)
	}
}
