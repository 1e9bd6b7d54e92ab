package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

// renewLifetime is the shortest session.lifetime; renewMaxLifetime ends
// renewals soon after, so that one test sees a renewal and the end.
const (
	renewLifetime    = time.Minute
	renewMaxLifetime = 2 * time.Minute
	ordersAPI        = "api://orders"
)

// signedInClient is a client with a session and when it signed in.
type signedInClient struct {
	*client
	at time.Time
}

func signInClient(t *testing.T, certs *testCerts, rawURL string) *signedInClient {
	t.Helper()
	c := newClient(t, certs)
	at := time.Now()
	c.signIn(rawURL)
	return &signedInClient{client: c, at: at}
}

// waitUntil sleeps until the moment has come.
func waitUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
}

// A session with a one-minute lifetime renews itself in-band through a real
// Traefik: on an API call, without a 401 or a redirect; once for twenty
// parallel requests; with a client assertion instead of a secret; with the
// upstream's access token kept out of the cookie. A disabled user's next
// request after the lifetime ends the session, and maxLifetime forces a
// sign-in.
func TestSessionsRenewThemselvesThroughTraefik(t *testing.T) {
	t.Parallel()
	tenant := newTenant(t, alice.PreferredUsername)
	orders := tenant.AddAPI(entraidtest.API{IdentifierURI: ordersAPI, Scopes: []string{"Orders.Read"}})
	cluster := newClusterIdentity(t)
	cluster.writeToken(t, clusterServiceAccount)
	tenant.TrustFederatedIssuer(cluster.issuer, jwt.KeySet{clusterKeyID: &cluster.key.PublicKey}, clusterServiceAccount)
	tenant.TrustFederatedIssuer(tenant.Issuer(), nil, managedIdentityClientID)
	up := newUpstream(t)
	certs := newCerts(t)

	withSecret := pluginConfig(tenant, sessionSecret)
	sessionSettings(withSecret)["lifetime"] = renewLifetime.String()
	sessionSettings(withSecret)["maxLifetime"] = renewMaxLifetime.String()
	withSecret["upstreamAccessToken"] = map[string]interface{}{"scope": ordersAPI + "/.default"}

	withAssertion := pluginConfig(tenant, sessionSecret)
	entra := withAssertion["microsoftEntraID"].(map[string]interface{})
	delete(entra, "clientSecret")
	entra["clientAssertion"] = "AzureWorkloadIdentity"
	sessionSettings(withAssertion)["lifetime"] = renewLifetime.String()
	sessionSettings(withAssertion)["cookieName"] = "federated"

	tr := newTraefik(t, certs)
	tr.environ = cluster.environ(tenant)
	tr.start(dynamicConfig{
		routes: []route{
			{name: "secret", hosts: []string{appHost}, middlewares: []string{"with-secret"}},
			{name: "assertion", hosts: []string{app2Host}, middlewares: []string{"with-assertion"}},
		},
		middlewares: map[string]map[string]interface{}{"with-secret": withSecret, "with-assertion": withAssertion},
		upstream:    up.srv.URL,
	})
	app, federated := tr.url(appHost, "/"), tr.url(app2Host, "/")

	a := signInClient(t, certs, app)
	p := signInClient(t, certs, app)
	w := signInClient(t, certs, federated)
	tenant.SetSignIn(bob.PreferredUsername)
	d := signInClient(t, certs, app)
	tenant.SetSignIn(alice.PreferredUsername)
	tenant.SetUserDisabled(bob.PreferredUsername, true)
	signedInBy := time.Now()

	// The upstream's access token, minted at the sign-in's arrival: for the
	// configured API, and in no cookie.
	first := a.do(a.request(http.MethodGet, tr.url(appHost, "/orders"), apiHeader()))
	token := strings.TrimPrefix(a.echoed(first).Header.Get("Authorization"), "Bearer ")
	at, err := jwt.Parse(token)
	if err != nil || at.String("aud") != orders.IdentifierURI || at.String("oid") != alice.OID || at.String("scp") != "Orders.Read" {
		t.Fatalf("the upstream's token: %v %v", err, at)
	}
	for _, c := range a.jar.Cookies(first.Request.URL) {
		if strings.Contains(c.Value, token) || len(c.Value) > 3800 {
			t.Errorf("cookie %s holds the access token or outgrew one cookie (%d bytes)", c.Name, len(c.Value))
		}
	}

	waitUntil(signedInBy.Add(renewLifetime + 2*time.Second))

	t.Run("an API call renews without a 401 or a redirect", func(t *testing.T) {
		before := tenant.Hits(entraidtest.Refresh)
		resp := a.do(a.request(http.MethodGet, tr.url(appHost, "/api/items"), apiHeader()))
		if resp.StatusCode != http.StatusOK || resp.location() != "" {
			t.Fatalf("past the lifetime: %s (Location %q): %.300s", resp.Status, resp.location(), resp.body)
		}
		if got := a.echoed(resp).Header.Get("X-Forwarded-User"); got != alice.OID {
			t.Errorf("X-Forwarded-User = %q", got)
		}
		if findSetCookie(resp.Cookies(), sessionCookieName) == nil {
			t.Error("the response carries no renewed session")
		}
		if got := tenant.Hits(entraidtest.Refresh) - before; got != 1 {
			t.Errorf("%d refresh-token requests, want 1", got)
		}
		// The renewed session is trusted again.
		again := a.do(a.request(http.MethodGet, tr.url(appHost, "/api/items"), apiHeader()))
		if again.StatusCode != http.StatusOK || tenant.Hits(entraidtest.Refresh)-before != 1 {
			t.Errorf("after the renewal: %s, %d refreshes", again.Status, tenant.Hits(entraidtest.Refresh)-before)
		}
	})

	t.Run("twenty parallel requests make one refresh-token request", func(t *testing.T) {
		before := tenant.Hits(entraidtest.Refresh)
		u := first.Request.URL
		var cookies []string
		for _, c := range p.jar.Cookies(u) {
			cookies = append(cookies, c.Name+"="+c.Value)
		}
		// The same old cookie on every request, as a page that fires them
		// at once sends it; a client without a jar, on the same transport.
		hc := &http.Client{Transport: p.hc.Transport, Timeout: requestLimit, CheckRedirect: p.hc.CheckRedirect}
		var wg sync.WaitGroup
		statuses := make(chan string, 20)
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, tr.url(appHost, fmt.Sprintf("/api/parallel/%d", i)), nil)
				req.Header = apiHeader()
				req.Header.Set("Cookie", strings.Join(cookies, "; "))
				resp, err := hc.Do(req)
				if err != nil {
					statuses <- err.Error()
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || findSetCookie(resp.Cookies(), sessionCookieName) == nil {
					statuses <- fmt.Sprintf("%s, renewed cookie %v", resp.Status, findSetCookie(resp.Cookies(), sessionCookieName) != nil)
				}
			}(i)
		}
		wg.Wait()
		close(statuses)
		for s := range statuses {
			t.Errorf("a parallel request: %s; want 200 with the renewed cookie", s)
		}
		if got := tenant.Hits(entraidtest.Refresh) - before; got != 1 {
			t.Errorf("20 parallel requests made %d refresh-token requests, want exactly 1", got)
		}
	})

	t.Run("a renewal with a client assertion instead of a secret", func(t *testing.T) {
		before := tenant.Hits(entraidtest.Refresh)
		resp := w.do(w.request(http.MethodGet, tr.url(app2Host, "/api/federated"), apiHeader()))
		if resp.StatusCode != http.StatusOK || findSetCookie(resp.Cookies(), "__Host-federated") == nil {
			t.Fatalf("past the lifetime: %s: %.300s", resp.Status, resp.body)
		}
		if got := tenant.Hits(entraidtest.Refresh) - before; got != 1 {
			t.Errorf("%d refresh-token requests, want 1", got)
		}
	})

	t.Run("a disabled user's session ends", func(t *testing.T) {
		resp := d.do(d.request(http.MethodGet, tr.url(appHost, "/api/items"), apiHeader()))
		var doc map[string]interface{}
		json.Unmarshal(resp.body, &doc)
		if resp.StatusCode != http.StatusUnauthorized || doc["error"] != "session_expired" {
			t.Fatalf("an API call: %s %.300s, want 401 session_expired", resp.Status, resp.body)
		}
		nav := d.visit(tr.url(appHost, "/page"))
		if nav.StatusCode != http.StatusFound || !strings.HasPrefix(nav.location(), tenant.URL+"/") {
			t.Fatalf("a navigation: %s to %q, want a sign-in", nav.Status, nav.location())
		}
	})

	waitUntil(a.at.Add(renewMaxLifetime + 2*time.Second))

	t.Run("maxLifetime forces a sign-in", func(t *testing.T) {
		before := tenant.Hits(entraidtest.Refresh)
		// The cookie's Max-Age ends with maxLifetime, so the browser has
		// dropped it already: 401, whichever of the two codes.
		resp := a.do(a.request(http.MethodGet, tr.url(appHost, "/api/items"), apiHeader()))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(resp.body), "session_expired") && !strings.Contains(string(resp.body), "unauthenticated") {
			t.Fatalf("past maxLifetime: %s %.300s, want 401", resp.Status, resp.body)
		}
		nav := a.visit(tr.url(appHost, "/page"))
		if nav.StatusCode != http.StatusFound || !strings.HasPrefix(nav.location(), tenant.URL+"/") {
			t.Fatalf("a navigation past maxLifetime: %s to %q, want a sign-in", nav.Status, nav.location())
		}
		if tenant.Hits(entraidtest.Refresh) != before {
			t.Error("a session past maxLifetime was renewed")
		}
		a.signIn(app)
	})
}

