package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// clickUserScript clicks the control on the tenant's sign-in page that
// names the user, the way a person picks an account.
const clickUserScript = `(() => {
  const want = %q.toLowerCase();
  const els = Array.from(document.querySelectorAll('button, input[type=submit], a, [role=button]'));
  const el = els.find(e => ((e.innerText || '') + ' ' + (e.value || '') + ' ' + (e.getAttribute('aria-label') || '')).toLowerCase().includes(want));
  if (!el) return false;
  el.click();
  return true;
})()`

// A real browser signs in through the tenant's sign-in page, lands on the
// page it asked for, and stays signed in across a reload.
func TestBrowserSignsInThroughTheTenantPageAndStaysSignedIn(t *testing.T) {
	e := newEnv(t, "", nil)
	page := startChromium(t)
	out := filepath.Join(repoRoot(t), "out")

	start := e.traefik.url(appHost, "/hello?from=browser")
	page.navigate(start)
	page.waitUntil("the tenant's sign-in page", 30*time.Second, func(s pageState) bool {
		return strings.HasPrefix(s.URL, e.tenant.URL+"/") && strings.Contains(strings.ToLower(s.Text), "alice")
	})
	page.screenshot(filepath.Join(out, "browser-tenant-sign-in.png"))

	var clicked bool
	if err := page.eval(fmt.Sprintf(clickUserScript, alice.PreferredUsername), &clicked); err != nil || !clicked {
		if err == nil {
			// Pages may show the display name rather than the UPN.
			err = page.eval(fmt.Sprintf(clickUserScript, alice.Name), &clicked)
		}
		if err != nil || !clicked {
			t.Fatalf("no control for alice on the sign-in page (%v): %.500s", err, page.state().Text)
		}
	}

	signedIn := page.waitUntil("the app, signed in", 30*time.Second, func(s pageState) bool {
		return s.URL == start && strings.Contains(s.Text, "X-Forwarded-User")
	})
	if !strings.Contains(signedIn.Text, alice.OID) {
		t.Fatalf("the app did not get alice's identity: %.800s", signedIn.Text)
	}
	authorizeHits := e.tenant.Hits("authorize")
	// The browser took the session cookie under the __Host- prefix, which
	// it accepts only Secure, with Path=/ and no Domain: no sibling
	// subdomain can set one.
	var jar struct {
		Cookies []struct {
			Name   string `json:"name"`
			Domain string `json:"domain"`
			Path   string `json:"path"`
			Secure bool   `json:"secure"`
		} `json:"cookies"`
	}
	page.call("Network.getCookies", map[string]interface{}{"urls": []string{start}}, &jar)
	var names []string
	hostCookie := false
	for _, c := range jar.Cookies {
		names = append(names, c.Name)
		if c.Name == sessionCookieName && c.Secure && c.Path == "/" && !strings.HasPrefix(c.Domain, ".") {
			hostCookie = true
		}
	}
	if !hostCookie {
		t.Errorf("the browser holds the cookies %v, want the session as %s", names, sessionCookieName)
	}

	page.markDocument()
	page.call("Page.reload", map[string]interface{}{"ignoreCache": true}, nil)
	reloaded := page.waitUntil("the app after a reload", 30*time.Second, func(s pageState) bool {
		return !s.Marked && s.URL == start && strings.Contains(s.Text, alice.OID)
	})
	if n := e.tenant.Hits("authorize"); n != authorizeHits {
		t.Errorf("the reload went back to the tenant (%d authorize hits, was %d)", n, authorizeHits)
	}
	if strings.Contains(reloaded.Text, "entraauth_") {
		t.Errorf("the plugin's cookies reached the app: %.800s", reloaded.Text)
	}
	page.screenshot(filepath.Join(out, "browser-signed-in.png"))
}

// A real browser signed in through one Traefik, as a user in 200 groups,
// is served by a second Traefik sharing the secret that never saw the
// session: a navigation takes the restore hop unseen, and so does a fetch
// POST from the page once B rotated its secret (a new sealer remembers
// nothing); Entra ID is not asked again.
func TestBrowserKeepsItsSessionOnASecondTraefikThroughTheRestoreHop(t *testing.T) {
	hana := entraidtest.User{
		OID:               "6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c",
		Name:              "Hana Example",
		PreferredUsername: "hana@contoso.example",
		Email:             "hana@contoso.example",
		Groups:            manyGroups(9, 200),
	}
	tenant := newTenantWith(t, hana.PreferredUsername, hana)
	tenant.SetRefreshTokenLength(1800)
	up := newUpstream(t)
	certs := newCerts(t)
	cfg := dynamicConfig{
		routes:      []route{{name: "app", hosts: []string{appHost}, middlewares: []string{authMiddleware}}},
		middlewares: map[string]map[string]interface{}{authMiddleware: pluginConfig(tenant, sessionSecret)},
		upstream:    up.srv.URL,
	}
	a := startTraefik(t, certs, cfg)
	b := startTraefik(t, certs, cfg)
	page := startChromium(t)

	start := a.url(appHost, "/hello")
	page.navigate(start)
	page.waitUntil("the app on A, signed in", 30*time.Second, func(s pageState) bool {
		return s.URL == start && strings.Contains(s.Text, hana.OID)
	})
	authorizes, tokens := tenant.Hits("authorize"), tenant.Hits("token")

	// Cookies ignore the port: B gets A's cookies, as behind a load
	// balancer, but not the session.
	other := b.url(appHost, "/reports?year=2026")
	page.navigate(other)
	onB := page.waitUntil("the app on B", 30*time.Second, func(s pageState) bool {
		return s.URL == other && strings.Contains(s.Text, hana.OID)
	})
	if n := strings.Count(onB.Text, manyGroups(9, 200)[199]); n == 0 {
		t.Errorf("B did not set the user's groups: %.300s", onB.Text)
	}
	rotated := pluginConfig(tenant, "the-rotated-session-secret-0123456789-qrstuvwxyz")
	sessionSettings(rotated)["previousSecrets"] = []string{sessionSecret}
	b.reload(dynamicConfig{routes: cfg.routes, middlewares: map[string]map[string]interface{}{authMiddleware: rotated}, upstream: cfg.upstream})
	var fetched echoed
	if err := page.eval(`fetch("/api/items", {method: "POST", headers: {"Content-Type": "application/json", "Accept": "application/json"}, body: "{}"}).then(r => r.json())`, &fetched); err != nil {
		t.Fatalf("a fetch POST on B: %v", err)
	}
	if fetched.Method != http.MethodPost || fetched.Path != "/api/items" || fetched.Header.Get("X-Forwarded-User") != hana.OID {
		t.Errorf("a fetch POST on B reached the upstream as %s %s for %q", fetched.Method, fetched.Path, fetched.Header.Get("X-Forwarded-User"))
	}
	if tenant.Hits("authorize") != authorizes || tenant.Hits("token") != tokens {
		t.Errorf("B asked Entra ID: authorize %d -> %d, token %d -> %d", authorizes, tenant.Hits("authorize"), tokens, tenant.Hits("token"))
	}
}
