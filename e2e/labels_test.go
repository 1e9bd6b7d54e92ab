package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

// Docker labels (issue 12): most users configure the plugin with labels,
// which reach it as flat strings ("a,b" for a list, "true" for a boolean,
// one key per map entry) decoded by Traefik, not by the file provider's
// YAML. These tests run Traefik's own Docker provider against fakeDocker,
// with containers labelled the way the readme and examples/docker-compose
// say, and check that every option decodes and behaves.

const (
	labelsHost = "app.example.test"
	apiHost    = "api.example.test"
	multiHost  = "multi.example.test"
	brokenHost = "broken.example.test"

	labelsAPI = "api://labels-e2e"
	// labelsCookie is the session.cookieName the labels set.
	labelsCookie = "labels_session"
	// A group nobody is in: the first entry of allowedGroups.
	unusedGroup = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	// A tenant nobody signs in from: the first entry of allowedTenants.
	unusedTenant = "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"
)

// Session secrets: the labels first seal with secretA, then rotate to
// secretB with previousSecrets=secretZ,secretA.
const (
	secretZ = "labels-secret-z-0123456789-abcdefghijklmnop"
	secretA = "labels-secret-a-0123456789-abcdefghijklmnop"
	secretB = "labels-secret-b-0123456789-abcdefghijklmnop"
)

// Users who each fail exactly one of the entra middleware's four lists.
var (
	carol = entraidtest.User{ // not in allowedUsers
		OID: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", Name: "Carol Example",
		PreferredUsername: "carol@contoso.example", Email: "carol@contoso.example",
		Groups: []string{alice.Groups[0]}, Roles: []string{"Reader"},
	}
	dave = entraidtest.User{ // in none of allowedGroups
		OID: "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a", Name: "Dave Example",
		PreferredUsername: "dave@contoso.example", Email: "dave@contoso.example",
		Roles: []string{"Reader"},
	}
	erin = entraidtest.User{ // has none of allowedRoles
		OID: "3e4f5a6b-7c8d-4e9f-8a0b-2c3d4e5f6a7b", Name: "Erin Example",
		PreferredUsername: "erin@contoso.example", Email: "erin@contoso.example",
		Groups: []string{alice.Groups[0]},
	}
	frank = entraidtest.User{ // email in none of allowedEmailDomains
		OID: "4f5a6b7c-8d9e-4f0a-9b1c-3d4e5f6a7b8c", Name: "Frank Example",
		PreferredUsername: "frank@contoso.example", Email: "frank@elsewhere.example",
		Groups: []string{alice.Groups[0]}, Roles: []string{"Writer"},
	}
)

