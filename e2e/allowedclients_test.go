package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// TestOnlyAllowedClientAppsCallTheAPIThroughTraefik: with apiAllowedClients
// (here a label-style string), a valid token of an allowed client app
// passes, one of any other client app gets 403 with a WWW-Authenticate
// error naming the client, and Traefik's log names it too.
func TestOnlyAllowedClientAppsCallTheAPIThroughTraefik(t *testing.T) {
	const (
		allowedApp = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
		foreignApp = "8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e"
	)
	tenant := newTenant(t, "")
	api := entraidtest.API{ClientID: tenant.ClientID, IdentifierURI: apiURI, TokenVersion: 2}
	e := newGuardedEnv(t, tenant, guard{appHost, func(pc map[string]interface{}) {
		pc["apiAudience"] = tenant.ClientID
		pc["apiAppRoles"] = []string{"Items.Sync"}
		pc["apiAllowedClients"] = allowedApp + "," + tenant.ClientID
	}})
	through := func(client string) string {
		c := tenant.APIAccessTokenClaims(alice, api, "Items.Read")
		c["azp"] = client
		return tenant.SignToken(c)
	}
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"a person through an allowed client app", through(allowedApp), http.StatusOK},
		{"an allowed daemon", tenant.SignToken(tenant.AppAccessTokenClaims(allowedApp, api, []string{"Items.Sync"})), http.StatusOK},
		{"a person through a foreign client app", through(foreignApp), http.StatusForbidden},
		{"a foreign daemon with the right app role", tenant.SignToken(tenant.AppAccessTokenClaims(foreignApp, api, []string{"Items.Sync"})), http.StatusForbidden},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, e.certs)
			h := apiHeader()
			h["Authorization"] = []string{"Bearer " + tt.token}
			resp := c.do(c.request(http.MethodGet, e.traefik.url(appHost, "/api/items"), h))
			if resp.StatusCode != tt.status {
				t.Fatalf("got %s (WWW-Authenticate %q), want %d: %.300s", resp.Status, resp.Header.Get("WWW-Authenticate"), tt.status, resp.body)
			}
			if tt.status == http.StatusOK {
				return
			}
			www := resp.Header.Get("WWW-Authenticate")
			if !strings.Contains(www, `error="insufficient_scope"`) || !strings.Contains(www, "client application "+foreignApp+" is not allowed") {
				t.Errorf("WWW-Authenticate = %q, want insufficient_scope naming the foreign client", www)
			}
		})
	}
	if !waitFor(5*time.Second, 50*time.Millisecond, func() bool { return strings.Contains(e.traefik.logTail(200), foreignApp) }) {
		t.Errorf("Traefik's log does not name the refused client %s:\n%s", foreignApp, e.traefik.logTail(30))
	}
}
