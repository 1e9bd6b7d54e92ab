package entraauth

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// docClientPrincipal and docIdentity are the parser of Microsoft's "Work
// with user identities in Azure App Service authentication", written in Go
// from its C# sample (ClaimsPrincipalParser.Parse): Convert.FromBase64String
// (standard alphabet, padded), System.Text.Json with case-insensitive
// property names, then new ClaimsIdentity(auth_typ, name_typ, role_typ)
// with every claim added as a (typ, val) pair.
type docClientPrincipal struct {
	IdentityProvider string `json:"auth_typ"`
	NameClaimType    string `json:"name_typ"`
	RoleClaimType    string `json:"role_typ"`
	Claims           []struct {
		Type  string `json:"typ"`
		Value string `json:"val"`
	} `json:"claims"`
}

type docIdentity struct {
	authenticationType, nameType, roleType string
	claims                                 [][2]string
}

func parseLikeMicrosoftsSample(t *testing.T, header string) *docIdentity {
	t.Helper()
	decoded, err := base64.StdEncoding.Strict().DecodeString(header)
	if err != nil {
		t.Fatalf("Convert.FromBase64String would throw: %v", err)
	}
	var p docClientPrincipal
	if err := json.Unmarshal(decoded, &p); err != nil {
		t.Fatalf("JsonSerializer.Deserialize would throw: %v", err)
	}
	id := &docIdentity{authenticationType: p.IdentityProvider, nameType: p.NameClaimType, roleType: p.RoleClaimType}
	for _, c := range p.Claims {
		id.claims = append(id.claims, [2]string{c.Type, c.Value})
	}
	return id
}

// name is ClaimsIdentity.Name: the first claim of the name claim type.
func (id *docIdentity) name() string { return id.findFirst(id.nameType) }

// findFirst is ClaimsIdentity.FindFirst(type).
func (id *docIdentity) findFirst(typ string) string {
	for _, c := range id.claims {
		if c[0] == typ {
			return c[1]
		}
	}
	return ""
}

// findAll is ClaimsIdentity.FindAll(type), values only.
func (id *docIdentity) findAll(typ string) []string {
	var out []string
	for _, c := range id.claims {
		if c[0] == typ {
			out = append(out, c[1])
		}
	}
	return out
}

func TestAnAppWrittenForAppServiceReadsTheSignedInUser(t *testing.T) {
	st := newStack(t, func(c *Config) { c.AppServiceHeaders = true })
	c := st.browser()
	st.signIn(c)
	for i := 0; i < 2; i++ { // the second from the session cache
		resp, _ := navigate(t, c, st.server.URL+"/page")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		h := st.lastUpstream()
		for _, want := range [][2]string{
			{"X-Ms-Client-Principal-Id", alice.OID},
			{"X-Ms-Client-Principal-Name", alice.PreferredUsername},
			{"X-Ms-Client-Principal-Idp", "aad"},
			{"X-Forwarded-User", alice.OID},
		} {
			if got := h.Values(want[0]); len(got) != 1 || got[0] != want[1] {
				t.Errorf("request %d: %s = %q, want %q", i, want[0], got, want[1])
			}
		}
		id := parseLikeMicrosoftsSample(t, h.Get("X-Ms-Client-Principal"))
		if id.authenticationType != "aad" || id.roleType != "http://schemas.microsoft.com/ws/2008/06/identity/claims/role" {
			t.Errorf("identity %s / role type %s", id.authenticationType, id.roleType)
		}
		if id.name() != alice.Email {
			t.Errorf("ClaimsIdentity.Name = %q, want the email address, as on App Service", id.name())
		}
		checks := []struct{ typ, want string }{
			{"http://schemas.microsoft.com/identity/claims/objectidentifier", alice.OID},
			{"http://schemas.microsoft.com/identity/claims/tenantid", testTenantID},
			{"preferred_username", alice.PreferredUsername},
			{"name", alice.Name},
		}
		for _, c := range checks {
			if got := id.findFirst(c.typ); got != c.want {
				t.Errorf("FindFirst(%s) = %q, want %q", c.typ, got, c.want)
			}
		}
		if got := strings.Join(id.findAll("groups"), ","); got != strings.Join(alice.Groups, ",") {
			t.Errorf("groups %q, want one claim per group", got)
		}
		if got := strings.Join(id.findAll("roles"), ","); got != "Reader" {
			t.Errorf("roles %q", got)
		}
	}
}

