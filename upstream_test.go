package entraauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
	"github.com/tfa-plugin/entraauth/session"
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
		tokens := rs.tenant.Hits(entraidtest.Token)
		// A burst during the outage asks Entra ID once: the failure is
		// remembered, so that an outage does not multiply the calls.
		for i := 0; i < 5; i++ {
			resp, _ := rs.send(t, http.MethodGet, "/x", apiCall())
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("request %d: got %d, want 503", i+1, resp.StatusCode)
			}
			if deletesSession(resp, rs.mw.cookie.Name) {
				t.Fatal("the session was deleted during an outage")
			}
		}
		if got := rs.tenant.Hits(entraidtest.Token) - tokens; got != 1 {
			t.Errorf("5 requests during an outage asked Entra ID %d times, want 1", got)
		}
		select {
		case h := <-rs.upstream:
			t.Fatalf("the upstream was reached: %v", h)
		default:
		}
		// Once the failure is forgotten, the next request asks again and,
		// Entra ID back, passes with a token.
		rs.tenant.SetFault(entraidtest.Token, entraidtest.Fault{})
		rs.advance(failureMemory + time.Second)
		resp, _ := rs.send(t, http.MethodGet, "/x", apiCall())
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(rs.lastUpstream().Get("Authorization"), "Bearer ") {
			t.Fatalf("after the outage: %d, want 200 with a token", resp.StatusCode)
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
		if !deletesSession(resp, rs.mw.cookie.Name) {
			t.Errorf("the ended session's cookie was not deleted: Set-Cookie %q", resp.Header.Values("Set-Cookie"))
		}
		// The browser, its cookie gone, is sent to sign in.
		resp, _ = rs.send(t, http.MethodGet, "/page", browserNavigation())
		if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/oauth2/v2.0/authorize") {
			t.Fatalf("the next navigation: %d to %q, want a sign-in", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// deletesSession reports whether resp deletes the session cookie name (or
// one of its chunks).
func deletesSession(resp *http.Response, name string) bool {
	for _, c := range resp.Cookies() {
		if session.IsChunkName(name, c.Name) && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// secondUser is a user of the same tenant as alice.
var secondUser = entraidtest.User{
	OID:               "7a2b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c5d",
	Name:              "Bob Example",
	PreferredUsername: "bob@contoso.example",
	Email:             "bob@contoso.example",
	Roles:             []string{"Reader"},
}

// Two users signed in on one router at the same moment (the same sign-in
// time): each one's requests carry their own access token, never the
// other's, on the first request and from the session cache alike.
func TestEachUserGetsTheirOwnUpstreamToken(t *testing.T) {
	users := []entraidtest.User{alice, secondUser}
	st := newStackForUsers(t, users, func(c *Config) {
		c.UpstreamAccessToken = UpstreamAccessToken{Scope: "api://ledger/.default"}
	})
	st.tenant.AddAPI(entraidtest.API{IdentifierURI: "api://ledger", Scopes: []string{"Ledger.Read"}})
	at := time.Now()
	setClock(st.mw, func() time.Time { return at })
	browsers := make([]*http.Client, len(users))
	for i, u := range users {
		st.tenant.SetSignIn(u.PreferredUsername)
		browsers[i] = st.browser()
		st.signIn(browsers[i])
	}
	tokens := map[string]string{}
	for round := 0; round < 3; round++ {
		for i, u := range users {
			req, _ := http.NewRequest(http.MethodGet, st.server.URL+"/ledger", nil)
			req.Header = apiCall()
			resp, err := browsers[i].Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s, round %d: %d", u.PreferredUsername, round, resp.StatusCode)
			}
			h := st.lastUpstream()
			auth := h.Get("Authorization")
			tok, err := jwt.Parse(strings.TrimPrefix(auth, "Bearer "))
			if err != nil {
				t.Fatalf("%s, round %d: Authorization %.40q: %v", u.PreferredUsername, round, auth, err)
			}
			if h.Get("X-Forwarded-User") != u.OID || tok.String("oid") != u.OID {
				t.Errorf("%s, round %d: the upstream got X-Forwarded-User %q with a token of %q, want both %q",
					u.PreferredUsername, round, h.Get("X-Forwarded-User"), tok.String("oid"), u.OID)
			}
			tokens[u.OID+" "+auth] = u.OID
		}
	}
	if len(tokens) != len(users) {
		t.Errorf("%d distinct (user, token) pairs over 3 rounds, want one per user", len(tokens))
	}
}

// The request that mints a new upstream token (the old one is due for
// replacement) reaches the upstream as clean as any other: the user's own
// identity and token, no spoofed identity header, no plugin cookie.
func TestTheMintingRequestReachesTheUpstreamClean(t *testing.T) {
	rs, _ := upstreamStack(t, entraidtest.API{IdentifierURI: "api://ledger", Scopes: []string{"Ledger.Read"}}, "")
	u, _ := url.Parse(rs.server.URL)
	rs.user.Jar.SetCookies(u, []*http.Cookie{{Name: "app", Value: "1"}})
	rs.advance(56 * time.Minute)
	refreshes := rs.tenant.Hits(entraidtest.Refresh)
	h := apiCall()
	h["X_Forwarded_User"] = []string{"mallory"}
	h["X-Forwarded-User"] = []string{"mallory"}
	h["Authorization"] = []string{"Bearer forged"}
	resp, _ := rs.send(t, http.MethodGet, "/ledger", h)
	if resp.StatusCode != http.StatusOK || rs.tenant.Hits(entraidtest.Refresh) != refreshes+1 {
		t.Fatalf("got %d, %d refreshes: want the request that mints the token", resp.StatusCode, rs.tenant.Hits(entraidtest.Refresh)-refreshes)
	}
	up := rs.lastUpstream()
	checkIdentityHeaderSet(t, up, alice.OID)
	if auth := up.Get("Authorization"); auth == "Bearer forged" || !strings.HasPrefix(auth, "Bearer ") {
		t.Errorf("the minting request reached the upstream with Authorization %.30q", auth)
	}
	if got := up.Values("Cookie"); len(got) != 1 || got[0] != "app=1" {
		t.Errorf("the minting request reached the upstream with Cookie %.80q, want the app's cookie alone", got)
	}
}
