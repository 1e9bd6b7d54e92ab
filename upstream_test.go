package entraauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

// upstreamStack is a renewal stack whose middleware sets an access token
// for the API api on every signed-in request.
func upstreamStack(t *testing.T, api entraidtest.API, header string) (*renewalStack, entraidtest.API) {
	t.Helper()
	var registered entraidtest.API
	rs := newPreparedRenewalStack(t, alice, func(c *Config) {
		c.UpstreamAccessToken = UpstreamAccessToken{Scope: api.IdentifierURI + "/.default", Header: header}
	}, func(ten *entraidtest.Tenant) { registered = ten.AddAPI(api) })
	return rs, registered
}

func TestTheUpstreamGetsAnAccessTokenForItsScope(t *testing.T) {
	rs, api := upstreamStack(t, entraidtest.API{IdentifierURI: "api://orders", Scopes: []string{"Orders.Read"}}, "")
	// The arrival after the sign-in minted the token already.
	refreshes := 0
	var first string
	for i := 0; i < 3; i++ {
		resp, _ := rs.send(t, http.MethodGet, "/orders", apiCall())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Error("the token request rewrote the cookie: tokens for upstreams stay in memory")
		}
		auth := rs.lastUpstream().Get("Authorization")
		if !strings.HasPrefix(auth, "Bearer ") {
			t.Fatalf("Authorization = %q, want a bearer token", auth)
		}
		if first == "" {
			first = auth
		} else if auth != first {
			t.Error("the token changed between requests: it is minted once and kept")
		}
	}
	if got := rs.tenant.Hits(entraidtest.Refresh) - refreshes; got != 1 {
		t.Errorf("3 requests minted %d tokens, want 1", got)
	}
	tok, err := jwt.Parse(strings.TrimPrefix(first, "Bearer "))
	if err != nil {
		t.Fatal(err)
	}
	// A v1.0 token, as an API registration gets by default.
	if tok.String("aud") != api.IdentifierURI || tok.String("oid") != alice.OID || tok.String("appid") != testClientID || tok.String("scp") != "Orders.Read" {
		t.Errorf("the upstream's token: %v", tok.Claims)
	}
	// The token is replaced before it expires.
	rs.advance(56 * time.Minute)
	if resp, _ := rs.send(t, http.MethodGet, "/orders", apiCall()); resp.StatusCode != http.StatusOK {
		t.Fatalf("after 56 minutes: %d", resp.StatusCode)
	}
	if rs.tenant.Hits(entraidtest.Refresh)-refreshes != 2 || rs.lastUpstream().Get("Authorization") == first {
		t.Error("a token about to expire was still sent")
	}
}

func TestAnUpstreamTokenInAHeaderOfItsOwnCannotBeSpoofed(t *testing.T) {
	rs, _ := upstreamStack(t, entraidtest.API{IdentifierURI: "api://stock", Scopes: []string{"Stock.Read"}, TokenVersion: 2}, "X-Access-Token")
	h := apiCall()
	h.Set("X-Access-Token", "forged")
	h.Set("X_Access_Token", "forged")
	h.Set("Authorization", "Basic dXNlcjpwYXNz")
	resp, _ := rs.send(t, http.MethodGet, "/stock", h)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d", resp.StatusCode)
	}
	up := rs.lastUpstream()
	if v := up.Values("X-Access-Token"); len(v) != 1 || v[0] == "forged" || strings.HasPrefix(v[0], "Bearer ") {
		t.Errorf("X-Access-Token = %q, want the token alone", v)
	}
	if _, ok := up["X_access_token"]; ok {
		t.Error("the underscore spelling reached the upstream")
	}
	if up.Get("Authorization") != "Basic dXNlcjpwYXNz" {
		t.Errorf("the client's own Authorization header was changed: %q", up.Get("Authorization"))
	}
}

