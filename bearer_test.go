package entraauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// The API the bearer tests protect. Which aud its tokens carry depends on
// the token version its registration asks for: v2.0 tokens name it by its
// client ID, v1.0 tokens (the default) by what the client asked for.
const (
	testAPIURI      = "api://entraauth-tests"
	testAPIClientID = "4d3c2b1a-0000-4000-8000-00000000a91d"
	testDaemon      = "1b7a0a62-0000-4000-8000-000000000001"
)

var (
	testAPIv2       = entraidtest.API{ClientID: testAPIClientID, IdentifierURI: testAPIURI, TokenVersion: 2}
	testAPIv1       = entraidtest.API{ClientID: testAPIClientID, IdentifierURI: testAPIURI}
	testAPIv1ByGUID = entraidtest.API{ClientID: testAPIClientID, TokenVersion: 1}
)

// bearerAnswer sends tok to the stack's API with a spoofed identity header
// and returns the status and WWW-Authenticate; a pass must carry a genuine
// X-Forwarded-User.
func bearerAnswer(t *testing.T, st *stack, tok string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", st.server.URL+"/api/items", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Forwarded-User", "mallory")
	resp, err := noRedirects(&http.Client{Transport: st.server.Client().Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		h := st.lastUpstream()
		if u := h.Get("X-Forwarded-User"); u == "mallory" || u == "" {
			t.Fatalf("upstream X-Forwarded-User = %q", u)
		}
	}
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestBearerTokens(t *testing.T) {
	st := newStack(t, func(c *Config) {
		c.APIAudience = []string{testAPIURI, testAPIClientID}
		c.RequiredScopes = []string{"Items.Read"}
		c.AllowedRoles = []string{"Reader"}
		c.APIAppRoles = []string{"Items.Sync"}
	})
	tenant := st.tenant
	for _, v := range []struct {
		name string
		api  entraidtest.API
	}{{"v2.0", testAPIv2}, {"v1.0", testAPIv1}, {"v1.0 asked for by client ID", testAPIv1ByGUID}} {
		api := v.api
		delegated := func(change func(c map[string]interface{})) string {
			c := tenant.APIAccessTokenClaims(alice, api, "Items.Read")
			if change != nil {
				change(c)
			}
			return tenant.SignToken(c)
		}
		app := func(roles ...string) string {
			return tenant.SignToken(tenant.AppAccessTokenClaims(testDaemon, api, roles))
		}
		tests := []struct {
			name   string
			token  string
			status int
			error  string
		}{
			{"a good delegated token passes", delegated(nil), http.StatusOK, ""},
			{"an app-only token with a role of apiAppRoles passes", app("Items.Sync"), http.StatusOK, ""},
			{"an app-only token with a role of allowedRoles only is refused", app("Reader"), http.StatusForbidden, "apiAppRoles"},
			{"an app-only token without roles is refused", app(), http.StatusForbidden, "insufficient_scope"},
			{"a token without the required scope is refused", delegated(func(c map[string]interface{}) { c["scp"] = "Items.Write" }), http.StatusForbidden, "insufficient_scope"},
			{"a user the rules refuse is refused", delegated(func(c map[string]interface{}) { delete(c, "roles") }), http.StatusForbidden, "insufficient_scope"},
			{"a user with the app role only is refused", delegated(func(c map[string]interface{}) { c["roles"] = []string{"Items.Sync"} }), http.StatusForbidden, "allowedRoles"},
			{"a token for another audience is refused", delegated(func(c map[string]interface{}) { c["aud"] = "api://other" }), http.StatusUnauthorized, "invalid_token"},
			{"a token from another tenant is refused", delegated(func(c map[string]interface{}) { c["tid"] = "00000000-1111-2222-3333-444444444444" }), http.StatusUnauthorized, "invalid_token"},
			{"an expired token is refused", delegated(func(c map[string]interface{}) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), http.StatusUnauthorized, "invalid_token"},
		}
		for _, tt := range tests {
			tt := tt
			t.Run(v.name+": "+tt.name, func(t *testing.T) {
				status, www := bearerAnswer(t, st, tt.token)
				if status != tt.status {
					t.Fatalf("status %d, want %d (WWW-Authenticate %q)", status, tt.status, www)
				}
				if status != http.StatusOK && (!strings.Contains(www, `error="`) || !strings.Contains(www, tt.error)) {
					t.Fatalf("WWW-Authenticate = %q, want %q in it", www, tt.error)
				}
			})
		}
	}
	tests := []struct {
		name   string
		token  string
		status int
		error  string
	}{
		{"alg none is refused", strings.Join(strings.Split(tenant.SignToken(tenant.APIAccessTokenClaims(alice, testAPIv2, "Items.Read")), ".")[:2], ".") + ".", http.StatusUnauthorized, "invalid_token"},
		{"a Microsoft Graph token is refused with an explanation", tenant.GraphAccessToken(alice.PreferredUsername), http.StatusUnauthorized, "Microsoft Graph"},
		{"garbage is refused", "not-a-token", http.StatusUnauthorized, "invalid_token"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			status, www := bearerAnswer(t, st, tt.token)
			if status != tt.status || !strings.Contains(www, tt.error) {
				t.Fatalf("status %d, WWW-Authenticate %q; want %d with %q", status, www, tt.status, tt.error)
			}
		})
	}
}

