package entraauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const testAPI = "api://entraauth-tests"

func TestBearerTokens(t *testing.T) {
	st := newStack(t, func(c *Config) {
		c.APIAudience = []string{testAPI}
		c.RequiredScopes = []string{"Items.Read"}
		c.AllowedRoles = []string{"Reader", "Items.Sync"}
	})
	tenant := st.tenant
	delegated := func(change func(c map[string]interface{})) string {
		c := tenant.APIAccessTokenClaims(alice, testAPI, "Items.Read")
		if change != nil {
			change(c)
		}
		return tenant.SignToken(c)
	}
	app := func(roles ...string) string {
		return tenant.SignToken(tenant.AppAccessTokenClaims("1b7a0a62-0000-4000-8000-000000000001", testAPI, roles))
	}
	tests := []struct {
		name   string
		token  string
		status int
		error  string
	}{
		{"a good delegated token passes", delegated(nil), http.StatusOK, ""},
		{"an app-only token with an allowed role passes", app("Items.Sync"), http.StatusOK, ""},
		{"an app-only token without an allowed role is refused", app("Other"), http.StatusForbidden, "insufficient_scope"},
		{"an app-only token without roles is refused", app(), http.StatusForbidden, "insufficient_scope"},
		{"a token without the required scope is refused", delegated(func(c map[string]interface{}) { c["scp"] = "Items.Write" }), http.StatusForbidden, "insufficient_scope"},
		{"a user the rules refuse is refused", delegated(func(c map[string]interface{}) { delete(c, "roles") }), http.StatusForbidden, "insufficient_scope"},
		{"a token for another audience is refused", delegated(func(c map[string]interface{}) { c["aud"] = "api://other" }), http.StatusUnauthorized, "invalid_token"},
		{"a token from another tenant is refused", delegated(func(c map[string]interface{}) { c["tid"] = "00000000-1111-2222-3333-444444444444" }), http.StatusUnauthorized, "invalid_token"},
		{"an expired token is refused", delegated(func(c map[string]interface{}) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), http.StatusUnauthorized, "invalid_token"},
		{"a v1 token is refused unless enabled", delegated(func(c map[string]interface{}) { c["iss"] = "https://sts.windows.net/" + testTenantID + "/" }), http.StatusUnauthorized, "invalid_token"},
		{"alg none is refused", strings.Join(strings.Split(delegated(nil), ".")[:2], ".") + ".", http.StatusUnauthorized, "invalid_token"},
		{"a Microsoft Graph token is refused with an explanation", tenant.GraphAccessToken(alice.PreferredUsername), http.StatusUnauthorized, "Microsoft Graph"},
		{"garbage is refused", "not-a-token", http.StatusUnauthorized, "invalid_token"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", st.server.URL+"/api/items", nil)
			req.Header.Set("Authorization", "Bearer "+tt.token)
			req.Header.Set("X-Forwarded-User", "mallory")
			resp, err := noRedirects(&http.Client{Transport: st.server.Client().Transport}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (WWW-Authenticate %q)", resp.StatusCode, tt.status, resp.Header.Get("WWW-Authenticate"))
			}
			if tt.status == http.StatusOK {
				h := st.lastUpstream()
				if u := h.Get("X-Forwarded-User"); u == "mallory" || u == "" {
					t.Fatalf("upstream X-Forwarded-User = %q", u)
				}
				return
			}
			if wa := resp.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="`) || !strings.Contains(wa, tt.error) {
				t.Fatalf("WWW-Authenticate = %q, want %q in it", wa, tt.error)
			}
		})
	}
}

func TestBearerTokensAreIgnoredWithoutAPIAudience(t *testing.T) {
	st := newStack(t, nil)
	req, _ := http.NewRequest("GET", st.server.URL+"/api/items", nil)
	req.Header.Set("Authorization", "Bearer "+st.tenant.SignToken(st.tenant.APIAccessTokenClaims(alice, testAPI, "Items.Read")))
	resp, err := noRedirects(&http.Client{Transport: st.server.Client().Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("status %d %q: want the plain sign-in 401", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestAPIOptionsNeedAnAudience(t *testing.T) {
	c := validConfig()
	c.RequiredScopes = []string{"Items.Read"}
	if _, err := validate(c, noEnv); err == nil || !strings.HasPrefix(err.Error(), "entraauth: apiAudience: ") {
		t.Fatalf("err = %v", err)
	}
}

func TestV1TokensWhenEnabled(t *testing.T) {
	st := newStack(t, func(c *Config) {
		c.APIAudience = []string{testAPI}
		c.APIAcceptV1Tokens = true
	})
	claims := st.tenant.APIAccessTokenClaims(alice, testAPI, "Items.Read")
	claims["iss"] = "https://sts.windows.net/" + testTenantID + "/"
	claims["ver"] = "1.0"
	r := httptest.NewRequest("GET", "https://app.example.com/api", nil)
	r.Header.Set("Authorization", "bearer "+st.tenant.SignToken(claims))
	w := httptest.NewRecorder()
	st.mw.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
}