// tickScript makes the page call the API every 2 seconds with fetch, as a
// single-page app does, and records every outcome.
const tickScript = `(() => {
  window.__ticks = [];
  window.__tick = setInterval(async () => {
    try {
      const r = await fetch('/api/tick', {headers: {'Accept': 'application/json'}});
      const body = await r.json();
      window.__ticks.push({status: r.status, redirected: r.redirected, url: r.url, user: (body.header && body.header['X-Forwarded-User'] || [''])[0]});
    } catch (e) {
      window.__ticks.push({status: 0, error: String(e)});
    }
  }, 2000);
  return true;
})()`

type tick struct {
	Status     int    `json:"status"`
	Redirected bool   `json:"redirected"`
	URL        string `json:"url"`
	User       string `json:"user"`
	Error      string `json:"error"`
}

// A page left open in Chromium keeps calling its API across a renewal: no
// failed call, no navigation, nothing sent to the tenant.
func TestABrowserStaysOnTheAppAcrossARenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, alice.PreferredUsername, func(pc map[string]interface{}) {
		sessionSettings(pc)["lifetime"] = renewLifetime.String()
	})
	page := startChromium(t)
	start := e.traefik.url(appHost, "/spa")
	page.navigate(start)
	page.waitUntil("the app, signed in", 30*time.Second, func(s pageState) bool {
		return s.URL == start && strings.Contains(s.Text, alice.OID)
	})
	signedIn := time.Now()
	page.markDocument()
	var started bool
	if err := page.eval(tickScript, &started); err != nil || !started {
		t.Fatalf("starting the page's API calls: %v", err)
	}
	authorize, refreshes := e.tenant.Hits(entraidtest.Authorize), e.tenant.Hits(entraidtest.Refresh)

	waitUntil(signedIn.Add(renewLifetime + 15*time.Second))

	var ticks []tick
	if err := page.eval(`window.__ticks`, &ticks); err != nil {
		t.Fatal(err)
	}
	if len(ticks) < 20 {
		t.Fatalf("only %d API calls in %v", len(ticks), time.Since(signedIn))
	}
	for i, tk := range ticks {
		if tk.Status != http.StatusOK || tk.Redirected || tk.User != alice.OID {
			t.Errorf("API call %d: %+v, want 200 as alice without a redirect", i, tk)
		}
	}
	s := page.state()
	if !s.Marked || s.URL != start {
		t.Errorf("the page navigated away: now at %s (same document: %v)", s.URL, s.Marked)
	}
	if got := e.tenant.Hits(entraidtest.Authorize) - authorize; got != 0 {
		t.Errorf("%d requests reached the tenant's sign-in during the renewal, want none", got)
	}
	if got := e.tenant.Hits(entraidtest.Refresh) - refreshes; got != 1 {
		t.Errorf("%d refresh-token requests, want 1 renewal", got)
	}
	// What the screenshot shows: the page's own record of its calls.
	_ = page.eval(`document.body.innerText = 'API calls across the renewal:\n' + window.__ticks.map((t, i) => (i + 1) + ': ' + t.status + ' ' + (t.redirected ? 'redirected ' : '') + (t.user || t.error || '')).join('\n')`, nil)
	page.screenshot(filepath.Join(repoRoot(t), "out", "browser-after-renewal.png"))
}

