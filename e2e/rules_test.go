package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// Who may pass (issue 5): rules, groups overage, multi-tenant apps,
// exclusions and configurable identity headers, through Traefik's own
// decoding of the dynamic configuration.

// guard is one router of a test: a host and how its middleware's plugin
// configuration differs from pluginConfig.
type guard struct {
	host      string
	configure func(pc map[string]interface{})
}

// newGuardedEnv starts Traefik with one router and one middleware per
// guard, all signing in with tenant and sharing the session secret, in
// front of a new upstream.
func newGuardedEnv(t *testing.T, tenant *entraidtest.Tenant, guards ...guard) *env {
	t.Helper()
	e := &env{t: t, tenant: tenant, upstream: newUpstream(t), certs: newCerts(t)}
	e.cfg = dynamicConfig{middlewares: map[string]map[string]interface{}{}, upstream: e.upstream.srv.URL}
	for i, g := range guards {
		pc := pluginConfig(tenant, sessionSecret)
		if g.configure != nil {
			g.configure(pc)
		}
		mw := fmt.Sprintf("%s%d", authMiddleware, i)
		e.cfg.routes = append(e.cfg.routes, route{name: fmt.Sprintf("app%d", i), hosts: []string{g.host}, middlewares: []string{mw}})
		e.cfg.middlewares[mw] = pc
	}
	e.traefik = startTraefik(t, e.certs, e.cfg)
	e.client = newClient(t, e.certs)
	return e
}

// newTenantWith starts the fake tenant with these users, auto-approving
// signIn.
func newTenantWith(t *testing.T, signIn string, users ...entraidtest.User) *entraidtest.Tenant {
	t.Helper()
	tenant := entraidtest.NewTenant(entraidtest.Options{Users: users, SignIn: signIn})
	t.Cleanup(tenant.Close)
	return tenant
}

func entraSettings(pc map[string]interface{}) map[string]interface{} {
	return pc["microsoftEntraID"].(map[string]interface{})
}

// checkRefusedWithSignOut signs user in at rawURL with a new client and
// checks the plugin's answer to a signed-in user the rules refuse: a 403
// page naming the user with a sign-out form, after exactly one trip to
// Entra ID, and 403 again on the next visit rather than a new sign-in.
func checkRefusedWithSignOut(t *testing.T, e *env, user entraidtest.User, rawURL string) {
	t.Helper()
	e.tenant.SetSignIn(user.PreferredUsername)
	c := newClient(t, e.certs)
	before := e.tenant.Hits(entraidtest.Authorize)
	final, hops := c.navigate(rawURL)
	if final.StatusCode != http.StatusForbidden {
		t.Fatalf("%s: sign-in ended with %s, want 403: %v: %.300s", user.PreferredUsername, final.Status, hopURLs(hops), final.body)
	}
	if n := e.tenant.Hits(entraidtest.Authorize) - before; n != 1 {
		t.Errorf("%s: %d trips to the authorize endpoint, want 1 (no redirect loop): %v", user.PreferredUsername, n, hopURLs(hops))
	}
	if final.Request.URL.String() != rawURL {
		t.Errorf("%s: refused at %s, want at the page asked for, %s", user.PreferredUsername, final.Request.URL, rawURL)
	}
	body := string(final.body)
	if !strings.Contains(body, user.PreferredUsername) {
		t.Errorf("%s: the 403 page does not say who is signed in: %.600s", user.PreferredUsername, body)
	}
	if !strings.Contains(body, `<form method=post action="/portals/main/logout"`) {
		t.Errorf("%s: the 403 page has no sign-out form: %.600s", user.PreferredUsername, body)
	}

	again := c.visit(rawURL)
	if again.StatusCode != http.StatusForbidden {
		t.Errorf("%s: next visit got %s (Location %q), want 403 straight away", user.PreferredUsername, again.Status, again.location())
	}
	api := c.do(c.request(http.MethodGet, rawURL, apiHeader()))
	var v map[string]interface{}
	if api.StatusCode != http.StatusForbidden || json.Unmarshal(api.body, &v) != nil || v["error"] != "access_denied" {
		t.Errorf("%s: API call got %s %.200s, want 403 with JSON error access_denied", user.PreferredUsername, api.Status, api.body)
	}

	// The form signs out, and the next visit signs in afresh.
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	out := c.do(logoutRequest(c, e.traefik.url(u.Hostname(), "/portals/main/logout"), e.traefik.origin(u.Hostname())))
	if out.StatusCode != http.StatusSeeOther {
		t.Errorf("%s: sign-out from the 403 page got %s, want 303", user.PreferredUsername, out.Status)
	}
	if next := c.visit(rawURL); next.StatusCode != http.StatusFound {
		t.Errorf("%s: after sign-out got %s, want 302 to sign in again", user.PreferredUsername, next.Status)
	}
}

