package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
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

// sentCookies records the Cookie header of every request Chromium sends,
// from the DevTools network events: what went on the wire, HttpOnly
// cookies included, which no script of the page can read.
type sentCookies struct {
	order  []string          // request IDs, first seen first
	url    map[string]string // request ID -> URL
	header map[string]string // request ID -> Cookie header ("" for none)
}

// recordSentCookies starts recording the requests of page.
func recordSentCookies(page *browserPage) *sentCookies {
	s := &sentCookies{url: map[string]string{}, header: map[string]string{}}
	page.onEvent = func(method string, params json.RawMessage) {
		var ev struct {
			RequestID string `json:"requestId"`
			Request   struct {
				URL string `json:"url"`
			} `json:"request"`
			Headers map[string]string `json:"headers"`
		}
		if json.Unmarshal(params, &ev) != nil {
			return
		}
		switch method {
		case "Network.requestWillBeSent":
			if _, seen := s.url[ev.RequestID]; !seen {
				s.order = append(s.order, ev.RequestID)
			}
			s.url[ev.RequestID] = ev.Request.URL
		case "Network.requestWillBeSentExtraInfo":
			// HTTP/2 spells it cookie, HTTP/1.1 Cookie.
			s.header[ev.RequestID] = ""
			for k, v := range ev.Headers {
				if strings.EqualFold(k, "cookie") {
					s.header[ev.RequestID] = v
				}
			}
		}
	}
	page.call("Network.enable", nil, nil)
	return s
}

// to is the Cookie header of the last request to rawURL, once its headers
// have been reported.
func (s *sentCookies) to(page *browserPage, rawURL string) string {
	page.t.Helper()
	var header string
	found := waitFor(5*time.Second, 100*time.Millisecond, func() bool {
		page.state() // events arrive while a call waits
		for i := len(s.order) - 1; i >= 0; i-- {
			id := s.order[i]
			if h, reported := s.header[id]; reported && s.url[id] == rawURL {
				header = h
				return true
			}
		}
		return false
	})
	if !found {
		page.t.Fatalf("Chromium reported no request headers for %s", rawURL)
	}
	return header
}

// pluginCookies is the part of a Cookie header that holds the plugin's
// cookies, as sent, and their names.
func pluginCookies(header string) (string, []string) {
	var pairs, names []string
	for _, pair := range strings.FieldsFunc(header, func(r rune) bool { return r == ';' || r == '\n' }) {
		pair = strings.TrimSpace(pair)
		name, _, _ := strings.Cut(pair, "=")
		if strings.Contains(name, "entraauth") {
			pairs = append(pairs, pair)
			names = append(names, name)
		}
	}
	return strings.Join(pairs, "; "), names
}

// pageEcho is the upstream's echo of the request that loaded the page
// (Chromium shows JSON as text).
func pageEcho(t *testing.T, page *browserPage) echoed {
	t.Helper()
	var e echoed
	if err := page.eval(`JSON.parse((document.querySelector('pre') || document.body).textContent)`, &e); err != nil || e.Header == nil {
		t.Fatalf("the page is not the upstream's echo (%v): %.300s", err, page.state().Text)
	}
	return e
}

// checkIdentityOf checks that the upstream got every identity header of
// user, all its groups, and none of the plugin's cookies.
func checkIdentityOf(t *testing.T, when string, user entraidtest.User, got echoed) {
	t.Helper()
	for name, want := range map[string]string{
		"X-Forwarded-User":               user.OID,
		"X-Forwarded-Email":              user.Email,
		"X-Forwarded-Name":               user.Name,
		"X-Forwarded-Preferred-Username": user.PreferredUsername,
		"X-Forwarded-Roles":              strings.Join(user.Roles, ","),
	} {
		if v := got.Header.Get(name); v != want {
			t.Errorf("%s: the upstream got %s %q, want %q", when, name, v, want)
		}
	}
	groups := strings.Split(got.Header.Get("X-Forwarded-Groups"), ",")
	want := append([]string(nil), user.Groups...)
	sort.Strings(groups)
	sort.Strings(want)
	if strings.Join(groups, ",") != strings.Join(want, ",") {
		t.Errorf("%s: the upstream got %d groups, want the user's %d: %.120s", when, len(groups), len(want), got.Header.Get("X-Forwarded-Groups"))
	}
	if c := strings.Join(got.Header.Values("Cookie"), "; "); strings.Contains(c, "entraauth") {
		t.Errorf("%s: the plugin's cookies reached the upstream: %.200s", when, c)
	}
}