func TestClientSentAppServiceHeadersNeverReachTheUpstream(t *testing.T) {
	spoofs := []string{"X-MS-CLIENT-PRINCIPAL", "x-ms-client-principal-id", "X-Ms-Client-Principal-Name", "X_MS_CLIENT_PRINCIPAL_IDP", "X-MS-TOKEN-AAD-ACCESS-TOKEN", "x_ms_token_aad_id_token"}
	for _, option := range []bool{false, true} {
		option := option
		st := newStack(t, func(c *Config) {
			c.AppServiceHeaders = option
			c.ExcludedPaths = []string{"/public/*"}
		})
		c := st.browser()
		st.signIn(c)
		for _, path := range []string{"/public/page", "/private", "/private"} { // excluded, authorize, cache
			req, _ := http.NewRequest("GET", st.server.URL+path, nil)
			for _, name := range spoofs {
				req.Header[name] = []string{"mallory"}
			}
			req.Header.Set("X-Ms-Client-Request-Id", "b7a1b3c0-trace")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			h := st.lastUpstream()
			for k, v := range h {
				if strings.Contains(strings.Join(v, ","), "mallory") {
					t.Errorf("appServiceHeaders %v, %s: %s = %q reached the upstream", option, path, k, v)
				}
			}
			if h.Get("X-Ms-Client-Request-Id") != "b7a1b3c0-trace" {
				t.Errorf("appServiceHeaders %v, %s: x-ms-client-request-id, which carries no identity, was removed", option, path)
			}
			if option && path != "/public/page" && h.Get("X-Ms-Client-Principal-Id") != alice.OID {
				t.Errorf("%s: X-Ms-Client-Principal-Id = %q", path, h.Get("X-Ms-Client-Principal-Id"))
			}
		}
	}
}

func TestAuthMeAnswersWithTheClaimsAndNoToken(t *testing.T) {
	bob := entraidtest.User{OID: "7a2b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c5d", Name: "Bob", PreferredUsername: "bob@contoso.example"}
	tests := []struct {
		name   string
		user   entraidtest.User
		signIn bool
		status int
	}{
		{"a signed-in user gets the claims", alice, true, http.StatusOK},
		{"no session gets 401", alice, false, http.StatusUnauthorized},
		{"a user the rules refuse gets 401", bob, true, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			st := newStackFor(t, tt.user, func(c *Config) {
				c.AppServiceHeaders = true
				c.AllowedRoles = []string{"Reader"}
				c.Unauthenticated = "allow" // bob signs in and passes as anonymous
			})
			c := st.browser()
			if tt.signIn {
				signInThroughThePortal(t, st, c)
			}
			req, _ := http.NewRequest("GET", st.server.URL+"/.auth/me", nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status != http.StatusOK {
				return
			}
			var me []map[string]interface{}
			if err := json.Unmarshal(body, &me); err != nil || len(me) != 1 {
				t.Fatalf("not App Service's array of one identity: %v %s", err, body)
			}
			if me[0]["provider_name"] != "aad" || me[0]["user_id"] != alice.PreferredUsername {
				t.Errorf("identity %v", me[0])
			}
			for _, token := range []string{"access_token", "id_token", "refresh_token", "expires_on"} {
				if _, ok := me[0][token]; ok {
					t.Errorf("/.auth/me sends %s to the browser", token)
				}
			}
			if !strings.Contains(string(body), `{"typ":"http://schemas.microsoft.com/identity/claims/objectidentifier","val":"`+alice.OID+`"}`) {
				t.Errorf("user_claims lack the object ID: %s", body)
			}
		})
	}
}

