package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

// apiURI is the application ID URI of the API the plugin protects.
const apiURI = "api://entraauth-e2e"

func TestBearerTokensForTheAPIPassAndOthersGetWWWAuthenticate(t *testing.T) {
	// No auto-approval: an API client never reaches the sign-in page.
	tenant := newTenant(t, "")
	// The app registration the plugin signs in with also exposes the API,
	// so an ID token has the API's client ID as audience. The tokens are
	// what Entra ID issues: v1.0 ones (a registration's default) name the
	// API by what the client asked for, v2.0 ones by its client ID only.
	apiClientID := tenant.ClientID
	apiV1 := entraidtest.API{ClientID: apiClientID, IdentifierURI: apiURI}
	apiV1ByGUID := entraidtest.API{ClientID: apiClientID, TokenVersion: 1}
	apiV2 := entraidtest.API{ClientID: apiClientID, IdentifierURI: apiURI, TokenVersion: 2}
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		// As the readme writes it, and as a Docker label would: both
		// names of the API in one string.
		pc["apiAudience"] = apiClientID + "," + apiURI
		pc["requiredScopes"] = []string{"Items.Read"}
		pc["allowedRoles"] = []string{"Reader"}    // people
		pc["apiAppRoles"] = []string{"Items.Sync"} // applications
	}}, guard{app2Host, func(pc map[string]interface{}) {
		// v2.0 tokens only, as a label string: Traefik must turn "false"
		// into false over the default true.
		pc["apiAudience"] = apiClientID
		pc["apiAcceptV1Tokens"] = "false"
	}})

	sign := func(claims map[string]interface{}) string { return tenant.SignToken(claims) }
	delegated := func(u entraidtest.User, api entraidtest.API, scp string) string {
		return sign(tenant.APIAccessTokenClaims(u, api, scp))
	}
	syncAppV1 := tenant.AppAccessTokenClaims("5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", apiV1, []string{"Items.Sync"})
	syncAppV2 := tenant.AppAccessTokenClaims("5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", apiV2, []string{"Items.Sync"})
	expired := tenant.APIAccessTokenClaims(alice, apiV1, "Items.Read")
	expired["iat"] = time.Now().Add(-3 * time.Hour).Unix()
	expired["nbf"] = expired["iat"]
	expired["exp"] = time.Now().Add(-2 * time.Hour).Unix()
	foreignKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := jwt.Sign(foreignKey, tenant.KeyID(), tenant.APIAccessTokenClaims(alice, apiV2, "Items.Read"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		token    string
		header   http.Header
		host     string
		status   int
		user     string // X-Forwarded-User at the upstream when it passes
		wwwError string // error in WWW-Authenticate when refused
		why      string // in its error_description
	}{
		{"a user's v1.0 token asked for by the API's URI", delegated(alice, apiV1, "Items.Read User.Read"), apiHeader(), appHost, http.StatusOK, alice.OID, "", ""},
		{"a user's v1.0 token asked for by the API's client ID", delegated(alice, apiV1ByGUID, "Items.Read"), apiHeader(), appHost, http.StatusOK, alice.OID, "", ""},
		{"a user's v2.0 token", delegated(alice, apiV2, "Items.Read"), apiHeader(), appHost, http.StatusOK, alice.OID, "", ""},
		{"a browser navigation with a good token", delegated(alice, apiV1, "Items.Read"), navigationHeader(), appHost, http.StatusOK, alice.OID, "", ""},
		{"an app-only v1.0 token with a role of apiAppRoles", sign(syncAppV1), apiHeader(), appHost, http.StatusOK, syncAppV1["oid"].(string), "", ""},
		{"an app-only v2.0 token with a role of apiAppRoles", sign(syncAppV2), apiHeader(), appHost, http.StatusOK, syncAppV2["oid"].(string), "", ""},
		{"a v2.0 token where only v2.0 is accepted", delegated(bob, apiV2, "Items.Read"), apiHeader(), app2Host, http.StatusOK, bob.OID, "", ""},
		{"a v1.0 token where only v2.0 is accepted", delegated(bob, apiV1ByGUID, "Items.Read"), apiHeader(), app2Host, http.StatusUnauthorized, "", "invalid_token", "issuer"},
		{"a token for another API", delegated(alice, entraidtest.API{ClientID: "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", IdentifierURI: "api://someone-else"}, "Items.Read"), apiHeader(), appHost, http.StatusUnauthorized, "", "invalid_token", "another audience"},
		{"a Microsoft Graph token", tenant.GraphAccessToken(alice.PreferredUsername), apiHeader(), appHost, http.StatusUnauthorized, "", "invalid_token", "Microsoft Graph"},
		{"an expired token", sign(expired), apiHeader(), appHost, http.StatusUnauthorized, "", "invalid_token", "expired"},
		{"a token signed by another key", forged, apiHeader(), appHost, http.StatusUnauthorized, "", "invalid_token", "signature"},
		{"an ID token", sign(tenant.IDTokenClaims(alice, "")), apiHeader(), appHost, http.StatusUnauthorized, "", "invalid_token", "ID token"},
		{"not a JWT, from a browser", "not-a-token", navigationHeader(), appHost, http.StatusUnauthorized, "", "invalid_token", "not a JWT"},
		{"a user's token without the scope", delegated(alice, apiV1, "Items.Write"), apiHeader(), appHost, http.StatusForbidden, "", "insufficient_scope", "Items.Read"},
		{"a user's token without an allowed role", delegated(bob, apiV1, "Items.Read"), apiHeader(), appHost, http.StatusForbidden, "", "insufficient_scope", "allowedRoles"},
		{"an app-only token without roles", sign(tenant.AppAccessTokenClaims("6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c", apiV1, nil)), apiHeader(), appHost, http.StatusForbidden, "", "insufficient_scope", "apiAppRoles"},
		{"an app-only token with a role meant for people", sign(tenant.AppAccessTokenClaims("6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c", apiV2, []string{"Reader"})), apiHeader(), appHost, http.StatusForbidden, "", "insufficient_scope", "apiAppRoles"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, e.certs)
			h := tt.header
			h["Authorization"] = []string{"Bearer " + tt.token}
			h["X-Forwarded-User"] = []string{"mallory"}
			resp := c.do(c.request(http.MethodGet, e.traefik.url(tt.host, "/api/items"), h))
			if resp.StatusCode != tt.status {
				t.Fatalf("got %s (Location %q, WWW-Authenticate %q), want %d: %.300s",
					resp.Status, resp.location(), resp.Header.Get("WWW-Authenticate"), tt.status, resp.body)
			}
			if tt.status == http.StatusOK {
				echo := c.echoed(resp)
				if got := echo.Header.Values("X-Forwarded-User"); len(got) != 1 || got[0] != tt.user {
					t.Errorf("X-Forwarded-User = %q, want exactly %q", got, tt.user)
				}
				if got := echo.Header.Get("Authorization"); got != "Bearer "+tt.token {
					t.Errorf("the upstream did not get the Authorization header")
				}
				return
			}
			www := resp.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(www, `Bearer realm="main"`) || !strings.Contains(www, `error="`+tt.wwwError+`"`) {
				t.Errorf("WWW-Authenticate = %q, want Bearer realm=\"main\" with error=%q", www, tt.wwwError)
			}
			if !strings.Contains(www, tt.why) {
				t.Errorf("WWW-Authenticate = %q, want its error_description to mention %q", www, tt.why)
			}
			var v map[string]interface{}
			if err := json.Unmarshal(resp.body, &v); err != nil || v["error"] != tt.wwwError {
				t.Errorf("body %.300s, want JSON with error %q", resp.body, tt.wwwError)
			}
			if findSetCookie(resp.Cookies(), "entraauth_") != nil || findSetCookie(resp.Cookies(), "__Host-entraauth_") != nil {
				t.Errorf("a refused bearer request got cookies: %v", resp.Header.Values("Set-Cookie"))
			}
		})
	}
	if n := tenant.Hits(entraidtest.Authorize); n != 0 {
		t.Errorf("authorize endpoint hit %d times: bearer requests are never redirected to sign in", n)
	}
	if n := tenant.Hits(entraidtest.Token); n != 0 {
		t.Errorf("token endpoint hit %d times: bearer tokens are verified locally", n)
	}
}