// A user in 200 groups, in Chromium, through one Traefik: signs in at the
// tenant's page and lands where they were going, with every group and
// identity header at the upstream; an ordinary request carries at most
// 1 KB of the plugin's cookies; past the session's lifetime a navigation
// renews in-band (a refresh-token request, not the tenant's sign-in page)
// with every group still there; the sign-out ends the session, in the
// browser and for a copy of its cookies taken before.
func TestABrowserUserIn200GroupsSignsInRenewsAndSignsOut(t *testing.T) {
	// The wait for the renewal is a minute long: let it overlap with the
	// other parallel tests.
	t.Parallel()
	ines := entraidtest.User{
		OID:               "7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e",
		Name:              "Ines Example",
		PreferredUsername: "ines@contoso.example",
		Email:             "ines@contoso.example",
		Groups:            manyGroups(11, 200),
		Roles:             []string{"Reader"},
	}
	// No user approved in advance: the tenant shows its sign-in page.
	tenant := newTenantWith(t, "", ines)
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		sessionSettings(pc)["lifetime"] = renewLifetime.String()
	}})
	page := startChromium(t)
	sent := recordSentCookies(page)
	atApp := func(target string) func(pageState) bool {
		return func(s pageState) bool { return s.URL == target && strings.Contains(s.Text, ines.OID) }
	}
	// checkCookieSize measures the plugin's cookies on an ordinary request
	// to the app and returns the session cookie (the handle) sent.
	checkCookieSize := func(when, target string) string {
		t.Helper()
		page.navigate(target)
		page.waitUntil("the app "+when, 30*time.Second, atApp(target))
		sentPlugin, names := pluginCookies(sent.to(page, target))
		t.Logf("%s, the plugin's cookies on %s: %d bytes, %v", when, target, len(sentPlugin), names)
		if len(sentPlugin) > 1024 {
			t.Errorf("%s, Chromium sent %d bytes of the plugin's cookies %v on an ordinary request, want at most 1024", when, len(sentPlugin), names)
		}
		handle := ""
		for _, pair := range strings.Split(sentPlugin, "; ") {
			if strings.HasPrefix(pair, sessionCookieName+"=") {
				handle = pair
			}
		}
		if handle == "" {
			t.Fatalf("%s, Chromium did not send the session cookie %s: %v", when, sessionCookieName, names)
		}
		checkIdentityOf(t, when, ines, pageEcho(t, page))
		return handle
	}

	// (1) The sign-in at the tenant's page.
	start := e.traefik.url(appHost, "/hello?from=browser")
	page.navigate(start)
	page.waitUntil("the tenant's sign-in page", 30*time.Second, func(s pageState) bool {
		return strings.HasPrefix(s.URL, tenant.URL+"/") && strings.Contains(strings.ToLower(s.Text), "ines")
	})
	page.check("Ines's account", fmt.Sprintf(clickUserScript, ines.PreferredUsername))
	page.waitUntil("the app, signed in", 30*time.Second, atApp(start))
	signedInAt := time.Now()
	// (2) What the upstream got on arrival.
	checkIdentityOf(t, "on arrival", ines, pageEcho(t, page))
	// (3) What Chromium sends on an ordinary request.
	handle := checkCookieSize("after the sign-in", e.traefik.url(appHost, "/reports?year=2026"))

	// (4) The renewal, on a navigation past the lifetime.
	authorizes, refreshes := tenant.Hits(entraidtest.Authorize), tenant.Hits(entraidtest.Refresh)
	waitUntil(signedInAt.Add(renewLifetime + 2*time.Second))
	renewing := e.traefik.url(appHost, "/after/the/lifetime")
	page.navigate(renewing)
	page.waitUntil("the app past the session's lifetime", 30*time.Second, atApp(renewing))
	checkIdentityOf(t, "on the renewing navigation", ines, pageEcho(t, page))
	if got := tenant.Hits(entraidtest.Authorize) - authorizes; got != 0 {
		t.Errorf("the renewal went through the tenant's sign-in page (%d authorize requests), want none", got)
	}
	if got := tenant.Hits(entraidtest.Refresh) - refreshes; got != 1 {
		t.Errorf("%d refresh-token requests, want 1 renewal", got)
	}
	if renewed := checkCookieSize("after the renewal", e.traefik.url(appHost, "/reports?year=2027")); renewed == handle {
		t.Error("the renewal did not give the browser a new session cookie")
	}

	// (5) The sign-out, with a copy of the cookies taken before it: the
	// session cookie (the handle) and the portal cookie, which the
	// browser sends only to /portals/main/.
	var jar struct {
		Cookies []struct {
			Name     string `json:"name"`
			Value    string `json:"value"`
			Path     string `json:"path"`
			Secure   bool   `json:"secure"`
			HTTPOnly bool   `json:"httpOnly"`
		} `json:"cookies"`
	}
	page.call("Network.getCookies", map[string]interface{}{"urls": []string{e.traefik.url(appHost, "/portals/main/session")}}, &jar)
	var copies []*http.Cookie
	var copied []string
	for _, c := range jar.Cookies {
		copies = append(copies, &http.Cookie{Name: c.Name, Value: c.Value, Path: c.Path, Secure: c.Secure, HttpOnly: c.HTTPOnly})
		copied = append(copied, c.Name+" (path "+c.Path+")")
	}
	if !strings.Contains(strings.Join(copied, " "), sessionCookieName+" ") || !strings.Contains(strings.Join(copied, " "), "entraauth_main_full") {
		t.Fatalf("Chromium holds %v, want the session cookie and the portal cookie", copied)
	}
	app := e.traefik.url(appHost, "/")
	replay := func() *client {
		c := newClient(t, e.certs)
		u, _ := url.Parse(app)
		c.jar.SetCookies(u, copies)
		return c
	}
	if !signedIn(t, replay(), e.traefik.url(appHost, "/api/items")) {
		t.Fatalf("the copy of %v does not open the app before the sign-out", copied)
	}

	page.navigate(e.traefik.url(appHost, "/portals/main/logout"))
	page.waitUntil("the sign-out page", 30*time.Second, func(s pageState) bool { return strings.Contains(s.Text, "Sign out") })
	page.markDocument()
	page.check("the Sign out button", `(() => { const b = Array.from(document.querySelectorAll('button')).find(b => b.innerText === 'Sign out'); if (!b) return 'no button'; b.click(); return true; })()`)
	page.waitUntil("the signed-out page", 30*time.Second, func(s pageState) bool {
		return !s.Marked && strings.Contains(strings.ToLower(s.Text), "signed out")
	})
	authorizes = tenant.Hits(entraidtest.Authorize)
	after := e.traefik.url(appHost, "/hello?after=sign-out")
	page.navigate(after)
	back := page.waitUntil("the tenant's sign-in page after the sign-out", 30*time.Second, func(s pageState) bool {
		return strings.HasPrefix(s.URL, tenant.URL+"/") && strings.Contains(strings.ToLower(s.Text), "ines") || strings.Contains(s.Text, ines.OID)
	})
	if strings.Contains(back.Text, ines.OID) || tenant.Hits(entraidtest.Authorize) == authorizes {
		t.Errorf("after the sign-out, a navigation to the app was served at %s, want the tenant's sign-in: %.300s", back.URL, back.Text)
	}

	if signedIn(t, replay(), e.traefik.url(appHost, "/api/items")) {
		t.Errorf("a copy of %v taken before the sign-out still opens the app through Traefik", copied)
	}
	// A navigation with the copy, through the restore hop if it is offered
	// one: never to the upstream.
	thief := replay()
	resp := thief.visit(e.traefik.url(appHost, "/reports"))
	for i := 0; i < 3 && resp.StatusCode == http.StatusTemporaryRedirect && strings.HasPrefix(resp.location(), "/"); i++ {
		resp = thief.visit(e.traefik.url(appHost, resp.location()))
	}
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.location(), tenant.URL+"/") {
		t.Errorf("a navigation with the copy after the sign-out: %s to %q, want 302 to the tenant: %.200s", resp.Status, resp.location(), resp.body)
	}
	// The portal cookie sent to the restore hop itself restores nothing.
	thief = replay()
	thief.visit(e.traefik.url(appHost, "/portals/main/session?rd=/api/items"))
	u, _ := url.Parse(app)
	thief.jar.SetCookies(u, copies) // whatever the hop deleted
	if signedIn(t, thief, e.traefik.url(appHost, "/api/items")) {
		t.Errorf("the restore hop brought back the signed-out session from the copy of %v", copied)
	}
}