// Two routers of one app and scope, one sending the token in
// Authorization and one in a header of its own, share the minted token but
// each sends it in its own format.
func TestRoutersSharingAnUpstreamTokenEachSendItInTheirOwnFormat(t *testing.T) {
	rs, api := upstreamStack(t, entraidtest.API{IdentifierURI: "api://formats", Scopes: []string{"Formats.Read"}}, "")
	cfg := validConfig()
	cfg.MicrosoftEntraID.AuthorityHost = rs.tenant.URL
	cfg.MicrosoftEntraID.ClientSecret = rs.tenant.ClientSecret
	cfg.UpstreamAccessToken = UpstreamAccessToken{Scope: api.IdentifierURI + "/.default", Header: "X-Api-Token"}
	h, err := New(context.Background(), rs.mw.next, cfg, "custom-header")
	if err != nil {
		t.Fatal(err)
	}
	custom := h.(*Middleware)
	setClock(custom, rs.mw.now)
	bearer := rs.server.Config.Handler
	for i, order := range [][]string{{"authorization", "custom"}, {"custom", "authorization"}} {
		if i > 0 {
			// The token is replaced: minted this time by the other router.
			rs.advance(56 * time.Minute)
		}
		for _, router := range order {
			if router == "custom" {
				rs.server.Config.Handler = custom
			} else {
				rs.server.Config.Handler = bearer
			}
			if resp, _ := rs.send(t, http.MethodGet, "/"+router, apiCall()); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d", router, resp.StatusCode)
			}
			up := rs.lastUpstream()
			if router == "custom" {
				if v := up.Get("X-Api-Token"); v == "" || strings.HasPrefix(v, "Bearer ") || up.Get("Authorization") != "" {
					t.Errorf("after %v, the router with X-Api-Token sent X-Api-Token %.20q and Authorization %.20q, want the token alone in X-Api-Token", order, v, up.Get("Authorization"))
				}
			} else if v := up.Get("Authorization"); !strings.HasPrefix(v, "Bearer ey") {
				t.Errorf("after %v, the router with Authorization sent %.20q, want Bearer and the token", order, v)
			}
		}
	}
}

func TestUpstreamTokenFailures(t *testing.T) {
	t.Run("missing consent is a page that says what to grant", func(t *testing.T) {
		st := newStackFor(t, alice, func(c *Config) { c.UpstreamAccessToken = UpstreamAccessToken{Scope: "api://needs-consent/.default"} })
		st.tenant.AddAPI(entraidtest.API{IdentifierURI: "api://needs-consent", Scopes: []string{"Read"}, ConsentRequired: true})
		c := st.browser()
		resp, body := navigate(t, c, st.server.URL+"/x")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "AADSTS65001") || !strings.Contains(body, "api://needs-consent/.default") || !strings.Contains(body, "Grant admin consent") {
			t.Fatalf("got %d %.600q", resp.StatusCode, body)
		}
		req, _ := http.NewRequest(http.MethodGet, st.server.URL+"/x", nil)
		req.Header = apiCall()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		var doc map[string]interface{}
		json.Unmarshal([]byte(body), &doc)
		if resp.StatusCode != http.StatusForbidden || doc["aadsts"] != "AADSTS65001" {
			t.Fatalf("an API call: %d %.300q", resp.StatusCode, body)
		}
	})
	t.Run("an outage is a 503, never a request without the token", func(t *testing.T) {
		rs, _ := upstreamStack(t, entraidtest.API{IdentifierURI: "api://down", Scopes: []string{"Read"}}, "")
		rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Status: http.StatusBadGateway})
		rs.advance(56 * time.Minute) // the token must be replaced
		resp, _ := rs.send(t, http.MethodGet, "/x", apiCall())
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("got %d, want 503", resp.StatusCode)
		}
		select {
		case h := <-rs.upstream:
			t.Fatalf("the upstream was reached: %v", h)
		default:
		}
	})
	t.Run("a refused grant ends the session", func(t *testing.T) {
		rs, _ := upstreamStack(t, entraidtest.API{IdentifierURI: "api://refused", Scopes: []string{"Read"}}, "")
		rs.tenant.SetUserDisabled(alice.PreferredUsername, true)
		rs.advance(56 * time.Minute) // the token must be replaced
		resp, body := rs.send(t, http.MethodGet, "/x", apiCall())
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "session_expired") {
			t.Fatalf("got %d %.200q, want 401 session_expired", resp.StatusCode, body)
		}
	})
}