func TestAllowedGroupsAndRolesLetMembersInAndShowOthersA403WithSignOut(t *testing.T) {
	carol := entraidtest.User{
		OID:               "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
		Name:              "Carol Example",
		PreferredUsername: "carol@contoso.example",
		Email:             "carol@contoso.example",
		Groups:            []string{alice.Groups[0]},
	}
	tenant := newTenantWith(t, "", alice, bob, carol)
	e := newGuardedEnv(t, tenant,
		guard{appHost, func(pc map[string]interface{}) {
			pc["allowedGroups"] = []string{alice.Groups[0], "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"}
		}},
		guard{app2Host, func(pc map[string]interface{}) {
			// As a Docker label would write it.
			pc["allowedRoles"] = "Reader,Writer"
		}},
	)
	groupsApp := e.traefik.url(appHost, "/reports")
	rolesApp := e.traefik.url(app2Host, "/reports")

	tests := []struct {
		user                  entraidtest.User
		passGroups, passRoles bool
	}{
		{alice, true, true},  // in the group, has Reader
		{carol, true, false}, // in the group, no role
		{bob, false, false},  // neither
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.user.PreferredUsername, func(t *testing.T) {
			for _, app := range []struct {
				url  string
				pass bool
			}{{groupsApp, tt.passGroups}, {rolesApp, tt.passRoles}} {
				if !app.pass {
					checkRefusedWithSignOut(t, e, tt.user, app.url)
					continue
				}
				tenant.SetSignIn(tt.user.PreferredUsername)
				c := newClient(t, e.certs)
				if got := c.signIn(app.url).Header.Get("X-Forwarded-User"); got != tt.user.OID {
					t.Errorf("%s: X-Forwarded-User = %q, want %q", app.url, got, tt.user.OID)
				}
			}
		})
	}
}

// manyGroups returns n group object IDs unique to seed.
func manyGroups(seed, n int) []string {
	groups := make([]string, 0, n)
	for i := 0; i < n; i++ {
		groups = append(groups, fmt.Sprintf("%08x-%04x-4000-8000-%012x", seed, i, i))
	}
	return groups
}

func TestGroupsOverageReadsTheUsersGroupsFromGraph(t *testing.T) {
	dana := entraidtest.User{
		OID:               "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
		Name:              "Dana Example",
		PreferredUsername: "dana@contoso.example",
		Email:             "dana@contoso.example",
		Groups:            manyGroups(1, 250),
	}
	erin := entraidtest.User{
		OID:               "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a",
		Name:              "Erin Example",
		PreferredUsername: "erin@contoso.example",
		Email:             "erin@contoso.example",
		Groups:            manyGroups(2, 250),
	}
	wanted := dana.Groups[137]
	tenant := newTenantWith(t, dana.PreferredUsername, dana, erin)
	// Pages of 100: the group sits on the second of three.
	tenant.SetGraphPageSize(100)
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		pc["allowedGroups"] = []string{wanted}
	}})

	echo := e.client.signIn(e.traefik.url(appHost, "/"))
	if got := echo.Header.Get("X-Forwarded-User"); got != dana.OID {
		t.Errorf("X-Forwarded-User = %q, want dana's %q", got, dana.OID)
	}
	if got := echo.Header.Values("X-Forwarded-Groups"); len(got) != 1 || got[0] != wanted {
		t.Errorf("X-Forwarded-Groups = %q, want only the group the rules name, %s", got, wanted)
	}
	// 250 groups and a directory role in pages of 100.
	if n := tenant.Hits(entraidtest.Graph); n < 3 {
		t.Errorf("Microsoft Graph asked %d times, want every page (3)", n)
	}

	// Erin's 250 groups do not include it.
	checkRefusedWithSignOut(t, e, erin, e.traefik.url(appHost, "/"))
}