func TestAppServiceSignInAndSignOutGoThroughThePortal(t *testing.T) {
	st := newStack(t, func(c *Config) { c.AppServiceHeaders = true })
	base := st.server.URL
	follow := func(c *http.Client, rawURL string) string {
		resp, _ := navigate(t, c, rawURL)
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), st.tenant.URL) {
			t.Fatalf("%s: %d to %q, want the tenant", rawURL, resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, _ = navigate(t, c, resp.Header.Get("Location"))
		resp, _ = navigate(t, c, resp.Header.Get("Location"))
		return resp.Header.Get("Location")
	}
	for _, tt := range []struct{ target, want string }{
		{"/orders?id=7", base + "/orders?id=7"},
		{"https://evil.example/", base + "/"},
	} {
		c := noRedirects(st.browser())
		if got := follow(c, base+"/.auth/login/aad?post_login_redirect_uri="+url.QueryEscape(tt.target)); got != tt.want {
			t.Errorf("post_login_redirect_uri %s: back at %q, want %q", tt.target, got, tt.want)
		}
	}

	c := st.browser()
	st.signIn(c)
	resp, body := navigate(t, c, base+"/.auth/logout?post_logout_redirect_uri="+url.QueryEscape("/goodbye"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/portals/main/logout"`) || !strings.Contains(body, `name=rd value="/goodbye"`) {
		t.Fatalf("GET /.auth/logout: %d %s, want the portal's sign-out button with rd", resp.StatusCode, body)
	}
	if resp, _ := navigate(t, c, base+"/page"); resp.StatusCode != http.StatusOK || st.lastUpstream().Get("X-Forwarded-User") != alice.OID {
		t.Fatal("a GET of /.auth/logout signed the user out")
	}
	post := func(origin string) *http.Response {
		req, _ := http.NewRequest("POST", base+"/.auth/logout", strings.NewReader("rd=%2Fgoodbye"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := noRedirects(st.browser()).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site POST /.auth/logout: %d, want 403", resp.StatusCode)
	}
	if resp := post(base); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), url.QueryEscape(base+"/goodbye")) {
		t.Errorf("a same-origin POST /.auth/logout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestAppServiceHeadersAreValidated(t *testing.T) {
	c := validConfig()
	c.AppServiceHeaders = true
	c.Headers = map[string]string{"X-MS-CLIENT-PRINCIPAL-NAME": "email"}
	if _, err := validate(c, noEnv); err == nil || !strings.HasPrefix(err.Error(), "entraauth: headers: ") || !strings.Contains(err.Error(), "appServiceHeaders") {
		t.Errorf("err = %v, want headers named with appServiceHeaders", err)
	}
}

func TestAppServiceGetsTheUpstreamTokenToo(t *testing.T) {
	rs := newPreparedRenewalStack(t, alice, func(c *Config) {
		c.AppServiceHeaders = true
		c.UpstreamAccessToken = UpstreamAccessToken{Scope: "api://orders/.default"}
	}, func(ten *entraidtest.Tenant) {
		ten.AddAPI(entraidtest.API{IdentifierURI: "api://orders", Scopes: []string{"Orders.Read"}})
	})
	for i := 0; i < 2; i++ {
		resp, _ := rs.send(t, http.MethodGet, "/orders", apiCall())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		h := rs.lastUpstream()
		auth, token := h.Get("Authorization"), h.Get("X-Ms-Token-Aad-Access-Token")
		if token == "" || auth != "Bearer "+token {
			t.Errorf("request %d: X-MS-TOKEN-AAD-ACCESS-TOKEN %.20q, Authorization %.27q: want the same token", i, token, auth)
		}
	}
}