// TestBearerTokenVersionsAgainstTheConfiguration sends what Entra ID
// issues for each token version of the API to each way of configuring
// apiAudience and apiAcceptV1Tokens.
func TestBearerTokenVersionsAgainstTheConfiguration(t *testing.T) {
	const (
		v2       = "v2.0 token"
		v1URI    = "v1.0 token asked for by URI"
		v1GUID   = "v1.0 token asked for by client ID"
		pass     = http.StatusOK
		refused  = http.StatusUnauthorized
		noV1     = false
		v1OK     = true
		clientID = testAPIClientID
		uri      = testAPIURI
	)
	tests := []struct {
		name      string
		audiences []string
		acceptV1  bool
		want      map[string]int
		hint      string // in the refusal of the v2.0 token
	}{
		{"the default with both names accepts every token", []string{uri, clientID}, v1OK, map[string]int{v2: pass, v1URI: pass, v1GUID: pass}, ""},
		{"the URI alone accepts v1.0 tokens asked for by it, and explains the v2.0 refusal", []string{uri}, v1OK, map[string]int{v2: refused, v1URI: pass, v1GUID: refused}, "names the API by its client ID"},
		{"the URI with a trailing slash is the same URI", []string{uri + "/"}, v1OK, map[string]int{v2: refused, v1URI: pass, v1GUID: refused}, ""},
		{"the client ID alone accepts v2.0 tokens and v1.0 ones asked for by it", []string{strings.ToUpper(clientID)}, v1OK, map[string]int{v2: pass, v1URI: refused, v1GUID: pass}, ""},
		{"v2.0 only refuses v1.0 tokens", []string{uri, clientID}, noV1, map[string]int{v2: pass, v1URI: refused, v1GUID: refused}, ""},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			st := newStack(t, func(c *Config) {
				c.APIAudience = tt.audiences
				c.APIAcceptV1Tokens = tt.acceptV1
			})
			tokens := map[string]string{
				v2:     st.tenant.SignToken(st.tenant.APIAccessTokenClaims(alice, testAPIv2, "Items.Read")),
				v1URI:  st.tenant.SignToken(st.tenant.APIAccessTokenClaims(alice, testAPIv1, "Items.Read")),
				v1GUID: st.tenant.SignToken(st.tenant.APIAccessTokenClaims(alice, testAPIv1ByGUID, "Items.Read")),
			}
			for kind, want := range tt.want {
				status, www := bearerAnswer(t, st, tokens[kind])
				if status != want {
					t.Errorf("%s: status %d, want %d (WWW-Authenticate %q)", kind, status, want, www)
				}
				if kind == v2 && tt.hint != "" && !strings.Contains(www, tt.hint) {
					t.Errorf("%s: WWW-Authenticate %q, want the hint %q", kind, www, tt.hint)
				}
			}
		})
	}
}

func TestV1TokensAreAcceptedByDefault(t *testing.T) {
	// An API registration asks for v1.0 tokens unless its manifest says
	// otherwise: a configuration that does not mention versions must take
	// them.
	if !CreateConfig().APIAcceptV1Tokens {
		t.Fatal("apiAcceptV1Tokens defaults to false")
	}
	st := newStack(t, func(c *Config) { c.APIAudience = []string{testAPIURI} })
	r := httptest.NewRequest("GET", "https://app.example.com/api", nil)
	r.Header.Set("Authorization", "bearer "+st.tenant.SignToken(st.tenant.APIAccessTokenClaims(alice, testAPIv1, "Items.Read")))
	w := httptest.NewRecorder()
	st.mw.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
}

