package entraauth

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// anonymousRequest sends a request without a session, with spoofed identity
// headers and a cookie of the plugin's, and returns the answer and what the
// upstream received (nil when the request did not reach it).
func anonymousRequest(t *testing.T, st *stack, c *http.Client, path string, header map[string]string) (*http.Response, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", st.server.URL+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Forwarded-User", "mallory")
	req.Header["X_Forwarded_Email"] = []string{"mallory@evil.example"}
	once := *c // noRedirects changes the client it is given
	resp, err := noRedirects(&once).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	return resp, st.lastUpstream()
}

var (
	navigationHeaders = map[string]string{"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
	apiHeaders        = map[string]string{"Accept": "application/json"}
)

func TestWhatARequestWithoutASessionGetsInEachMode(t *testing.T) {
	tests := []struct {
		mode   string
		header map[string]string
		status int
	}{
		{"", navigationHeaders, http.StatusFound},
		{"redirect", navigationHeaders, http.StatusFound},
		{"redirect", apiHeaders, http.StatusUnauthorized},
		{"401", navigationHeaders, http.StatusUnauthorized},
		{"401", apiHeaders, http.StatusUnauthorized},
		{"allow", navigationHeaders, http.StatusOK},
		{"ALLOW", apiHeaders, http.StatusOK},
	}
	for _, tt := range tests {
		tt := tt
		kind := "a navigation"
		if tt.header["Accept"] == "application/json" {
			kind = "an API call"
		}
		t.Run("unauthenticated "+tt.mode+": "+kind+" gets "+http.StatusText(tt.status), func(t *testing.T) {
			st := newStack(t, func(c *Config) { c.Unauthenticated = tt.mode })
			resp, up := anonymousRequest(t, st, st.browser(), "/home", tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			switch tt.status {
			case http.StatusFound:
				if !strings.HasPrefix(resp.Header.Get("Location"), st.tenant.URL) {
					t.Errorf("Location %q, want the tenant", resp.Header.Get("Location"))
				}
			case http.StatusUnauthorized:
				if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="main"`) {
					t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
				}
			case http.StatusOK:
				for k := range up {
					if isIdentityHeader(st.mw, k) {
						t.Errorf("the anonymous request reached the upstream with %s: %q", k, up[k])
					}
				}
			}
		})
	}
}

// signInThroughThePortal follows /portals/main/sign-in?rd=/start in c to
// the end and returns the final response.
func signInThroughThePortal(t *testing.T, st *stack, c *http.Client) *http.Response {
	t.Helper()
	resp, body := navigate(t, c, st.server.URL+"/portals/main/sign-in?rd="+url.QueryEscape("/start?x=1"))
	if resp.StatusCode != http.StatusOK || body != "upstream /start?x=1" {
		t.Fatalf("sign-in ended with %d %q", resp.StatusCode, body)
	}
	return resp
}

func TestAnAllowRouterServesAnonymousAndSignedInUsers(t *testing.T) {
	bob := entraidtest.User{OID: "7a2b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c5d", Name: "Bob", PreferredUsername: "bob@contoso.example"}
	tests := []struct {
		name     string
		user     entraidtest.User
		identity bool
	}{
		{"a user the rules allow passes with the identity headers", alice, true},
		{"a user the rules refuse passes as anonymous, without them", bob, false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			st := newStackFor(t, tt.user, func(c *Config) {
				c.Unauthenticated = "allow"
				c.AllowedRoles = []string{"Reader"}
				c.APIAudience = []string{testAPIClientID}
			})
			c := st.browser()
			if _, up := anonymousRequest(t, st, c, "/", navigationHeaders); up.Get("X-Forwarded-User") != "" {
				t.Fatalf("anonymous: X-Forwarded-User %q", up.Get("X-Forwarded-User"))
			}
			signInThroughThePortal(t, st, c)
			first := st.lastUpstream()
			// The second and third come from the session cache, if at all:
			// it must agree with authorize.
			for i := 0; i < 3; i++ {
				up := first
				if i > 0 {
					var resp *http.Response
					resp, up = anonymousRequest(t, st, c, "/page", apiHeaders)
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("request %d: status %d", i, resp.StatusCode)
					}
				}
				got := up.Get("X-Forwarded-User")
				if tt.identity && got != tt.user.OID || !tt.identity && got != "" {
					t.Errorf("request %d: X-Forwarded-User %q, identity %v", i, got, tt.identity)
				}
				if up.Get("X-Forwarded-Email") != "" && !tt.identity || strings.Contains(up.Get("Cookie"), "entraauth_main") {
					t.Errorf("request %d reached the upstream with %v", i, up)
				}
			}
			// A bearer token that fails is a 401, never anonymous.
			resp, _ := anonymousRequest(t, st, st.browser(), "/api", map[string]string{"Authorization": "Bearer not-a-token"})
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("a bad bearer token got %d %q, want 401 invalid_token", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestAnonymousRequestsLoseTheAuthorizationHeaderThatCarriesUpstreamTokens(t *testing.T) {
	st := newStack(t, func(c *Config) {
		c.Unauthenticated = "allow"
		c.UpstreamAccessToken.Scope = "api://my-api/.default"
	})
	_, up := anonymousRequest(t, st, st.browser(), "/", map[string]string{"Authorization": "Bearer forged"})
	if got := up.Get("Authorization"); got != "" {
		t.Errorf("Authorization %q reached the upstream: it would pass for the plugin's token", got)
	}
}

func TestTheSignInEndpointReturnsOnlyWhereReturnsMayGo(t *testing.T) {
	st := newStack(t, func(c *Config) { c.Unauthenticated = "allow" })
	base := st.server.URL
	tests := []struct {
		name, rd, want string
	}{
		{"a local path", "/start?x=1", base + "/start?x=1"},
		{"an absolute URL on this host", base + "/a", base + "/a"},
		{"none", "", base + "/"},
		{"another site", "https://evil.example/", base + "/"},
		{"a protocol-relative URL", "//evil.example/", base + "/"},
		{"a backslash", "/\\evil.example", base + "/"},
		{"the sign-in endpoint itself", "/portals/main/sign-in?rd=/x", base + "/"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := noRedirects(st.browser())
			resp, _ := navigate(t, c, base+"/portals/main/sign-in?rd="+url.QueryEscape(tt.rd))
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), st.tenant.URL) {
				t.Fatalf("sign-in: %d to %q, want a redirect to the tenant", resp.StatusCode, resp.Header.Get("Location"))
			}
			resp, _ = navigate(t, c, resp.Header.Get("Location"))
			resp, _ = navigate(t, c, resp.Header.Get("Location"))
			if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != tt.want {
				t.Fatalf("the callback sends the user to %q (%d), want %q", got, resp.StatusCode, tt.want)
			}
		})
	}
	req, _ := http.NewRequest("POST", base+"/portals/main/sign-in", nil)
	resp, err := noRedirects(st.browser()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}
}

func TestTheSignInEndpointIsNeverServedFromTheCache(t *testing.T) {
	m, c := newCacheMiddleware(t, func(c *Config) { c.Unauthenticated = "allow" })
	cookie := m.cookie.Name + "=" + sealCookie(t, m, cacheUser("33333333-0000-4000-8000-000000000001", time.Now()))
	authorizeSignedIn(m, c, cacheRequest("/", cookie))
	if !passCached(m, c, cacheRequest("/", cookie)) {
		t.Fatal("a signed-in request on an allow router missed the cache")
	}
	if passCached(m, c, cacheRequest("/portals/main/sign-in", cookie)) {
		t.Error("the sign-in endpoint was served from the cache")
	}
}

func TestUnauthenticatedIsValidated(t *testing.T) {
	for _, v := range []string{"deny", "403", "redirect,allow"} {
		c := validConfig()
		c.Unauthenticated = v
		_, err := validate(c, noEnv)
		if err == nil || !strings.HasPrefix(err.Error(), "entraauth: unauthenticated: ") || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("%q: err = %v, want unauthenticated named with the choices", v, err)
		}
	}
}
