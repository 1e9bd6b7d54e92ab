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
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		// As a Docker label would write it: both audiences in one string.
		pc["apiAudience"] = apiURI + "," + tenant.ClientID
		pc["requiredScopes"] = []string{"Items.Read"}
		// Reader for users, Items.Sync for applications.
		pc["allowedRoles"] = []string{"Reader", "Items.Sync"}
	}})

	sign := func(claims map[string]interface{}) string { return tenant.SignToken(claims) }
	delegated := func(u entraidtest.User, audience, scp string) string {
		return sign(tenant.APIAccessTokenClaims(u, audience, scp))
	}
	syncApp := tenant.AppAccessTokenClaims("5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", apiURI, []string{"Items.Sync"})
	expired := tenant.APIAccessTokenClaims(alice, apiURI, "Items.Read")
	expired["iat"] = time.Now().Add(-3 * time.Hour).Unix()
	expired["nbf"] = expired["iat"]
	expired["exp"] = time.Now().Add(-2 * time.Hour).Unix()
	foreignKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := jwt.Sign(foreignKey, tenant.KeyID(), tenant.APIAccessTokenClaims(alice, apiURI, "Items.Read"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		token    string
		header   http.Header
		status   int
		user     string // X-Forwarded-User at the upstream when it passes
		wwwError string // error in WWW-Authenticate when refused
		why      string // in its error_description
	}{
		{"a user's token for the API's URI with the scope", delegated(alice, apiURI, "Items.Read User.Read"), apiHeader(), http.StatusOK, alice.OID, "", ""},
		{"a user's token for the API's client ID", delegated(alice, tenant.ClientID, "Items.Read"), apiHeader(), http.StatusOK, alice.OID, "", ""},
		{"a browser navigation with a good token", delegated(alice, apiURI, "Items.Read"), navigationHeader(), http.StatusOK, alice.OID, "", ""},
		{"an app-only token with an allowed role", sign(syncApp), apiHeader(), http.StatusOK, syncApp["oid"].(string), "", ""},
		{"a token for another API", delegated(alice, "api://someone-else", "Items.Read"), apiHeader(), http.StatusUnauthorized, "", "invalid_token", "another audience"},
		{"a Microsoft Graph token", tenant.GraphAccessToken(alice.PreferredUsername), apiHeader(), http.StatusUnauthorized, "", "invalid_token", "Microsoft Graph"},
		{"an expired token", sign(expired), apiHeader(), http.StatusUnauthorized, "", "invalid_token", "expired"},
		{"a token signed by another key", forged, apiHeader(), http.StatusUnauthorized, "", "invalid_token", "signature"},
		{"an ID token", sign(tenant.IDTokenClaims(alice, "")), apiHeader(), http.StatusUnauthorized, "", "invalid_token", "ID token"},
		{"not a JWT, from a browser", "not-a-token", navigationHeader(), http.StatusUnauthorized, "", "invalid_token", "not a JWT"},
		{"a user's token without the scope", delegated(alice, apiURI, "Items.Write"), apiHeader(), http.StatusForbidden, "", "insufficient_scope", "Items.Read"},
		{"a user's token without an allowed role", delegated(bob, apiURI, "Items.Read"), apiHeader(), http.StatusForbidden, "", "insufficient_scope", "allowedRoles"},
		{"an app-only token without roles", sign(tenant.AppAccessTokenClaims("6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b9c", apiURI, nil)), apiHeader(), http.StatusForbidden, "", "insufficient_scope", "allowedRoles"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, e.certs)
			h := tt.header
			h["Authorization"] = []string{"Bearer " + tt.token}
			h["X-Forwarded-User"] = []string{"mallory"}
			resp := c.do(c.request(http.MethodGet, e.traefik.url(appHost, "/api/items"), h))
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
			if findSetCookie(resp.Cookies(), "entraauth_") != nil {
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
