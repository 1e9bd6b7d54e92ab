package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// appServiceApp is an upstream written for Azure App Service: it reads the
// user from X-MS-CLIENT-PRINCIPAL the way Microsoft's documentation shows
// (ClaimsPrincipalParser.Parse, here in Go: standard Base64, JSON with
// auth_typ, name_typ, role_typ and typ/val claims, an identity whose name
// is the first claim of name_typ), and answers who it sees.
func appServiceApp(w http.ResponseWriter, r *http.Request) {
	type seen struct {
		Authenticated bool     `json:"authenticated"`
		IdentityType  string   `json:"identityType"`
		Name          string   `json:"name"`
		ObjectID      string   `json:"objectId"`
		Groups        []string `json:"groups"`
		PrincipalID   string   `json:"principalId"`
		PrincipalName string   `json:"principalName"`
		Error         string   `json:"error,omitempty"`
	}
	var out seen
	if h := r.Header.Get("x-ms-client-principal"); h != "" {
		var p struct {
			IdentityProvider string `json:"auth_typ"`
			NameClaimType    string `json:"name_typ"`
			RoleClaimType    string `json:"role_typ"`
			Claims           []struct {
				Type  string `json:"typ"`
				Value string `json:"val"`
			} `json:"claims"`
		}
		decoded, err := base64.StdEncoding.Strict().DecodeString(h)
		if err == nil {
			err = json.Unmarshal(decoded, &p)
		}
		if err != nil {
			out.Error = err.Error()
		}
		out.Authenticated = err == nil
		out.IdentityType = p.IdentityProvider
		for _, c := range p.Claims {
			switch c.Type {
			case p.NameClaimType:
				if out.Name == "" {
					out.Name = c.Value
				}
			case "http://schemas.microsoft.com/identity/claims/objectidentifier":
				out.ObjectID = c.Value
			case "groups":
				out.Groups = append(out.Groups, c.Value)
			}
		}
	}
	out.PrincipalID = r.Header.Get("x-ms-client-principal-id")
	out.PrincipalName = r.Header.Get("x-ms-client-principal-name")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// TestAnAppWrittenForAppServiceRunsBehindTraefik: with appServiceHeaders,
// an App Service app sees the signed-in user through Traefik as it did on
// App Service, never a client's forged principal, and /.auth/me and
// /.auth/login/aad work.
func TestAnAppWrittenForAppServiceRunsBehindTraefik(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	app := httptest.NewServer(http.HandlerFunc(appServiceApp))
	t.Cleanup(app.Close)
	pc := pluginConfig(tenant, sessionSecret)
	pc["appServiceHeaders"] = "true" // as a label would write it
	pc["unauthenticated"] = "allow"
	certs := newCerts(t)
	tr := startTraefik(t, certs, dynamicConfig{
		routes:      []route{{name: "app", hosts: []string{appHost}, middlewares: []string{authMiddleware}}},
		middlewares: map[string]map[string]interface{}{authMiddleware: pc},
		upstream:    app.URL,
	})
	c := newClient(t, certs)
	forged := base64.StdEncoding.EncodeToString([]byte(`{"auth_typ":"aad","claims":[{"typ":"http://schemas.microsoft.com/identity/claims/objectidentifier","val":"mallory"}],"name_typ":"name","role_typ":"roles"}`))
	ask := func(path string) map[string]interface{} {
		t.Helper()
		h := apiHeader()
		h["X-MS-CLIENT-PRINCIPAL"] = []string{forged}
		h["X_MS_CLIENT_PRINCIPAL_ID"] = []string{"mallory"}
		resp := c.do(c.request(http.MethodGet, tr.url(appHost, path), h))
		var seen map[string]interface{}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(resp.body, &seen) != nil {
			t.Fatalf("%s: %s %.300s", path, resp.Status, resp.body)
		}
		return seen
	}
	if seen := ask("/"); seen["authenticated"] != false || seen["principalId"] != "" {
		t.Errorf("anonymous: the app saw %v: a client's forged principal passed", seen)
	}
	if resp := c.do(c.request(http.MethodGet, tr.url(appHost, "/.auth/me"), apiHeader())); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/.auth/me without a session: %s", resp.Status)
	}

	final, hops := c.navigate(tr.url(appHost, "/.auth/login/aad?post_login_redirect_uri="+url.QueryEscape("/welcome")))
	if final.StatusCode != http.StatusOK || final.Request.URL.Path != "/welcome" {
		t.Fatalf("/.auth/login/aad via %v ended at %s %s", hopURLs(hops), final.Status, final.Request.URL)
	}
	for i := 0; i < 2; i++ { // the second from the session cache
		seen := ask("/account")
		if seen["authenticated"] != true || seen["identityType"] != "aad" || seen["name"] != alice.Email || seen["objectId"] != alice.OID ||
			seen["principalId"] != alice.OID || seen["principalName"] != alice.PreferredUsername {
			t.Errorf("request %d: the App Service app saw %v", i, seen)
		}
		if groups, _ := seen["groups"].([]interface{}); len(groups) != len(alice.Groups) {
			t.Errorf("request %d: groups %v, want one claim per group", i, seen["groups"])
		}
	}
	me := c.do(c.request(http.MethodGet, tr.url(appHost, "/.auth/me"), apiHeader()))
	if me.StatusCode != http.StatusOK || !strings.Contains(string(me.body), `"provider_name":"aad"`) || !strings.Contains(string(me.body), alice.OID) || strings.Contains(string(me.body), "token") {
		t.Errorf("/.auth/me: %s %.400s", me.Status, me.body)
	}
}
