package entraid

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

func TestAuthCodeURL(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, func(c *Config) { c.Scopes = []string{"openid", "profile", "offline_access"} })
	ctx := context.Background()
	raw, err := f.client.AuthCodeURL(ctx, AuthRequest{RedirectURI: testRedirectURI, State: "s t", Nonce: "n&1", CodeChallenge: "c", Prompt: "select_account", LoginHint: "alice@contoso.example", DomainHint: "contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.Scheme+"://"+u.Host+u.Path, f.tenant.URL+"/"+f.tenant.TenantID+"/oauth2/v2.0/authorize"; got != want {
		t.Errorf("endpoint %s, want %s", got, want)
	}
	want := map[string]string{
		"client_id": f.tenant.ClientID, "response_type": "code", "redirect_uri": testRedirectURI, "response_mode": "query",
		"scope": "openid profile offline_access", "state": "s t", "nonce": "n&1", "code_challenge": "c", "code_challenge_method": "S256",
		"prompt": "select_account", "login_hint": "alice@contoso.example", "domain_hint": "contoso.example",
	}
	q := u.Query()
	for name, v := range want {
		if q.Get(name) != v {
			t.Errorf("%s = %q, want %q", name, q.Get(name), v)
		}
	}
	if len(q) != len(want) {
		t.Errorf("%d parameters, want %d: %v", len(q), len(want), q)
	}

	t.Run("optional parameters are left out", func(t *testing.T) {
		raw, err := f.client.AuthCodeURL(ctx, AuthRequest{RedirectURI: testRedirectURI, State: "s", Nonce: "n", CodeChallenge: "c"})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"prompt=", "login_hint=", "domain_hint="} {
			if strings.Contains(raw, name) {
				t.Errorf("URL has %s", name)
			}
		}
	})
	t.Run("required parameters are required", func(t *testing.T) {
		for _, req := range []AuthRequest{
			{State: "s", Nonce: "n", CodeChallenge: "c"},
			{RedirectURI: "r", Nonce: "n", CodeChallenge: "c"},
			{RedirectURI: "r", State: "s", CodeChallenge: "c"},
			{RedirectURI: "r", State: "s", Nonce: "n"},
		} {
			if _, err := f.client.AuthCodeURL(ctx, req); err == nil || !strings.HasPrefix(err.Error(), "entraid: auth request: ") {
				t.Errorf("%+v: error %v", req, err)
			}
		}
	})
	t.Run("an unreachable tenant is an error", func(t *testing.T) {
		g := newFixture(t, entraidtest.Options{}, nil)
		g.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Status: 502})
		if _, err := g.client.AuthCodeURL(ctx, AuthRequest{RedirectURI: "r", State: "s", Nonce: "n", CodeChallenge: "c"}); !errors.Is(err, ErrUnavailable) {
			t.Errorf("error %v", err)
		}
	})
}

// recorder is an http.RoundTripper that keeps the forms posted through it.
type recorder struct {
	mu    sync.Mutex
	forms []url.Values
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		form, _ := url.ParseQuery(string(b))
		r.mu.Lock()
		r.forms = append(r.forms, form)
		r.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestExchange(t *testing.T) {
	rec := &recorder{}
	// Converted first: Yaegi v0.16.1 cannot put an interpreted value into an
	// interface field of a compiled struct literal.
	var transport http.RoundTripper = rec
	f := newFixture(t, entraidtest.Options{}, func(c *Config) { c.HTTPClient = &http.Client{Transport: transport, Timeout: 5 * time.Second} })
	code, verifier := f.authorize(t, "n1")
	tok, err := f.client.Exchange(context.Background(), code, verifier, testRedirectURI)
	if err != nil {
		t.Fatal(err)
	}
	if tok.IDToken == "" || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn != 3599 || tok.RefreshToken != "" || !strings.Contains(tok.Scope, "openid") {
		t.Errorf("token %+v", tok)
	}
	if len(rec.forms) != 1 {
		t.Fatalf("%d posts", len(rec.forms))
	}
	want := map[string]string{
		"grant_type": "authorization_code", "client_id": f.tenant.ClientID, "code": code, "redirect_uri": testRedirectURI,
		"code_verifier": verifier, "scope": "openid profile email", "client_secret": f.tenant.ClientSecret,
	}
	for name, v := range want {
		if got := rec.forms[0].Get(name); got != v {
			t.Errorf("form %s = %q, want %q", name, got, v)
		}
	}

	t.Run("offline_access brings a refresh token", func(t *testing.T) {
		g := newFixture(t, entraidtest.Options{}, func(c *Config) { c.Scopes = []string{"openid", "offline_access"} })
		if tok := g.signIn(t, "n"); tok.RefreshToken == "" {
			t.Error("no refresh token")
		}
	})
	t.Run("code, verifier and redirect URI are required", func(t *testing.T) {
		for _, args := range [][3]string{{"", "v", "r"}, {"c", "", "r"}, {"c", "v", ""}} {
			if _, err := f.client.Exchange(context.Background(), args[0], args[1], args[2]); err == nil {
				t.Errorf("%q: no error", args)
			}
		}
	})
}

// federatedIssuer is a Kubernetes-like issuer the tenant can trust.
type federatedIssuer struct {
	url string
	key *rsa.PrivateKey
}

func newFederatedIssuer(t *testing.T) *federatedIssuer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &federatedIssuer{url: "https://oidc.cluster.example/abc", key: k}
}