// Several users signed in on one upstreamAccessToken router in the same
// second (the same sign-in time, so that only the user tells their
// sessions apart): each one's upstream requests carry their own identity
// and their own access token, on arrival and after, through Traefik.
func TestEachUserOfAnUpstreamTokenRouterGetsTheirOwnToken(t *testing.T) {
	t.Parallel()
	users := []entraidtest.User{alice, bob}
	for i := 0; i < 2; i++ {
		users = append(users, entraidtest.User{
			OID:               fmt.Sprintf("8c0ffee0-0000-4000-8000-%012d", i),
			Name:              fmt.Sprintf("Upstream User %d", i),
			PreferredUsername: fmt.Sprintf("upstream%d@contoso.example", i),
		})
	}
	tenant := newTenantWith(t, alice.PreferredUsername, users...)
	tenant.AddAPI(entraidtest.API{IdentifierURI: ordersAPI, Scopes: []string{"Orders.Read"}})
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		pc["upstreamAccessToken"] = map[string]interface{}{"scope": ordersAPI + "/.default"}
	}})
	app := e.traefik.url(appHost, "/orders")

	// Each browser goes as far as the callback the tenant sends it to.
	clients := make([]*client, len(users))
	callbacks := make([]string, len(users))
	for i, u := range users {
		tenant.SetSignIn(u.PreferredUsername)
		clients[i] = newClient(t, e.certs)
		resp := clients[i].visit(app)
		for hop := 0; hop < 3 && !strings.Contains(resp.location(), "/oauth2/callback"); hop++ {
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("%s: sign-in stopped at %s %s", u.PreferredUsername, resp.Status, resp.Request.URL)
			}
			resp = clients[i].visit(resp.location())
		}
		if !strings.Contains(resp.location(), "/oauth2/callback") {
			t.Fatalf("%s: no callback after the tenant: %s to %q", u.PreferredUsername, resp.Status, resp.location())
		}
		callbacks[i] = resp.location()
	}
	// Then all callbacks at once, early in a second.
	waitUntil(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond))
	var wg sync.WaitGroup
	arrivals := make([]string, len(users))
	for i := range users {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := clients[i].hc.Do(clients[i].request(http.MethodGet, callbacks[i], navigationHeader()))
			if err != nil {
				return
			}
			resp.Body.Close()
			if u, err := resp.Request.URL.Parse(resp.Header.Get("Location")); err == nil && resp.StatusCode == http.StatusFound {
				arrivals[i] = u.String()
			}
		}(i)
	}
	wg.Wait()

	tokens := map[string]string{} // token -> user
	for round := 0; round < 3; round++ {
		for i, u := range users {
			target := app
			header := apiHeader()
			if round == 0 {
				if arrivals[i] == "" {
					t.Fatalf("%s: the callback did not send the browser back", u.PreferredUsername)
				}
				// The arrival, the request that mints the token.
				target, header = arrivals[i], navigationHeader()
			}
			seen := clients[i].echoed(clients[i].do(clients[i].request(http.MethodGet, target, header)))
			auth := seen.Header.Get("Authorization")
			tok, err := jwt.Parse(strings.TrimPrefix(auth, "Bearer "))
			if err != nil {
				t.Fatalf("%s, round %d: Authorization %.40q: %v", u.PreferredUsername, round, auth, err)
			}
			if got := seen.Header.Get("X-Forwarded-User"); got != u.OID || tok.String("oid") != u.OID {
				t.Errorf("%s, round %d: the upstream got X-Forwarded-User %q with a token of %q, want both %q",
					u.PreferredUsername, round, got, tok.String("oid"), u.OID)
			}
			if other, ok := tokens[auth]; ok && other != u.OID {
				t.Errorf("%s, round %d: the same token as %s", u.PreferredUsername, round, other)
			}
			tokens[auth] = u.OID
		}
	}
	if len(tokens) != len(users) {
		t.Errorf("%d distinct tokens for %d users over 3 rounds, want one each", len(tokens), len(users))
	}
}
