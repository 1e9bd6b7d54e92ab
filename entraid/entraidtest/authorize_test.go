package entraidtest

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// noRedirect stops at the first answer, as a test of redirects must. (The
// parameters are named: Yaegi v0.16.1 mis-binds unnamed parameters of a
// function literal called from compiled code.)
var noRedirect = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	return http.ErrUseLastResponse
}}

const testVerifier = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag"

func challengeOf(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authParams are the parameters of a good authorization request.
func authParams(ten *Tenant) url.Values {
	return url.Values{
		"client_id":             {ten.ClientID},
		"response_type":         {"code"},
		"redirect_uri":          {"https://app.example/portals/main/oauth2/callback"},
		"response_mode":         {"query"},
		"scope":                 {"openid profile email"},
		"state":                 {"state-1"},
		"nonce":                 {"nonce-1"},
		"code_challenge":        {challengeOf(testVerifier)},
		"code_challenge_method": {"S256"},
	}
}

type answer struct {
	status   int
	location *url.URL
	body     string
}

func authorize(t *testing.T, ten *Tenant, method string, params url.Values) answer {
	t.Helper()
	endpoint := ten.URL + "/" + ten.TenantID + "/oauth2/v2.0/authorize"
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = noRedirect.PostForm(endpoint, params)
	} else {
		resp, err = noRedirect.Get(endpoint + "?" + params.Encode())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(b)}
	if loc := resp.Header.Get("Location"); loc != "" {
		a.location, err = url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestAuthorizeRefusals(t *testing.T) {
	ten := newTestTenant(t, Options{SignIn: "alice@contoso.example"})
	registered := newTestTenant(t, Options{SignIn: "alice@contoso.example", RedirectURIs: []string{"https://app.example/portals/main/oauth2/callback"}})
	tests := []struct {
		name   string
		tenant *Tenant
		change url.Values // "" deletes
		// An error page (no redirect) with this code, or a redirect with error.
		wantPage     string
		wantError    string
		wantErrorMsg string
	}{
		{"a missing client_id shows a page", ten, url.Values{"client_id": {""}}, "AADSTS900144", "", ""},
		{"an unknown client_id shows a page and does not redirect", ten, url.Values{"client_id": {"11111111-1111-1111-1111-111111111111"}}, "AADSTS700016", "", ""},
		{"an unregistered redirect_uri shows a page", registered, url.Values{"redirect_uri": {"https://evil.example/cb"}}, "AADSTS50011", "", ""},
		{"a registered redirect_uri differing in case shows a page", registered, url.Values{"redirect_uri": {"https://APP.example/portals/main/oauth2/callback"}}, "AADSTS50011", "", ""},
		{"without registration, a non-http redirect_uri shows a page", ten, url.Values{"redirect_uri": {"javascript:alert(1)"}}, "AADSTS50011", "", ""},
		{"without registration, a relative redirect_uri shows a page", ten, url.Values{"redirect_uri": {"/cb"}}, "AADSTS50011", "", ""},
		{"a missing redirect_uri shows a page", ten, url.Values{"redirect_uri": {""}}, "AADSTS50011", "", ""},
		{"response_type token is refused", ten, url.Values{"response_type": {"token"}}, "", "unsupported_response_type", "AADSTS70005"},
		{"a missing scope is refused", ten, url.Values{"scope": {""}}, "", "invalid_request", "AADSTS900144"},
		{"a scope without openid is refused", ten, url.Values{"scope": {"profile email"}}, "", "invalid_scope", "AADSTS70011"},
		{"a missing code_challenge is refused", ten, url.Values{"code_challenge": {""}}, "", "invalid_request", "AADSTS50147"},
		{"code_challenge_method plain is refused", ten, url.Values{"code_challenge_method": {"plain"}}, "", "invalid_request", "AADSTS50149"},
		{"a missing code_challenge_method is refused", ten, url.Values{"code_challenge_method": {""}}, "", "invalid_request", "AADSTS50149"},
		{"a code_challenge of the wrong size is refused", ten, url.Values{"code_challenge": {"abc"}}, "", "invalid_request", "AADSTS501491"},
		{"response_mode fragment is refused", ten, url.Values{"response_mode": {"fragment"}}, "", "invalid_request", "AADSTS70007"},
	}
	for _, tt := range tests {
		p := authParams(tt.tenant)
		for name, v := range tt.change {
			if v[0] == "" {
				p.Del(name)
			} else {
				p[name] = v
			}
		}
		a := authorize(t, tt.tenant, http.MethodGet, p)
		if tt.wantPage != "" {
			if a.status != http.StatusBadRequest || a.location != nil || !strings.Contains(a.body, tt.wantPage+": ") || !strings.Contains(a.body, "Correlation Id") {
				t.Errorf("%s: got %d %v, want an error page with %s", tt.name, a.status, a.location, tt.wantPage)
			}
			continue
		}
		if a.status != http.StatusFound || a.location == nil {
			t.Errorf("%s: got %d, want a redirect", tt.name, a.status)
			continue
		}
		q := a.location.Query()
		if q.Get("error") != tt.wantError || !strings.HasPrefix(q.Get("error_description"), tt.wantErrorMsg+": ") || q.Get("state") != "state-1" || q.Get("code") != "" {
			t.Errorf("%s: redirect %s, want error %s %s with state", tt.name, a.location, tt.wantError, tt.wantErrorMsg)
		}
		if !strings.Contains(q.Get("error_description"), "\r\nTrace ID: ") {
			t.Errorf("%s: error_description lacks the trace ID", tt.name)
		}
	}
}

func TestAuthorizeSignIn(t *testing.T) {
	t.Run("SignIn redirects at once with code, state and session_state", func(t *testing.T) {
		ten := newTestTenant(t, Options{SignIn: "bob@contoso.example"})
		a := authorize(t, ten, http.MethodGet, authParams(ten))
		if a.status != http.StatusFound {
			t.Fatalf("status %d", a.status)
		}
		q := a.location.Query()
		if a.location.Host != "app.example" || a.location.Path != "/portals/main/oauth2/callback" || q.Get("code") == "" || q.Get("state") != "state-1" || q.Get("session_state") == "" {
			t.Errorf("redirect %s", a.location)
		}
		if got := redeem(t, ten, q.Get("code")).claims["preferred_username"]; got != "bob@contoso.example" {
			t.Errorf("signed in %v, want bob", got)
		}
	})
	t.Run("the redirect keeps the redirect URI's own query", func(t *testing.T) {
		ten := newTestTenant(t, Options{SignIn: "alice@contoso.example"})
		p := authParams(ten)
		p.Set("redirect_uri", "https://app.example/cb?portal=main")
		a := authorize(t, ten, http.MethodGet, p)
		if a.location == nil || a.location.Query().Get("portal") != "main" || a.location.Query().Get("code") == "" {
			t.Errorf("redirect %v", a.location)
		}
	})
	t.Run("SetSignIn changes the user", func(t *testing.T) {
		ten := newTestTenant(t, Options{SignIn: "alice@contoso.example"})
		ten.SetSignIn("bob@contoso.example")
		a := authorize(t, ten, http.MethodGet, authParams(ten))
		if got := redeem(t, ten, a.location.Query().Get("code")).claims["name"]; got != "Bob Jones" {
			t.Errorf("signed in %v, want Bob Jones", got)
		}
	})
	t.Run("a SignIn user the tenant lacks shows AADSTS50034", func(t *testing.T) {
		ten := newTestTenant(t, Options{SignIn: "carol@contoso.example"})
		a := authorize(t, ten, http.MethodGet, authParams(ten))
		if a.status != http.StatusBadRequest || !strings.Contains(a.body, "AADSTS50034") {
			t.Errorf("got %d", a.status)
		}
	})
	t.Run("prompt=none without a signed-in user answers login_required", func(t *testing.T) {
		ten := newTestTenant(t, Options{})
		p := authParams(ten)
		p.Set("prompt", "none")
		a := authorize(t, ten, http.MethodGet, p)
		if a.location == nil || a.location.Query().Get("error") != "login_required" || !strings.HasPrefix(a.location.Query().Get("error_description"), "AADSTS50058") {
			t.Errorf("got %d %v", a.status, a.location)
		}
	})
	t.Run("response_mode form_post answers with a form", func(t *testing.T) {
		ten := newTestTenant(t, Options{SignIn: "alice@contoso.example"})
		p := authParams(ten)
		p.Set("response_mode", "form_post")
		a := authorize(t, ten, http.MethodGet, p)
		if a.status != http.StatusOK || !strings.Contains(a.body, `<form method="post" action="https://app.example/portals/main/oauth2/callback">`) || !strings.Contains(a.body, `name="code"`) || !strings.Contains(a.body, `name="state" value="state-1"`) {
			t.Errorf("got %d %s", a.status, a.body)
		}
	})
}

func TestSignInPage(t *testing.T) {
	ten := newTestTenant(t, Options{})
	p := authParams(ten)
	p.Set("state", `"><script>alert(1)</script>`)
	a := authorize(t, ten, http.MethodGet, p)

	t.Run("lists every user with name, username and groups", func(t *testing.T) {
		if a.status != http.StatusOK {
			t.Fatalf("status %d", a.status)
		}
		for _, u := range ten.Users {
			for _, s := range []string{u.Name, u.PreferredUsername, u.Groups[0], `name="login" value="` + u.PreferredUsername + `"`} {
				if !strings.Contains(a.body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
		}
		if !strings.Contains(a.body, `<form method="post" action="/`+ten.TenantID+`/oauth2/v2.0/authorize">`) || !strings.Contains(a.body, `id="cancel"`) {
			t.Error("page lacks the form or the cancel button")
		}
	})
	t.Run("carries the request in hidden fields, escaped", func(t *testing.T) {
		if !strings.Contains(a.body, `<input type="hidden" name="nonce" value="nonce-1">`) {
			t.Error("nonce is not carried")
		}
		if strings.Contains(a.body, "<script>alert") {
			t.Error("state is not escaped")
		}
	})
	t.Run("posting a user signs them in", func(t *testing.T) {
		p := authParams(ten)
		p.Set("login", "bob@contoso.example")
		a := authorize(t, ten, http.MethodPost, p)
		if a.status != http.StatusFound || a.location.Query().Get("state") != "state-1" {
			t.Fatalf("got %d %v", a.status, a.location)
		}
		got := redeem(t, ten, a.location.Query().Get("code"))
		if got.claims["oid"] != ten.Users[1].OID || got.claims["nonce"] != "nonce-1" {
			t.Errorf("claims %v", got.claims)
		}
	})
	t.Run("posting an unknown user shows the page again", func(t *testing.T) {
		p := authParams(ten)
		p.Set("login", "mallory@contoso.example")
		a := authorize(t, ten, http.MethodPost, p)
		if a.status != http.StatusBadRequest || a.location != nil || !strings.Contains(a.body, "No account with that username") {
			t.Errorf("got %d %v", a.status, a.location)
		}
	})
	t.Run("cancel answers access_denied with AADSTS65004", func(t *testing.T) {
		p := authParams(ten)
		p.Set("cancel", "1")
		a := authorize(t, ten, http.MethodPost, p)
		q := a.location.Query()
		if q.Get("error") != "access_denied" || !strings.HasPrefix(q.Get("error_description"), "AADSTS65004: ") || q.Get("state") != "state-1" || q.Get("code") != "" {
			t.Errorf("redirect %s", a.location)
		}
	})
	if got := ten.Hits(Authorize); got != 4 {
		t.Errorf("Hits(Authorize) = %d, want 4", got)
	}
}

func TestLogout(t *testing.T) {
	open := newTestTenant(t, Options{})
	registered := newTestTenant(t, Options{RedirectURIs: []string{"https://app.example/portals/main/oauth2/callback"}})
	registered.AddRedirectURI("https://app.example/portals/main/signed-out")
	tests := []struct {
		name   string
		tenant *Tenant
		query  url.Values
		want   string // redirect target, or "" for the signed-out page
	}{
		{"redirects to a registered post_logout_redirect_uri", registered, url.Values{"post_logout_redirect_uri": {"https://app.example/portals/main/signed-out"}}, "https://app.example/portals/main/signed-out"},
		{"passes state back", registered, url.Values{"post_logout_redirect_uri": {"https://app.example/portals/main/signed-out"}, "state": {"s1"}}, "https://app.example/portals/main/signed-out?state=s1"},
		{"refuses another URI on a registered host", registered, url.Values{"post_logout_redirect_uri": {"https://app.example/"}}, ""},
		{"refuses a URI that only starts like a registered one", registered, url.Values{"post_logout_redirect_uri": {"https://app.example/portals/main/signed-out/x"}}, ""},
		{"refuses a URI on another host", registered, url.Values{"post_logout_redirect_uri": {"https://evil.example/"}}, ""},
		{"sends nobody back when no URI is registered", open, url.Values{"post_logout_redirect_uri": {"https://app.example/"}}, ""},
		{"refuses a non-http URI", open, url.Values{"post_logout_redirect_uri": {"javascript:alert(1)"}}, ""},
		{"shows a page without a URI", open, url.Values{}, ""},
	}
	for _, tt := range tests {
		resp, err := noRedirect.Get(tt.tenant.URL + "/" + tt.tenant.TenantID + "/oauth2/v2.0/logout?" + tt.query.Encode())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tt.want != "" {
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != tt.want {
				t.Errorf("%s: %d %q, want redirect to %s", tt.name, resp.StatusCode, resp.Header.Get("Location"), tt.want)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "You signed out") {
			t.Errorf("%s: %d, want the signed-out page", tt.name, resp.StatusCode)
		}
	}
	if open.Hits(Logout) != 3 || registered.Hits(Logout) != 5 {
		t.Errorf("Hits(Logout) = %d and %d", open.Hits(Logout), registered.Hits(Logout))
	}
}