// TestAppRolesAndAllowedRolesServeApplicationsAndPeople: apiAppRoles
// admits applications, allowedRoles people, and neither list admits the
// other kind of caller.
func TestAppRolesAndAllowedRolesServeApplicationsAndPeople(t *testing.T) {
	bob := entraidtest.User{OID: "7a2b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c5d", Name: "Bob", PreferredUsername: "bob@contoso.example"}
	syncUser := entraidtest.User{OID: "8b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", Name: "Sync", PreferredUsername: "sync@contoso.example", Roles: []string{"Items.Sync"}}
	type caller struct {
		name   string
		token  func(tenant *entraidtest.Tenant) map[string]interface{}
		status int
	}
	user := func(u entraidtest.User, status int) caller {
		return caller{"delegated " + u.PreferredUsername + " " + strings.Join(u.Roles, ","), func(tenant *entraidtest.Tenant) map[string]interface{} {
			return tenant.APIAccessTokenClaims(u, testAPIv2, "Items.Read")
		}, status}
	}
	daemon := func(status int, roles ...string) caller {
		return caller{"daemon with roles " + strings.Join(roles, ","), func(tenant *entraidtest.Tenant) map[string]interface{} {
			return tenant.AppAccessTokenClaims(testDaemon, testAPIv1, roles)
		}, status}
	}
	tests := []struct {
		name    string
		change  func(c *Config)
		callers []caller
	}{
		{"the readme's example: requiredScopes for people, apiAppRoles for daemons", func(c *Config) {
			c.RequiredScopes = []string{"Items.Read"}
			c.APIAppRoles = []string{"Items.Sync"}
		}, []caller{
			user(bob, http.StatusOK), // no Items.Sync, and passes
			user(alice, http.StatusOK),
			daemon(http.StatusOK, "Items.Sync"),
			daemon(http.StatusForbidden, "Items.Read"),
			daemon(http.StatusForbidden),
		}},
		{"both lists: each kind of caller needs its own", func(c *Config) {
			c.AllowedRoles = []string{"Reader"}
			c.APIAppRoles = []string{"Items.Sync"}
		}, []caller{
			user(alice, http.StatusOK),                    // Reader
			user(bob, http.StatusForbidden),               // no role
			user(syncUser, http.StatusForbidden),          // the app role does not admit a person
			daemon(http.StatusOK, "Items.Sync"),           //
			daemon(http.StatusForbidden, "Reader"),        // a people role does not admit an application
			daemon(http.StatusOK, "Reader", "Items.Sync"), // one entry is enough
		}},
		{"allowedRoles alone admits no application", func(c *Config) {
			c.AllowedRoles = []string{"Reader", "Items.Sync"}
		}, []caller{
			user(alice, http.StatusOK),
			daemon(http.StatusForbidden, "Items.Sync"),
			daemon(http.StatusForbidden, "Reader"),
		}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			st := newStack(t, func(c *Config) {
				c.APIAudience = []string{testAPIURI, testAPIClientID}
				tt.change(c)
			})
			for _, c := range tt.callers {
				status, www := bearerAnswer(t, st, st.tenant.SignToken(c.token(st.tenant)))
				if status != c.status {
					t.Errorf("%s: status %d, want %d (WWW-Authenticate %q)", c.name, status, c.status, www)
				}
				if status == http.StatusForbidden && !strings.Contains(www, `error="insufficient_scope"`) {
					t.Errorf("%s: WWW-Authenticate %q, want insufficient_scope", c.name, www)
				}
			}
		})
	}
}

