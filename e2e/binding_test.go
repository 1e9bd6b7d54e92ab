package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// appBClientID is a second app registration in the fake tenant.
const (
	appBClientID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
	appBSecret   = "app-b-client-secret"
	appBHost     = "b.example.test"
)

// Two apps on sibling hosts share the cookie domain, the session secret and
// the cookie name: a browser signed in at app A must not get into app B
// with A's session (B's assignment, Conditional Access and roles would be
// bypassed), while the hosts of app A keep sharing A's session.
func TestASessionOpensOnlyForTheAppThatIssuedIt(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	tenant.AddApp(appBClientID, appBSecret)
	up := newUpstream(t)
	certs := newCerts(t)

	appA := pluginConfig(tenant, sessionSecret)
	sessionSettings(appA)["cookieDomain"] = "example.test"
	appA["allowedRoles"] = []string{"Reader"}
	appB := pluginConfig(tenant, sessionSecret)
	sessionSettings(appB)["cookieDomain"] = "example.test"
	entra := appB["microsoftEntraID"].(map[string]interface{})
	entra["clientID"] = appBClientID
	entra["clientSecret"] = appBSecret
	// A's role satisfies B's rule: only the binding keeps A's session out.
	appB["allowedRoles"] = []string{"Reader"}

	tr := startTraefik(t, certs, dynamicConfig{
		routes: []route{
			{name: "a", hosts: []string{appHost, app2Host}, middlewares: []string{"app-a"}},
			{name: "b", hosts: []string{appBHost}, middlewares: []string{"app-b"}},
		},
		middlewares: map[string]map[string]interface{}{"app-a": appA, "app-b": appB},
		upstream:    up.srv.URL,
	})
	c := newClient(t, certs)

	if got := c.signIn(tr.url(appHost, "/")).Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Fatalf("app A: X-Forwarded-User = %q, want %q", got, alice.OID)
	}
	// Single sign-on across the hosts of app A still works.
	sibling := c.visit(tr.url(app2Host, "/"))
	if sibling.StatusCode != http.StatusOK || c.echoed(sibling).Header.Get("X-Forwarded-User") != alice.OID {
		t.Fatalf("a sibling host of app A: %s (Location %q), want 200 with the shared session", sibling.Status, sibling.location())
	}
	tokensForA := tenant.Hits("token")

	// An API call to app B with A's session: 401, the upstream never sees it.
	api := c.do(c.request(http.MethodGet, tr.url(appBHost, "/api"), apiHeader()))
	if api.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an API call to app B with app A's session: %s %.200s, want 401", api.Status, api.body)
	}
	// A navigation to app B starts a sign-in with B's client ID.
	nav := c.visit(tr.url(appBHost, "/b-page"))
	authz, err := url.Parse(nav.location())
	if nav.StatusCode != http.StatusFound || err != nil || authz.Query().Get("client_id") != appBClientID {
		t.Fatalf("a navigation to app B with app A's session: %s to %q, want a sign-in with client_id %s", nav.Status, nav.location(), appBClientID)
	}
	// Entra ID now sees a sign-in to B (assignment and Conditional Access
	// of B apply), and B's own session lets the user in.
	final, hops := c.navigate(nav.location())
	if final.StatusCode != http.StatusOK || c.echoed(final).Header.Get("X-Forwarded-User") != alice.OID {
		t.Fatalf("the sign-in to app B ended with %s: %v", final.Status, hopURLs(hops))
	}
	if got := tenant.Hits("token"); got != tokensForA+1 {
		t.Errorf("token endpoint hits: %d, want one more for app B's own sign-in", got)
	}
}

// An authorityHost that is not one of Microsoft's sign-in hosts would have
// Traefik send the app's credentials to whoever runs it: Traefik must refuse
// the middleware with an error naming the option, and keep serving the
// others.
func TestAnAuthorityHostThatIsNotMicrosoftsIsRefused(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, nil)
	if got := e.client.signIn(e.traefik.url(appHost, "/")).Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Fatalf("X-Forwarded-User = %q", got)
	}

	// What someone who may only define middlewares would try: a token
	// endpoint of their own, and Traefik's service-account token as the
	// "client secret".
	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, []byte("eyJhbGciOiJSUzI1NiJ9.service-account-token.signature\n"))
	evil := pluginConfig(e.tenant, sessionSecret)
	entra := evil["microsoftEntraID"].(map[string]interface{})
	entra["authorityHost"] = "https://login.attacker.example.test"
	delete(entra, "clientSecret")
	entra["clientSecretFile"] = token
	cfg := e.cfg
	cfg.routes = append(append([]route(nil), e.cfg.routes...), route{name: "evil", hosts: []string{"evil.example.test"}, middlewares: []string{"evil"}})
	cfg.middlewares = map[string]map[string]interface{}{authMiddleware: e.cfg.middlewares[authMiddleware], "evil": evil}
	e.traefik.expectLogLines("microsoftEntraID.authorityHost")
	e.traefik.writeDynamic(cfg)

	var why string
	if !waitFor(reloadTimeout, 100*time.Millisecond, func() bool {
		for _, kind := range []string{"middlewares", "routers"} {
			_, err := e.traefik.apiStatus(kind, "evil")
			if err != nil && strings.Contains(err.Error(), "microsoftEntraID.authorityHost") && strings.Contains(err.Error(), "not a Microsoft Entra ID sign-in host") {
				why = err.Error()
				return true
			}
			if err != nil {
				why = err.Error()
			}
		}
		return false
	}) {
		t.Fatalf("Traefik did not refuse the middleware with a message naming microsoftEntraID.authorityHost: %s", why)
	}
	resp := e.client.visit(e.traefik.url("evil.example.test", "/"))
	if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusOK {
		t.Fatalf("the refused router answered %s (Location %q)", resp.Status, resp.location())
	}
	if got := e.client.signIn(e.traefik.url(appHost, "/still")).Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Fatalf("the other router after the refusal: X-Forwarded-User = %q", got)
	}
	t.Log(fmt.Sprintf("refused with: %s", why))
}