func (fi *federatedIssuer) token(t *testing.T, sub, aud string, exp time.Time) string {
	t.Helper()
	s, err := jwt.Sign(fi.key, "k8s", map[string]interface{}{"iss": fi.url, "sub": sub, "aud": []string{aud}, "iat": time.Now().Unix(), "exp": exp.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExchangeWithClientAssertion(t *testing.T) {
	fi := newFederatedIssuer(t)
	const sub = "system:serviceaccount:web:traefik"
	assertion := ""
	f := newFixture(t, entraidtest.Options{}, func(c *Config) {
		// Through a variable: Yaegi v0.16.1 panics assigning a struct
		// literal straight to an interface-typed field.
		cred := ClientAssertion{Get: func(ctx context.Context) (string, error) { return assertion, nil }}
		c.Credential = cred
	})
	f.tenant.TrustFederatedIssuer(fi.url, jwt.KeySet{"k8s": &fi.key.PublicKey}, sub)

	assertion = fi.token(t, sub, "api://AzureADTokenExchange", time.Now().Add(time.Hour))
	tok := f.signIn(t, "n")
	if _, err := f.client.VerifyIDToken(context.Background(), tok.IDToken, "n"); err != nil {
		t.Error(err)
	}

	t.Run("a failing assertion source stops before the token endpoint", func(t *testing.T) {
		g := newFixture(t, entraidtest.Options{}, func(c *Config) {
			cred := ClientAssertion{Get: func(ctx context.Context) (string, error) { return "", errors.New("imds: 404") }}
			c.Credential = cred
		})
		code, verifier := g.authorize(t, "n")
		_, err := g.client.Exchange(context.Background(), code, verifier, testRedirectURI)
		if err == nil || !strings.Contains(err.Error(), "imds: 404") {
			t.Errorf("error %v", err)
		}
		if n := g.tenant.Hits(entraidtest.Token); n != 0 {
			t.Errorf("%d token requests", n)
		}
	})
}

func TestExchangeErrors(t *testing.T) {
	fi := newFederatedIssuer(t)
	const sub = "system:serviceaccount:web:traefik"
	inAnHour := time.Now().Add(time.Hour)
	const aud = "api://AzureADTokenExchange"
	otherSubject := fi.token(t, "system:serviceaccount:web:default", aud, inAnHour)
	otherIssuer := (&federatedIssuer{url: fi.url + "/", key: fi.key}).token(t, sub, aud, inAnHour)
	apiServerAudience := fi.token(t, sub, "https://kubernetes.default.svc.cluster.local", inAnHour)
	expired := fi.token(t, sub, aud, time.Now().Add(-time.Minute))
	assertionWith := func(s string) Credential {
		cred := ClientAssertion{Get: func(ctx context.Context) (string, error) { return s, nil }}
		return cred
	}
	tests := []struct {
		name       string
		opts       entraidtest.Options
		cfg        func(c *Config, ten *entraidtest.Tenant)
		act        func(t *testing.T, f *fixture) (code, verifier, redirectURI string) // default: a fresh good code
		wantStatus int
		wantCode   string
		wantAADSTS string
		wantHint   string
	}{
		{name: "a wrong secret is AADSTS7000215", cfg: func(c *Config, ten *entraidtest.Tenant) { c.Credential = ClientSecret("wrong") },
			wantStatus: 401, wantCode: "invalid_client", wantAADSTS: "AADSTS7000215", wantHint: "Value (not its Secret ID)"},
		{name: "an expired secret is AADSTS7000222", act: func(t *testing.T, f *fixture) (string, string, string) {
			code, v := f.authorize(t, "n")
			f.tenant.SetClientSecretExpired(true)
			return code, v, testRedirectURI
		}, wantStatus: 401, wantCode: "invalid_client", wantAADSTS: "AADSTS7000222", wantHint: "expired"},
		{name: "an app unknown in the tenant is AADSTS700016", act: func(t *testing.T, f *fixture) (string, string, string) {
			code, v := f.authorize(t, "n")
			f.client.clientID = "44444444-4444-4444-8444-444444444444"
			return code, v, testRedirectURI
		}, wantStatus: 400, wantCode: "unauthorized_client", wantAADSTS: "AADSTS700016", wantHint: "Application (client) ID"},
		{name: "an unregistered redirect URI is AADSTS50011", opts: entraidtest.Options{RedirectURIs: []string{testRedirectURI}}, act: func(t *testing.T, f *fixture) (string, string, string) {
			code, v := f.authorize(t, "n")
			return code, v, "https://other.example/portals/main/oauth2/callback"
		}, wantStatus: 400, wantCode: "invalid_request", wantAADSTS: "AADSTS50011", wantHint: "/portals/<portal>/oauth2/callback"},
		{name: "a redeemed code is AADSTS54005", act: func(t *testing.T, f *fixture) (string, string, string) {
			code, v := f.authorize(t, "n")
			if _, err := f.client.Exchange(context.Background(), code, v, testRedirectURI); err != nil {
				t.Fatal(err)
			}
			return code, v, testRedirectURI
		}, wantStatus: 400, wantCode: "invalid_grant", wantAADSTS: "AADSTS54005", wantHint: "already redeemed"},
		{name: "an expired code is AADSTS70008", act: func(t *testing.T, f *fixture) (string, string, string) {
			code, v := f.authorize(t, "n")
			f.clock.Advance(11 * time.Minute)
			return code, v, testRedirectURI
		}, wantStatus: 400, wantCode: "invalid_grant", wantAADSTS: "AADSTS70008", wantHint: "expired"},
		{name: "a wrong PKCE verifier is AADSTS501481", act: func(t *testing.T, f *fixture) (string, string, string) {
			code, _ := f.authorize(t, "n")
			v, _ := pkce("another login")
			return code, v, testRedirectURI
		}, wantStatus: 400, wantCode: "invalid_grant", wantAADSTS: "AADSTS501481", wantHint: "code_verifier"},
		{name: "an assertion of another subject is AADSTS70021", cfg: func(c *Config, ten *entraidtest.Tenant) {
			c.Credential = assertionWith(otherSubject)
		}, wantStatus: 400, wantCode: "invalid_request", wantAADSTS: "AADSTS70021", wantHint: "Issuer, Subject and Audience"},
		{name: "an assertion of an unknown issuer is AADSTS700211", cfg: func(c *Config, ten *entraidtest.Tenant) {
			c.Credential = assertionWith(otherIssuer)
		}, wantStatus: 401, wantCode: "invalid_client", wantAADSTS: "AADSTS700211", wantHint: "trailing slash"},
		{name: "a Kubernetes default token is AADSTS700212", cfg: func(c *Config, ten *entraidtest.Tenant) {
			c.Credential = assertionWith(apiServerAudience)
		}, wantStatus: 401, wantCode: "invalid_client", wantAADSTS: "AADSTS700212", wantHint: "projected service account token with audience api://AzureADTokenExchange"},
		{name: "an expired assertion is AADSTS700024", cfg: func(c *Config, ten *entraidtest.Tenant) {
			c.Credential = assertionWith(expired)
		}, wantStatus: 401, wantCode: "invalid_client", wantAADSTS: "AADSTS700024", wantHint: "clock"},
		{name: "an unknown code is AADSTS9002313", act: func(t *testing.T, f *fixture) (string, string, string) {
			return "1.Anot-a-code", "verifier", testRedirectURI
		}, wantStatus: 400, wantCode: "invalid_grant", wantAADSTS: "AADSTS9002313"},
		{name: "a redirect URI other than the authorize one is AADSTS500112", act: func(t *testing.T, f *fixture) (string, string, string) {
			code, v := f.authorize(t, "n")
			return code, v, "https://app.example/other"
		}, wantStatus: 400, wantCode: "invalid_grant", wantAADSTS: "AADSTS500112"},
	}
	for _, tt := range tests {
		f := newFixture(t, tt.opts, nil)
		f.tenant.TrustFederatedIssuer(fi.url, jwt.KeySet{"k8s": &fi.key.PublicKey}, sub)
		if tt.cfg != nil {
			cfg := Config{AuthorityHost: f.tenant.URL, Tenant: f.tenant.TenantID, ClientID: f.tenant.ClientID, Credential: ClientSecret(f.tenant.ClientSecret), Now: f.clock.Now}
			tt.cfg(&cfg, f.tenant)
			c, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			f.client = c
		}
		var code, verifier, redirectURI string
		if tt.act != nil {
			code, verifier, redirectURI = tt.act(t, f)
		} else {
			code, verifier = f.authorize(t, "n")
			redirectURI = testRedirectURI
		}
		_, err := f.client.Exchange(context.Background(), code, verifier, redirectURI)
		e, ok := err.(*Error)
		if !ok {
			t.Errorf("%s: error %v (%T), want *Error", tt.name, err, err)
			continue
		}
		if e.StatusCode != tt.wantStatus || e.Code != tt.wantCode || e.AADSTS() != tt.wantAADSTS || e.TraceID == "" || e.CorrelationID == "" || e.Timestamp == "" {
			t.Errorf("%s: got %d %s %s trace %q corr %q ts %q", tt.name, e.StatusCode, e.Code, e.AADSTS(), e.TraceID, e.CorrelationID, e.Timestamp)
		}
		if prefix := "entraid: token endpoint: " + tt.wantCode + ": " + tt.wantAADSTS + ": "; !strings.HasPrefix(e.Error(), prefix) || strings.Contains(e.Error(), "Trace ID") {
			t.Errorf("%s: Error() = %q, want the first line after %q", tt.name, e.Error(), prefix)
		}
		if !strings.Contains(e.Hint(), tt.wantHint) || (tt.wantHint != "" && e.Hint() == "") {
			t.Errorf("%s: Hint() = %q, want it to mention %q", tt.name, e.Hint(), tt.wantHint)
		}
		if errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: an Entra answer is not unavailability", tt.name)
		}
	}
}

func TestExchangeUnavailable(t *testing.T) {
	const idToken = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
	tests := []struct {
		name    string
		fault   entraidtest.Fault
		timeout time.Duration
		wantErr string
	}{
		{"a 503 with Entra's JSON is unavailable, quoting it", entraidtest.Fault{Status: 503, Body: `{"error":"temporarily_unavailable","error_description":"AADSTS50196: The server terminated an operation.\r\nTrace ID: t9","error_codes":[50196],"trace_id":"t9"}`}, 0, "HTTP 503: temporarily_unavailable: AADSTS50196: The server terminated an operation. (trace ID t9)"},
		{"a 500 with HTML is unavailable", entraidtest.Fault{Status: 500, Body: "<html>oops</html>"}, 0, "HTTP 500"},
		{"a 400 that is not Entra's JSON is unavailable", entraidtest.Fault{Status: 400, Body: "<html>Bad Request</html>"}, 0, "HTTP 400: body \"<html>Bad Request</html>\""},
		{"a 404 from a proxy is unavailable", entraidtest.Fault{Status: 404, Body: "404 page not found"}, 0, "HTTP 404"},
		{"a 302 is unavailable", entraidtest.Fault{Status: 302}, 0, "HTTP 302"},
		{"a 200 that is not JSON is unavailable", entraidtest.Fault{Status: 200, Body: "<html>login</html>"}, 0, "not JSON"},
		{"a 200 without id_token is unavailable", entraidtest.Fault{Status: 200, Body: `{"access_token":"a","token_type":"Bearer","expires_in":3599}`}, 0, "no id_token"},
		{"an expires_in that is no number is unavailable", entraidtest.Fault{Status: 200, Body: `{"id_token":"` + idToken + `","expires_in":"soon"}`}, 0, "expires_in"},
		{"an expires_in of another type is unavailable", entraidtest.Fault{Status: 200, Body: `{"id_token":"` + idToken + `","expires_in":true}`}, 0, "expires_in"},
		{"a slow tenant times out", entraidtest.Fault{Delay: time.Second}, 100 * time.Millisecond, "token endpoint"},
	}
	for _, tt := range tests {
		f := newFixture(t, entraidtest.Options{}, func(c *Config) {
			if tt.timeout > 0 {
				c.HTTPClient = &http.Client{Timeout: tt.timeout}
			}
		})
		code, verifier := f.authorize(t, "n")
		f.tenant.SetFault(entraidtest.Token, tt.fault)
		_, err := f.client.Exchange(context.Background(), code, verifier, testRedirectURI)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want ErrUnavailable containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestExchangeExpiresIn(t *testing.T) {
	const idToken = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
	tests := []struct {
		name string
		body string
		want int64
	}{
		{"a number", `{"id_token":"` + idToken + `","expires_in":3599}`, 3599},
		{"a string", `{"id_token":"` + idToken + `","expires_in":"4321"}`, 4321},
		{"absent", `{"id_token":"` + idToken + `"}`, 0},
	}
	for _, tt := range tests {
		f := newFixture(t, entraidtest.Options{}, nil)
		code, verifier := f.authorize(t, "n")
		f.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Status: 200, Body: tt.body})
		tok, err := f.client.Exchange(context.Background(), code, verifier, testRedirectURI)
		if err != nil || tok.ExpiresIn != tt.want {
			t.Errorf("%s: %+v %v, want %d", tt.name, tok, err, tt.want)
		}
	}
}
