package e2e

import (
	"fmt"
	"net/http"
	"os"
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

// check runs a JavaScript expression over the page that returns true or
// a string saying what is wrong.
func (p *browserPage) check(what, expr string) {
	p.t.Helper()
	var got interface{}
	if err := p.eval(expr, &got); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
	if got != true {
		p.t.Errorf("%s: %v; page: %.600s", what, got, p.state().Text)
	}
}

// The pages a person meets besides the application say what happened,
// read in a real browser at 1280x900: a cancel at the tenant's account
// picker, a stale callback, and the profile page with its way back.
func TestBrowserPagesSayWhatHappened(t *testing.T) {
	e := newEnv(t, "", nil)
	page := startChromium(t)
	page.call("Emulation.setDeviceMetricsOverride", map[string]interface{}{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil)
	out := filepath.Join(repoRoot(t), "out")
	start := e.traefik.url(appHost, "/reports?year=2025")
	atTenant := func(s pageState) bool {
		return strings.HasPrefix(s.URL, e.tenant.URL+"/") && strings.Contains(strings.ToLower(s.Text), "alice")
	}

	t.Run("cancel at the account picker", func(t *testing.T) {
		page.t = t
		page.navigate(start)
		page.waitUntil("the tenant's sign-in page", 30*time.Second, atTenant)
		page.check("the Cancel button", `(() => { const b = document.getElementById('cancel'); if (!b) return 'no #cancel'; b.click(); return true; })()`)
		cancelled := page.waitUntil("the cancelled page", 30*time.Second, func(s pageState) bool {
			return strings.HasPrefix(s.URL, e.traefik.url(appHost, "/portals/main/oauth2/callback"))
		})
		page.screenshot(filepath.Join(out, "browser-sign-in-cancelled.png"))
		for _, want := range []string{"Sign-in cancelled", "You cancelled signing in", "Sign in again", "Details"} {
			if !strings.Contains(cancelled.Text, want) {
				t.Errorf("the page does not say %q: %.600s", want, cancelled.Text)
			}
		}
		for _, unwanted := range []string{"AADSTS65004", "declined to consent", "Try again"} {
			if strings.Contains(cancelled.Text, unwanted) {
				t.Errorf("the page shows %q outside its closed Details part: %.600s", unwanted, cancelled.Text)
			}
		}
		page.check("the codes in the closed Details part", `(() => { const d = document.querySelector('details'); if (!d) return 'no details'; if (d.open) return 'open'; return d.textContent.includes('AADSTS65004') && d.textContent.includes('Trace ID') || d.textContent; })()`)
		logged := waitFor(5*time.Second, 100*time.Millisecond, func() bool {
			b, _ := os.ReadFile(filepath.Join(e.traefik.dir, "stdout.log"))
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "sign-in did not complete") && strings.Contains(line, "access_denied AADSTS65004 (trace ID ") {
					return true
				}
			}
			return false
		})
		if !logged {
			t.Errorf("Traefik's log has no line with the cancel's code and trace ID:\n%s", e.traefik.logTail(20))
		}
		page.check("Sign in again", fmt.Sprintf(`(() => { const a = Array.from(document.querySelectorAll('a')).find(a => a.innerText === 'Sign in again'); if (!a) return 'no link'; if (a.href !== %q) return a.href; a.click(); return true; })()`, start))
		page.waitUntil("the tenant's sign-in page again", 30*time.Second, atTenant)
	})

	t.Run("the profile page leads back to the application, its Sign out button above the fold", func(t *testing.T) {
		page.t = t
		page.check("alice's button", fmt.Sprintf(clickUserScript, alice.PreferredUsername))
		page.waitUntil("the app, signed in", 30*time.Second, func(s pageState) bool {
			return s.URL == start && strings.Contains(s.Text, alice.OID)
		})
		// Followed from the application, as a link would.
		page.check("a link to the profile", `(() => { location.href = '/portals/main/profile'; return true; })()`)
		page.waitUntil("the profile page", 30*time.Second, func(s pageState) bool {
			return strings.HasSuffix(s.URL, "/portals/main/profile") && strings.Contains(s.Text, "Sign out")
		})
		page.screenshot(filepath.Join(out, "browser-profile-1280x900.png"))
		page.check("Sign out above the fold at 900 px", `(() => { const b = Array.from(document.querySelectorAll('button')).find(b => b.innerText === 'Sign out'); if (!b) return 'no button'; const r = b.getBoundingClientRect(); return r.bottom <= window.innerHeight && window.innerHeight === 900 || 'bottom ' + r.bottom + ' of ' + window.innerHeight; })()`)
		page.check("Back to the application", fmt.Sprintf(`(() => { const a = Array.from(document.querySelectorAll('a')).find(a => a.innerText === 'Back to the application'); if (!a) return 'no link'; if (a.href !== %q) return a.href; a.click(); return true; })()`, start))
		page.waitUntil("the application again", 30*time.Second, func(s pageState) bool {
			return s.URL == start && strings.Contains(s.Text, alice.OID)
		})
	})

	t.Run("a stale callback offers to start again at the site root", func(t *testing.T) {
		page.t = t
		// Signed out (a signed-in user's old callback just goes home).
		page.call("Network.clearBrowserCookies", nil, nil)
		page.navigate(e.traefik.url(appHost, "/portals/main/oauth2/callback?code=x&state="+strings.Repeat("A", 43)))
		stale := page.waitUntil("the sign-in-expired page", 30*time.Second, func(s pageState) bool {
			return strings.Contains(s.Text, "Sign-in expired")
		})
		if !strings.Contains(stale.Text, "Please start again") {
			t.Errorf("the page does not say to start again: %.600s", stale.Text)
		}
		page.check("Try again", fmt.Sprintf(`(() => { const a = Array.from(document.querySelectorAll('a')).find(a => a.innerText === 'Try again'); return !a ? 'no link' : a.href === %q || a.href; })()`, e.traefik.url(appHost, "/")))
	})
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
	tenant, up, _, a, b := twoTraefiksFor(t, hana)
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
	b.reload(dynamicConfig{routes: []route{{name: "app", hosts: []string{appHost}, middlewares: []string{authMiddleware}}}, middlewares: map[string]map[string]interface{}{authMiddleware: rotated}, upstream: up.srv.URL})
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