func TestMultiTenantAppSignsInOnlyUsersOfAllowedTenants(t *testing.T) {
	const otherTenant = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	tenant := newTenant(t, alice.PreferredUsername)
	multi := func(allowed ...string) func(map[string]interface{}) {
		return func(pc map[string]interface{}) {
			entraSettings(pc)["tenantID"] = "organizations"
			entraSettings(pc)["allowedTenants"] = allowed
		}
	}
	e := newGuardedEnv(t, tenant, guard{appHost, multi(tenant.TenantID)}, guard{app2Host, multi(otherTenant)})

	for _, host := range []string{appHost, app2Host} {
		first := e.client.visit(e.traefik.url(host, "/"))
		want := tenant.URL + "/organizations/oauth2/v2.0/authorize?"
		if first.StatusCode != http.StatusFound || !strings.HasPrefix(first.location(), want) {
			t.Errorf("%s: first visit got %s to %q, want 302 to %s...", host, first.Status, first.location(), want)
		}
	}

	echo := e.client.signIn(e.traefik.url(appHost, "/"))
	if got := echo.Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Errorf("allowed tenant: X-Forwarded-User = %q, want alice's %q", got, alice.OID)
	}

	// The ID token's tid is not one of allowedTenants.
	app2 := e.traefik.url(app2Host, "/")
	final, hops := e.client.navigate(app2)
	// The callback refuses the genuine ID token of a tenant that is not
	// allowed with its own page: signing in again would not help.
	if final.StatusCode != http.StatusForbidden {
		t.Fatalf("tenant not allowed: sign-in ended with %s, want 403: %v: %.300s", final.Status, hopURLs(hops), final.body)
	}
	if ct := final.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(final.body), "tenant_not_allowed") {
		t.Errorf("tenant not allowed: got %q %.300s, want an HTML error page naming tenant_not_allowed", ct, final.body)
	}
	if !e.traefik.logContains("tenant " + tenant.TenantID + " is not in AllowedTenants") {
		t.Errorf("Traefik's log does not say why the sign-in was refused")
	}
	for _, h := range hops {
		if c := findSetCookie(h.Cookies(), sessionCookieName); c != nil && c.Name == sessionCookieName && c.MaxAge >= 0 {
			t.Errorf("tenant not allowed: a session cookie was set at %s", h.Request.URL)
		}
	}
	if signedIn(t, e.client, app2) {
		t.Error("tenant not allowed: signed in anyway")
	}
}

func TestExcludedPathsAndMethodsPassWithoutASessionButLoseSpoofedIdentity(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		// As Docker labels would write them: one comma-separated string.
		pc["excludedPaths"] = "/health,/public/*"
		pc["excludedMethods"] = "OPTIONS"
	}})

	spoofed := func(h http.Header) http.Header {
		h["X-Forwarded-User"] = []string{alice.OID}
		h["X-Forwarded-Groups"] = []string{"admins"}
		h["x-forwarded-roles"] = []string{"Admin"}
		// CGI gateways read '.' as '-' too.
		h["X.Forwarded.User"] = []string{alice.OID}
		h["Cookie"] = []string{"__Host-entraauth_main=forged; __Host-entraauth_main_1=more; entraauth_main=old; theme=dark"}
		return h
	}
	preflight := spoofed(http.Header{
		"Origin":                        {"https://spa.example.test"},
		"Access-Control-Request-Method": {"DELETE"},
	})
	tests := []struct {
		name   string
		method string
		path   string
		header http.Header
		pass   bool
	}{
		{"the excluded path", http.MethodGet, "/health", spoofed(apiHeader()), true},
		{"a path under the excluded prefix", http.MethodGet, "/public/css/site.css", spoofed(navigationHeader()), true},
		{"a CORS pre-flight", http.MethodOptions, "/api/items/7", preflight, true},
		{"a path that only starts like the excluded one", http.MethodGet, "/healthz", spoofed(apiHeader()), false},
		{"a path out of the prefix with dot segments", http.MethodGet, "/public/../admin", spoofed(apiHeader()), false},
		{"another method on the API", http.MethodDelete, "/api/items/7", spoofed(apiHeader()), false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, e.certs)
			resp := c.do(c.request(tt.method, e.traefik.url(appHost, tt.path), tt.header))
			if !tt.pass {
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("got %s, want 401 without a session", resp.Status)
				}
				return
			}
			echo := c.echoed(resp)
			if echo.Method != tt.method {
				t.Errorf("upstream got %s, want %s", echo.Method, tt.method)
			}
			for name, got := range echo.Header {
				if folded := strings.ToLower(strings.NewReplacer(".", "-", "_", "-").Replace(name)); strings.HasPrefix(folded, "x-forwarded-") &&
					(strings.HasSuffix(folded, "-user") || strings.HasSuffix(folded, "-groups") || strings.HasSuffix(folded, "-roles")) {
					t.Errorf("spoofed %s reached the upstream: %q", name, got)
				}
			}
			cookies := strings.Join(echo.Header.Values("Cookie"), "; ")
			if strings.Contains(cookies, "entraauth_") || !strings.Contains(cookies, "theme=dark") {
				t.Errorf("upstream Cookie = %q, want theme=dark without the plugin's cookies", cookies)
			}
		})
	}
	if n := tenant.Hits(entraidtest.Authorize); n != 0 {
		t.Errorf("authorize endpoint hit %d times; none of these requests should start a sign-in", n)
	}
}