func TestBearerTokensAreIgnoredWithoutAPIAudience(t *testing.T) {
	st := newStack(t, nil)
	req, _ := http.NewRequest("GET", st.server.URL+"/api/items", nil)
	req.Header.Set("Authorization", "Bearer "+st.tenant.SignToken(st.tenant.APIAccessTokenClaims(alice, testAPIv1, "Items.Read")))
	resp, err := noRedirects(&http.Client{Transport: st.server.Client().Transport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("status %d %q: want the plain sign-in 401", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestAPIOptionsAreValidated(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		hint   string // "" means accepted
	}{
		{"requiredScopes without apiAudience", func(c *Config) { c.RequiredScopes = []string{"Items.Read"} }, "is required with requiredScopes, apiAppRoles or apiAllowedClients"},
		{"apiAppRoles without apiAudience", func(c *Config) { c.APIAppRoles = []string{"Items.Sync"} }, "is required with requiredScopes, apiAppRoles or apiAllowedClients"},
		{"an audience that is neither a GUID nor a URI", func(c *Config) { c.APIAudience = []string{"my-api"} }, "neither a client ID"},
		{"an audience with a quote", func(c *Config) { c.APIAudience = []string{`api://x"y`} }, "neither a client ID"},
		{"v2.0 only with the URI alone, which v2.0 tokens never carry", func(c *Config) {
			c.APIAudience = []string{testAPIURI}
			c.APIAcceptV1Tokens = false
		}, "add the client ID"},
		{"v2.0 only with the client ID", func(c *Config) {
			c.APIAudience = []string{testAPIClientID}
			c.APIAcceptV1Tokens = false
		}, ""},
		{"the URI alone with v1.0 tokens (the default)", func(c *Config) { c.APIAudience = []string{testAPIURI} }, ""},
		{"an https application ID URI", func(c *Config) { c.APIAudience = []string{"https://contoso.example/items"} }, ""},
		{"apiAllowedClients without apiAudience", func(c *Config) { c.APIAllowedClients = []string{testDaemon} }, "apiAllowedClients: write the API's client ID"},
		{"an allowed client that is no application ID", func(c *Config) {
			c.APIAudience = []string{testAPIURI}
			c.APIAllowedClients = []string{"my-spa"}
		}, "apiAllowedClients: \"my-spa\" is not an application (client) ID"},
		{"allowed clients as a label string", func(c *Config) {
			c.APIAudience = []string{testAPIURI}
			c.APIAllowedClients = []string{testDaemon + "," + strings.ToUpper(testClientID)}
		}, ""},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(c)
			_, err := validate(c, noEnv)
			if tt.hint == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "entraauth: api") || !strings.Contains(err.Error(), tt.hint) {
				t.Fatalf("err = %v, want the option named with %q", err, tt.hint)
			}
		})
	}
}

func TestOnlyTheClientAppsOfAPIAllowedClientsMayCallTheAPI(t *testing.T) {
	const (
		spa     = "7a1b2c3d-0000-4000-8000-0000000005fa"
		foreign = "9e8d7c6b-0000-4000-8000-00000000f0e1"
	)
	var logs strings.Builder
	st := newStack(t, func(c *Config) {
		c.APIAudience = []string{testAPIURI, testAPIClientID}
		c.APIAppRoles = []string{"Items.Sync"}
		// Upper case, as a portal might show it: application IDs match
		// whatever their case.
		c.APIAllowedClients = []string{strings.ToUpper(spa), testDaemon}
	})
	st.mw.log.SetOutput(&logs)
	tenant := st.tenant
	delegated := func(api entraidtest.API, client string) string {
		c := tenant.APIAccessTokenClaims(alice, api, "Items.Read")
		if api.TokenVersion == 2 {
			c["azp"] = client
		} else {
			c["appid"] = client
		}
		return tenant.SignToken(c)
	}
	app := func(api entraidtest.API, client string) string {
		return tenant.SignToken(tenant.AppAccessTokenClaims(client, api, []string{"Items.Sync"}))
	}
	tests := []struct {
		name   string
		token  string
		status int
		client string // named in the refusal and the log
	}{
		{"a person through an allowed app (v2.0, azp) passes", delegated(testAPIv2, spa), http.StatusOK, ""},
		{"a person through an allowed app (v1.0, appid) passes", delegated(testAPIv1, spa), http.StatusOK, ""},
		{"an allowed daemon passes", app(testAPIv2, testDaemon), http.StatusOK, ""},
		{"a person through another app (v2.0) is refused", delegated(testAPIv2, foreign), http.StatusForbidden, foreign},
		{"a person through another app (v1.0) is refused", delegated(testAPIv1, foreign), http.StatusForbidden, foreign},
		{"another daemon with the right app role is refused", app(testAPIv1, foreign), http.StatusForbidden, foreign},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			status, www := bearerAnswer(t, st, tt.token)
			if status != tt.status {
				t.Fatalf("status %d, want %d (WWW-Authenticate %q)", status, tt.status, www)
			}
			if tt.status == http.StatusOK {
				return
			}
			if !strings.Contains(www, `error="insufficient_scope"`) || !strings.Contains(www, "client application "+tt.client+" is not allowed") {
				t.Errorf("WWW-Authenticate = %q, want insufficient_scope naming the client %s", www, tt.client)
			}
			if !strings.Contains(logs.String(), tt.client) || !strings.Contains(logs.String(), "apiAllowedClients") {
				t.Errorf("log = %q, want the client ID and the option", logs.String())
			}
		})
	}
}
