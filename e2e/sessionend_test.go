package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// copyCookies gives to the cookies from's jar holds for rawURL, as a
// thief with a copy of the browser's cookies would have them.
func copyCookies(t *testing.T, from, to *client, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	to.jar.SetCookies(u, from.jar.Cookies(u))
}

// A copy of the session cookie taken before a sign-out is refused after
// it, through Traefik, by the router that signed out and by another router
// of the same app.
func TestACopiedSessionIsRefusedAfterSignOutThroughTraefik(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	e.cfg.routes = append(e.cfg.routes, route{name: "other", hosts: []string{app2Host}, middlewares: []string{authMiddleware}})
	e.traefik.reload(e.cfg)
	app := e.traefik.url(appHost, "/")
	e.client.signIn(app)
	thief := newClient(t, e.certs)
	copyCookies(t, e.client, thief, app)
	if !signedIn(t, thief, app) {
		t.Fatal("the copied cookie does not open the site before the sign-out")
	}
	resp := e.client.do(logoutRequest(e.client, e.traefik.url(appHost, "/portals/main/logout"), e.traefik.origin(appHost)))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	if cc := resp.Header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "private, no-store" {
		t.Errorf("the sign-out's Cache-Control %q", cc)
	}
	if signedIn(t, thief, app) {
		t.Fatal("a copy of the session cookie taken before the sign-out still opens the site through Traefik")
	}
	// The same cookie on another router of the app (a browser would send
	// it there with a cookie domain; the thief sends it anyway).
	other := e.traefik.url(app2Host, "/")
	u, _ := url.Parse(app)
	o, _ := url.Parse(other)
	thief.jar.SetCookies(o, thief.jar.Cookies(u))
	if signedIn(t, thief, other) {
		t.Fatal("another router of the same app accepts the signed-out session")
	}
}

// The answer to a request that renews the session carries the new cookie
// and is private whatever the upstream said, and a WebSocket upgrade that
// renews still upgrades: through Traefik, with the plugin under Yaegi.
func TestARenewingResponseIsPrivateThroughTraefik(t *testing.T) {
	t.Parallel()
	echo := newUpstream(t)
	cacheable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWebSocketUpgrade(r) {
			echo.serve(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
		w.Header().Set("Surrogate-Control", "max-age=86400")
		w.Header().Set("Content-Type", "application/javascript")
		io.WriteString(w, "console.log('bundle')")
	}))
	t.Cleanup(cacheable.Close)
	e := &env{t: t, tenant: newTenant(t, alice.PreferredUsername), upstream: echo, certs: newCerts(t)}
	pc := pluginConfig(e.tenant, sessionSecret)
	sessionSettings(pc)["lifetime"] = renewLifetime.String()
	e.cfg = dynamicConfig{
		routes:      []route{{name: "app", hosts: []string{appHost}, middlewares: []string{authMiddleware}}},
		middlewares: map[string]map[string]interface{}{authMiddleware: pc},
		upstream:    cacheable.URL,
	}
	e.traefik = startTraefik(t, e.certs, e.cfg)
	bundle := e.traefik.url(appHost, "/static/app.js")
	signIn := func() *client {
		c := newClient(t, e.certs)
		resp, hops := c.navigate(bundle)
		if resp.StatusCode != http.StatusOK || string(resp.body) != "console.log('bundle')" {
			t.Fatalf("sign-in via %v: %s %.200s", hopURLs(hops), resp.Status, resp.body)
		}
		return c
	}
	at := time.Now()
	script, socket := signIn(), signIn()

	resp := script.do(script.request(http.MethodGet, bundle, http.Header{"Accept": {"*/*"}}))
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=86400, immutable" || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("before the renewal: Cache-Control %q, Set-Cookie %q: want the upstream's own, no cookie", cc, resp.Header.Get("Set-Cookie"))
	}

	waitUntil(at.Add(renewLifetime + 2*time.Second))
	resp = script.do(script.request(http.MethodGet, bundle, http.Header{"Accept": {"*/*"}}))
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), "\n"), "entraauth_main") {
		t.Fatalf("the renewing request: %s, Set-Cookie %q", resp.Status, resp.Header.Values("Set-Cookie"))
	}
	if cc := resp.Header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "private, no-store" {
		t.Errorf("the renewing response's Cache-Control %q, want exactly \"private, no-store\": a shared cache would keep the session", cc)
	}
	if v := resp.Header.Get("Surrogate-Control"); v != "" {
		t.Errorf("Surrogate-Control %q left on the renewing response", v)
	}

	ws, wsResp := wsOpen(t, e, socket, "/ws")
	if ws == nil {
		t.Fatalf("a WebSocket upgrade that renews the session: %v, want 101", wsResp)
	}
	if !strings.Contains(strings.Join(wsResp.Header.Values("Set-Cookie"), "\n"), "entraauth_main") {
		t.Errorf("the upgrade did not renew the session: Set-Cookie %q", wsResp.Header.Values("Set-Cookie"))
	}
	if err := ws.WriteMessage(wsOpText, []byte("renewed")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(time.Now().Add(requestLimit)); err != nil || string(msg) != "user="+alice.OID+" echo=renewed" {
		t.Errorf("echo after a renewing upgrade: %q %v", msg, err)
	}
}