// Paths that Traefik forwards as they are but that an upstream reads as
// outside the excluded prefix: servlet containers drop a segment's ";..."
// (Traefik's path cleaning leaves "..;" alone), and an upstream that
// decodes twice turns %252e into '.'. Sent raw over TLS, so that no Go
// client cleans them; without a session the plugin must answer 401, and
// with one the upstream must see the path as sent (Traefik forwards it, so
// only the plugin stands between these paths and the upstream).
func TestPathsThatLeaveAnExcludedPrefixNeedASession(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		pc["excludedPaths"] = []interface{}{"/public/*"}
	}})
	e.client.signIn(e.traefik.url(appHost, "/"))
	home, err := url.Parse(e.traefik.url(appHost, "/"))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, ck := range e.client.jar.Cookies(home) {
		pairs = append(pairs, ck.Name+"="+ck.Value)
	}
	session := strings.Join(pairs, "; ")

	if resp, _ := e.rawRequest(t, "/public/site.css", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("a plain path under the excluded prefix: %s, want it to pass without a session", resp.Status)
	}
	for _, path := range []string{
		"/public/..;/admin", "/public/..;jsessionid=x/admin", "/public/%2e%2e;/admin", "/public/..%3b/admin",
		"/public/%252e%252e/admin", "/public/%252e%252e%252fadmin",
	} {
		path := path
		t.Run(path, func(t *testing.T) {
			resp, body := e.rawRequest(t, path, "")
			if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, `"header"`) {
				t.Fatalf("without a session: %s %.200s, want the plugin's 401", resp.Status, body)
			}
			resp, body = e.rawRequest(t, path, session)
			var echo echoed
			if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &echo) != nil {
				t.Fatalf("with a session: %s %.200s, want the upstream's echo", resp.Status, body)
			}
			if echo.Header.Get("X-Forwarded-User") != alice.OID {
				t.Errorf("with a session, the upstream got X-Forwarded-User %q", echo.Header.Get("X-Forwarded-User"))
			}
			t.Logf("with a session the upstream sees %q", echo.Path)
		})
	}
}