// labels turns compose-style "key=value" lines into a label map.
func labels(lines ...string) map[string]string {
	m := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

// appLabels are the labels of the one application container: three
// routers with three middlewares, every option written as a label.
func appLabels(tenant *entraidtest.Tenant, upstreamPort, clientSecretFile, secret, previous string) map[string]string {
	entra := func(mw string) []string {
		p := "traefik.http.middlewares." + mw + ".plugin.entraauth."
		return []string{
			p + "microsoftEntraID.tenantID=" + tenant.TenantID,
			p + "microsoftEntraID.clientID=" + tenant.ClientID,
			p + "microsoftEntraID.clientSecretFile=" + clientSecretFile,
			p + "microsoftEntraID.authorityHost=" + tenant.URL,
			p + "session.secret=" + secret,
		}
	}
	router := func(name, host, mw string) []string {
		p := "traefik.http.routers." + name + "."
		return []string{
			p + "rule=Host(`" + host + "`)",
			p + "entrypoints=websecure",
			p + "tls=true",
			p + "middlewares=" + mw,
			p + "service=app",
		}
	}
	const e = "traefik.http.middlewares.entra.plugin.entraauth."
	const a = "traefik.http.middlewares.api.plugin.entraauth."
	const m = "traefik.http.middlewares.multi.plugin.entraauth."
	lines := []string{
		"traefik.enable=true",
		"traefik.http.services.app.loadbalancer.server.port=" + upstreamPort,
		e + "microsoftEntraID.scopes=openid,email,offline_access",
		e + "microsoftEntraID.requestTimeout=2s",
		e + "session.previousSecrets=" + previous,
		e + "session.lifetime=45m",
		e + "session.maxLifetime=90m",
		e + "session.cookieName=" + labelsCookie,
		e + "session.insecureCookies=true",
		e + "allowedUsers=" + alice.OID + ",dave@contoso.example,erin@contoso.example,frank@contoso.example",
		e + "allowedGroups=" + unusedGroup + "," + alice.Groups[0],
		e + "allowedRoles=Writer,Reader",
		e + "allowedEmailDomains=fabrikam.example,contoso.example",
		e + "headers.X-User-Id=oid",
		e + "headers.X-User-Email=email",
		e + "headers.X-User-Groups=groups",
		e + "excludedPaths=/health,/public/*",
		e + "excludedMethods=OPTIONS,PURGE",
		a + "apiAudience=" + labelsAPI + "," + tenant.ClientID,
		// The indexed form of a list, which Traefik also accepts.
		a + "requiredScopes[0]=Items.Read",
		a + "requiredScopes[1]=Items.Write",
		a + "apiAcceptV1Tokens=true",
		// The organizations endpoint replaces the tenant ID.
		m + "microsoftEntraID.allowedTenants=" + unusedTenant + "," + tenant.TenantID,
	}
	lines = append(lines, entra("entra")...)
	lines = append(lines, entra("api")...)
	lines = append(lines, entra("multi")...)
	lines = append(lines, router("app", labelsHost, "entra")...)
	lines = append(lines, router("api", apiHost, "api")...)
	lines = append(lines, router("multi", multiHost, "multi")...)
	l := labels(lines...)
	l[m+"microsoftEntraID.tenantID"] = "organizations"
	return l
}

// appRoutes are the routers appLabels defines, for waitApplied.
var appRoutes = dynamicConfig{routes: []route{
	{name: "app@docker", middlewares: []string{"entra@docker"}},
	{name: "api@docker", middlewares: []string{"api@docker"}},
	{name: "multi@docker", middlewares: []string{"multi@docker"}},
}}

// middlewareConfig is a middleware's plugin configuration as Traefik's API
// shows it: what Traefik decoded from the labels.
func (tr *traefik) middlewareConfig(name string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/api/http/middlewares/%s", tr.apiPort, name))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

func TestDockerLabelsDecodeAndBehaveThroughTraefiksDockerProvider(t *testing.T) {
	tenant := newTenantWith(t, alice.PreferredUsername, alice, bob, carol, dave, erin, frank)
	up := newUpstream(t)
	certs := newCerts(t)
	docker := newFakeDocker(t)
	upURL, err := url.Parse(up.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	clientSecretFile := filepath.Join(t.TempDir(), "entra-client-secret")
	writeFile(t, clientSecretFile, []byte(tenant.ClientSecret+"\n"))

	app := docker.run("whoami", upURL.Hostname(), appLabels(tenant, upURL.Port(), clientSecretFile, secretA, secretZ))

	tr := newTraefik(t, certs)
	tr.docker = docker.endpoint
	// The Docker client library reads these; the test's own environment
	// must not point Traefik at another daemon.
	tr.environ = map[string]string{"DOCKER_HOST": "", "DOCKER_API_VERSION": "", "DOCKER_CERT_PATH": "", "DOCKER_TLS_VERIFY": ""}
	// The broken container's error, provoked below.
	tr.expectLogLines("entraauth: session.previousSecrets: ")
	// The misspelt container's error, provoked below.
	tr.expectLogLines("entraauth: unknown option allowedGroup")
	// The file provider serves only the TLS certificate and the revision
	// marker; every router and middleware comes from the labels.
	tr.start(dynamicConfig{upstream: up.srv.URL})
	tr.waitApplied(appRoutes, startTimeout)
	e := &env{t: t, tenant: tenant, upstream: up, certs: certs, traefik: tr, client: newClient(t, certs)}

	for _, call := range []string{"HEAD /_ping", "GET /version", "GET /containers/json", "GET /containers/" + app.ID + "/json", "GET /events"} {
		if docker.called(call) == 0 {
			t.Errorf("Traefik never called %s on the Docker API", call)
		}
	}

	appURL := tr.url(labelsHost, "/reports")
	var aliceSession *http.Cookie
	// alicePortal is the portal cookie of that sign-in (the whole session,
	// Path /portals/main/), which restores the session where the handle in
	// aliceSession is not remembered.
	var alicePortal []*http.Cookie

	t.Run("a sign-in with the label options", func(t *testing.T) {
		first := e.client.visit(appURL)
		loc, err := url.Parse(first.location())
		if first.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("first visit: %s to %q", first.Status, first.location())
		}
		// scopes, with User.Read added for allowedGroups.
		if got := loc.Query().Get("scope"); got != "openid email offline_access User.Read" {
			t.Errorf("authorize scope = %q, want the scopes label's three and User.Read", got)
		}
		final, hops := e.client.navigate(appURL)
		echo := e.client.echoed(final)
		// headers: the map's entries replace the X-Forwarded-* set.
		want := map[string]string{
			"X-User-Id":     alice.OID,
			"X-User-Email":  alice.Email,
			"X-User-Groups": strings.Join(alice.Groups, ","),
		}
		for name, v := range want {
			if got := echo.Header.Values(name); len(got) != 1 || got[0] != v {
				t.Errorf("upstream %s = %q, want %q", name, got, v)
			}
		}
		if got := echo.Header.Values("X-Forwarded-User"); len(got) != 0 {
			t.Errorf("upstream X-Forwarded-User = %q: the headers label should replace the default set", got)
		}
		// session.cookieName, session.maxLifetime (the cookie lives as
		// long as renewals may go on) and the boolean
		// session.insecureCookies.
		for _, h := range hops {
			for _, c := range h.Cookies() {
				if c.Name == labelsCookie {
					aliceSession = c
				}
				if session.IsChunkName(labelsCookie+"_full", c.Name) {
					alicePortal = append(alicePortal, c)
				}
			}
		}
		if aliceSession == nil {
			t.Fatalf("no %s cookie was set: %v", labelsCookie, hopURLs(hops))
		}
		if aliceSession.MaxAge != int((90 * time.Minute).Seconds()) {
			t.Errorf("session cookie Max-Age = %d, want 90m from session.maxLifetime", aliceSession.MaxAge)
		}
		if aliceSession.Secure {
			t.Error("session cookie is Secure although session.insecureCookies=true")
		}
	})

	t.Run("every allow list refuses a user it does not name", func(t *testing.T) {
		tests := []struct {
			user entraidtest.User
			why  string
		}{
			{carol, "the user is not in allowedUsers"},
			{dave, "the user is in none of allowedGroups"},
			{erin, "the user has none of allowedRoles"},
			{frank, "the user's email is in none of allowedEmailDomains"},
			{bob, "the user is not in allowedUsers"},
		}
		for _, tt := range tests {
			checkRefusedWithSignOut(t, e, tt.user, appURL)
			if !tr.logContains(fmt.Sprintf("access refused to %s (%q) for %q: %s", tt.user.OID, tt.user.PreferredUsername, "/reports", tt.why)) {
				t.Errorf("%s: the log does not say %q", tt.user.PreferredUsername, tt.why)
			}
		}
		// dave, erin and frank pass allowedUsers by name, alice by object
		// ID: each list has more than one entry that counts.
		tenant.SetSignIn(alice.PreferredUsername)
	})

	t.Run("excluded paths and methods pass without a session", func(t *testing.T) {
		c := newClient(t, certs)
		for _, req := range []struct{ method, path string }{
			{http.MethodGet, "/health"}, {http.MethodGet, "/public/logo.png"},
			{http.MethodOptions, "/reports"}, {"PURGE", "/reports"},
		} {
			resp := c.do(c.request(req.method, tr.url(labelsHost, req.path), apiHeader()))
			if echo := c.echoed(resp); echo.Method != req.method {
				t.Errorf("%s %s reached the upstream as %s", req.method, req.path, echo.Method)
			}
		}
		for _, req := range []struct{ method, path string }{{http.MethodGet, "/healthz"}, {http.MethodDelete, "/reports"}} {
			if resp := c.do(c.request(req.method, tr.url(labelsHost, req.path), apiHeader())); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s without a session: got %s, want 401", req.method, req.path, resp.Status)
			}
		}
	})

	t.Run("bearer tokens for apiAudience with requiredScopes", func(t *testing.T) {
		c := newClient(t, certs)
		// The labelled API is the app itself: v1.0 tokens (its default)
		// carry the URI or the client ID the client asked for, v2.0 ones
		// the client ID.
		byURI := entraidtest.API{ClientID: tenant.ClientID, IdentifierURI: labelsAPI}
		byID := entraidtest.API{ClientID: tenant.ClientID}
		v2 := entraidtest.API{ClientID: tenant.ClientID, IdentifierURI: labelsAPI, TokenVersion: 2}
		other := entraidtest.API{ClientID: "0b1c2d3e-0000-4000-8000-00000000e2e0", IdentifierURI: "api://someone-else"}
		tests := []struct {
			name   string
			token  string
			status int
		}{
			{"the first audience with the second scope", tenant.SignToken(tenant.APIAccessTokenClaims(alice, byURI, "Items.Write")), http.StatusOK},
			{"the second audience with the first scope (v2.0)", tenant.SignToken(tenant.APIAccessTokenClaims(alice, v2, "Items.Read")), http.StatusOK},
			{"a v1.0 token for the client ID, with apiAcceptV1Tokens=true", tenant.SignToken(tenant.APIAccessTokenClaims(alice, byID, "Items.Read")), http.StatusOK},
			{"none of the required scopes", tenant.SignToken(tenant.APIAccessTokenClaims(alice, byURI, "User.Read")), http.StatusForbidden},
			{"another audience", tenant.SignToken(tenant.APIAccessTokenClaims(alice, other, "Items.Read")), http.StatusUnauthorized},
		}
		for _, tt := range tests {
			h := apiHeader()
			h["Authorization"] = []string{"Bearer " + tt.token}
			resp := c.do(c.request(http.MethodGet, tr.url(apiHost, "/items"), h))
			if resp.StatusCode != tt.status {
				t.Errorf("%s: got %s (%s), want %d", tt.name, resp.Status, resp.Header.Get("WWW-Authenticate"), tt.status)
				continue
			}
			if tt.status == http.StatusOK {
				if got := c.echoed(resp).Header.Get("X-Forwarded-User"); got != alice.OID {
					t.Errorf("%s: X-Forwarded-User = %q, want alice", tt.name, got)
				}
			}
		}
	})

	t.Run("a multi-tenant app with allowedTenants", func(t *testing.T) {
		c := newClient(t, certs)
		first := c.visit(tr.url(multiHost, "/"))
		if want := tenant.URL + "/organizations/oauth2/v2.0/authorize?"; !strings.HasPrefix(first.location(), want) {
			t.Errorf("first visit goes to %q, want %s...", first.location(), want)
		}
		if got := c.signIn(tr.url(multiHost, "/")).Header.Get("X-Forwarded-User"); got != alice.OID {
			t.Errorf("X-Forwarded-User = %q, want alice from the second allowed tenant", got)
		}
	})

	t.Run("rotating the session secret keeps sessions open", func(t *testing.T) {
		if aliceSession == nil {
			t.Fatal("no session from the sign-in above")
		}
		// docker compose up with new labels: the container is replaced.
		docker.remove(app)
		app = docker.run("whoami", upURL.Hostname(), appLabels(tenant, upURL.Port(), clientSecretFile, secretB, secretZ+","+secretA))
		ok := waitFor(reloadTimeout, 100*time.Millisecond, func() bool {
			cfg, err := tr.middlewareConfig("entra@docker")
			return err == nil && strings.Contains(cfg, secretB)
		})
		if !ok {
			t.Fatal("Traefik did not pick up the new container's labels")
		}
		tr.waitApplied(appRoutes, reloadTimeout)

		opens := func(secret string) bool {
			c := newClient(t, certs)
			value := aliceSession.Value
			u, _ := url.Parse(appURL)
			if secret != secretA {
				value = sealSession(t, secret, alice, tenant.URL, tenant.TenantID, tenant.ClientID)
			} else {
				// The handle of the sign-in, which the new configuration's
				// sealer does not remember: the portal cookie restores it.
				c.jar.SetCookies(u, alicePortal)
			}
			c.jar.SetCookies(u, []*http.Cookie{{Name: labelsCookie, Value: value, Path: "/"}})
			resp := c.do(c.request(http.MethodGet, appURL, apiHeader()))
			if resp.StatusCode == http.StatusTemporaryRedirect && strings.HasPrefix(resp.location(), "/portals/") {
				back := c.do(c.request(http.MethodGet, u.Scheme+"://"+u.Host+resp.location(), apiHeader()))
				if back.StatusCode != http.StatusTemporaryRedirect {
					return false
				}
				resp = c.do(c.request(http.MethodGet, appURL, apiHeader()))
			}
			if resp.StatusCode != http.StatusOK {
				return false
			}
			return c.echoed(resp).Header.Get("X-User-Id") == alice.OID
		}
		if !opens(secretA) {
			t.Error("the session sealed before the rotation (secretA, now the second previous secret) does not open")
		}
		if !opens(secretZ) {
			t.Error("a session sealed with the first previous secret does not open")
		}
		if opens("labels-secret-unknown-0123456789-abcdefghij") {
			t.Error("a session sealed with an unknown secret opens")
		}
	})

	t.Run("a comma inside a list item is a clear configuration error", func(t *testing.T) {
		// A secret with a comma in it, moved to previousSecrets: Traefik
		// splits the label at the comma.
		p := "traefik.http.middlewares.broken.plugin.entraauth."
		docker.run("broken", upURL.Hostname(), labels(
			"traefik.enable=true",
			"traefik.http.services.broken.loadbalancer.server.port="+upURL.Port(),
			"traefik.http.routers.broken.rule=Host(`"+brokenHost+"`)",
			"traefik.http.routers.broken.entrypoints=websecure",
			"traefik.http.routers.broken.tls=true",
			"traefik.http.routers.broken.middlewares=broken",
			p+"microsoftEntraID.tenantID="+tenant.TenantID,
			p+"microsoftEntraID.clientID="+tenant.ClientID,
			p+"microsoftEntraID.clientSecretFile="+clientSecretFile,
			p+"session.secret="+secretB,
			p+"session.previousSecrets=an-old-secret-of-35-characters-here,with-a-comma",
		))
		var status map[string]interface{}
		ok := waitFor(reloadTimeout, 100*time.Millisecond, func() bool {
			_, err := tr.apiStatus("middlewares", "broken@docker")
			if err == nil {
				return false
			}
			cfg, _ := tr.middlewareConfig("broken@docker")
			return json.Unmarshal([]byte(cfg), &status) == nil
		})
		if !ok {
			t.Fatal("Traefik did not report the broken middleware as disabled")
		}
		msg := fmt.Sprint(status["error"])
		t.Logf("Traefik reports: %s", msg)
		want := "entraauth: session.previousSecrets: entry 2 is 12 characters long"
		if !strings.Contains(msg, want) || !strings.Contains(msg, "comma") {
			t.Errorf("Traefik's API shows %q, want it to contain %q and to mention the comma", msg, want)
		}
		if resp := newClient(t, certs).visit(tr.url(brokenHost, "/")); resp.StatusCode != http.StatusNotFound {
			t.Errorf("the broken router answers %s, want 404 (disabled)", resp.Status)
		}
		// The other routers are unaffected.
		tr.waitApplied(appRoutes, reloadTimeout)
	})

	t.Run("a misspelt label is a configuration error naming it", func(t *testing.T) {
		// Traefik drops labels that match no option: allowedGroup would
		// leave the router open to the whole tenant.
		const typoHost = "typo.example.test"
		p := "traefik.http.middlewares.typo.plugin.entraauth."
		docker.run("typo", upURL.Hostname(), labels(
			"traefik.enable=true",
			"traefik.http.services.typo.loadbalancer.server.port="+upURL.Port(),
			"traefik.http.routers.typo.rule=Host(`"+typoHost+"`)",
			"traefik.http.routers.typo.entrypoints=websecure",
			"traefik.http.routers.typo.tls=true",
			"traefik.http.routers.typo.middlewares=typo",
			p+"microsoftEntraID.tenantID="+tenant.TenantID,
			p+"microsoftEntraID.clientID="+tenant.ClientID,
			p+"microsoftEntraID.clientSecretFile="+clientSecretFile,
			p+"session.secret="+secretB,
			p+"session.lifetme=30m",
			p+"allowedGroup="+unusedGroup,
		))
		var status map[string]interface{}
		served := false
		ok := waitFor(reloadTimeout, 100*time.Millisecond, func() bool {
			st, err := tr.apiStatus("routers", "typo@docker")
			if err == nil {
				served = st != nil
				return served
			}
			cfg, _ := tr.middlewareConfig("typo@docker")
			return json.Unmarshal([]byte(cfg), &status) == nil && status["error"] != nil
		})
		if !ok {
			t.Fatal("Traefik neither served nor refused the misspelt middleware")
		}
		if served {
			resp := newClient(t, certs).visit(tr.url(typoHost, "/"))
			t.Fatalf("Traefik serves the router with the misspelt labels: %s", resp.Status)
		}
		msg := fmt.Sprint(status["error"])
		t.Logf("Traefik reports: %s", msg)
		for _, want := range []string{"unknown option allowedGroup: did you mean allowedGroups?", "unknown option session.lifetme: did you mean session.lifetime?"} {
			if !strings.Contains(msg, want) {
				t.Errorf("Traefik's API shows %q, want it to contain %q", msg, want)
			}
		}
		if resp := newClient(t, certs).visit(tr.url(typoHost, "/")); resp.StatusCode != http.StatusNotFound {
			t.Errorf("the misspelt router answers %s, want 404 (disabled)", resp.Status)
		}
		tr.waitApplied(appRoutes, reloadTimeout)
	})

	t.Run("requestTimeout bounds the calls to Entra ID", func(t *testing.T) {
		// 8 s is within the default 10 s: only the 2s label ends it early,
		// with a 503 rather than a sign-in.
		tenant.SetFault(entraidtest.Token, entraidtest.Fault{Delay: 8 * time.Second})
		defer tenant.SetFault(entraidtest.Token, entraidtest.Fault{})
		c := newClient(t, certs)
		start := time.Now()
		final, hops := c.navigate(tr.url(labelsHost, "/"))
		took := time.Since(start)
		if final.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(final.body), "idp_unavailable") {
			t.Fatalf("sign-in with a slow token endpoint ended with %s: %v: %.300s", final.Status, hopURLs(hops), final.body)
		}
		if took > 6*time.Second {
			t.Errorf("the sign-in took %v with requestTimeout=2s", took)
		}
	})
}

// sealSession seals a session for user the way the plugin does, with the
// labels' cookie name and the app's binding: what a browser holds from
// before a rotation.
func sealSession(t *testing.T, secret string, user entraidtest.User, authority, tenantID, clientID string) string {
	t.Helper()
	sealer, err := session.NewSealer(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := &session.Session{
		OID: user.OID, TID: tenantID, Name: user.Name, PreferredUsername: user.PreferredUsername,
		Email: user.Email, Roles: user.Roles, Groups: user.Groups,
		IssuedAt: now.Unix(), AuthTime: now.Unix(), Expires: now.Add(30 * time.Minute).Unix(),
	}
	plain, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	aad := session.AAD(labelsCookie, authority, tenantID, clientID)
	value, err := sealer.Seal(plain, aad, now.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return value
}