// rawRequest sends "GET path" to appHost exactly as written, over its own
// TLS connection, with an API client's Accept and cookie when not "", and
// returns the response and its body.
func (e *env) rawRequest(t *testing.T, path, cookie string) (*http.Response, string) {
	t.Helper()
	u, err := url.Parse(e.traefik.url(appHost, "/"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.client.dial(u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(requestLimit))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAccept: application/json\r\nUser-Agent: entraauth-e2e\r\nConnection: close\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp, string(body)
}

// Traefik drops options that match no field of the plugin's Config, so a
// misspelt rule used to leave its router open to the whole tenant. The
// plugin now refuses the middleware: Traefik logs the error naming the
// option, shows it in its API, and the router answers 404 rather than
// serve the site.
func TestAMisspeltRuleIsRefusedRatherThanIgnored(t *testing.T) {
	e := newEnv(t, bob.PreferredUsername, nil)
	const typoHost = "typo.example.test"
	const want = "unknown option allowedGroup: did you mean allowedGroups?"
	typo := pluginConfig(e.tenant, sessionSecret)
	typo["allowedGroup"] = []interface{}{alice.Groups[0]} // bob is in no group
	cfg := e.cfg
	cfg.routes = append(append([]route(nil), e.cfg.routes...), route{name: "typo", hosts: []string{typoHost}, middlewares: []string{"typo"}})
	cfg.middlewares = map[string]map[string]interface{}{authMiddleware: e.cfg.middlewares[authMiddleware], "typo": typo}
	e.traefik.expectLogLines("unknown option allowedGroup")
	e.traefik.writeDynamic(cfg)

	var refused, served bool
	var why string
	if !waitFor(reloadTimeout, 100*time.Millisecond, func() bool {
		st, err := e.traefik.apiStatus("routers", "typo")
		switch {
		case err != nil && strings.Contains(err.Error(), want):
			refused, why = true, err.Error()
		case err != nil:
			why = err.Error()
		case st != nil:
			served = true
		}
		return refused || served
	}) {
		t.Fatalf("Traefik neither served nor refused the router with the misspelt option: %s", why)
	}
	if served {
		resp, hops := newClient(t, e.certs).navigate(e.traefik.url(typoHost, "/"))
		t.Fatalf("Traefik serves the router with allowedGroup (for allowedGroups): bob, in no group, ends with %s via %v", resp.Status, hopURLs(hops))
	}
	if resp := newClient(t, e.certs).visit(e.traefik.url(typoHost, "/")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the refused router answers %s, want 404", resp.Status)
	}
	if !waitFor(reloadTimeout, 100*time.Millisecond, func() bool { return e.traefik.logContains(want) }) {
		t.Errorf("Traefik's log does not say %q", want)
	}
	// The other router is untouched.
	if got := e.client.signIn(e.traefik.url(appHost, "/")).Header.Get("X-Forwarded-User"); got != bob.OID {
		t.Errorf("the other router: X-Forwarded-User = %q", got)
	}
	t.Logf("refused with: %s", why)
}

func TestConfiguredHeadersReplaceTheDefaultIdentityHeaders(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	tenant.SetClaimsHook(func(claims map[string]interface{}) { claims["department"] = "Finance" })
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		pc["headers"] = map[string]interface{}{
			"X-User-Id":    "oid",
			"X-User-Name":  "preferred_username",
			"X-Department": "department",
		}
	}})
	app := e.traefik.url(appHost, "/")
	e.client.signIn(app)

	h := navigationHeader()
	h["X-User-Id"] = []string{"mallory"}
	h["x-department"] = []string{"Board"}
	h["X-Forwarded-Email"] = []string{"mallory@evil.example"}
	h["X-Forwarded-User"] = []string{"mallory"}
	echo := e.client.echoed(e.client.do(e.client.request(http.MethodGet, app, h)))
	want := map[string]string{
		"X-User-Id":    alice.OID,
		"X-User-Name":  alice.PreferredUsername,
		"X-Department": "Finance",
	}
	for name, v := range want {
		if got := echo.Header.Values(name); len(got) != 1 || got[0] != v {
			t.Errorf("upstream %s = %q, want exactly %q", name, got, v)
		}
	}
	for _, name := range []string{"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Name", "X-Forwarded-Preferred-Username", "X-Forwarded-Groups", "X-Forwarded-Roles"} {
		if got := echo.Header.Values(name); len(got) != 0 {
			t.Errorf("upstream got %s = %q; the headers option replaces the default set", name, got)
		}
	}
}

// logContains reports whether Traefik's log or output (where the plugin
// writes) holds s.
func (tr *traefik) logContains(s string) bool {
	b, _ := os.ReadFile(tr.logFile)
	out, _ := os.ReadFile(filepath.Join(tr.dir, "stdout.log"))
	return strings.Contains(string(b), s) || strings.Contains(string(out), s)
}
