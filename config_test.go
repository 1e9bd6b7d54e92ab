package entraauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

const (
	testTenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClientID = "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc"
	testSecret   = "0123456789abcdef0123456789abcdef"
)

// validConfig is a complete configuration that New accepts.
func validConfig() *Config {
	c := CreateConfig()
	c.MicrosoftEntraID.TenantID = testTenantID
	c.MicrosoftEntraID.ClientID = testClientID
	c.MicrosoftEntraID.ClientSecret = "client-secret-value"
	c.Session.Secret = testSecret
	return c
}

func noEnv(string) string { return "" }

func TestNewAcceptsAValidConfigWithoutNetworkIO(t *testing.T) {
	// A reachable tenant that counts every request: New, for every
	// feature that later talks to it (sign-in, bearer tokens, groups from
	// Graph), must not. Traefik calls New while loading its configuration,
	// and the plugin catalog's analyzer calls it offline.
	tenant := entraidtest.NewTenant(entraidtest.Options{TenantID: testTenantID, ClientID: testClientID})
	t.Cleanup(tenant.Close)
	c := validConfig()
	c.MicrosoftEntraID.AuthorityHost = tenant.URL
	c.MicrosoftEntraID.ClientSecret = "network-io-" + randomToken()
	c.APIAudience = []string{testAPIClientID, testAPIURI}
	c.RequiredScopes = []string{"Items.Read"}
	c.APIAppRoles = []string{"Items.Sync"}
	c.AllowedGroups = []string{alice.Groups[0]}
	for i := 0; i < 3; i++ {
		h, err := New(context.Background(), http.NotFoundHandler(), c, "test")
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if h == nil {
			t.Fatal("New returned a nil handler")
		}
	}
	for _, e := range []string{entraidtest.Discovery, entraidtest.JWKS, entraidtest.Authorize, entraidtest.Token, entraidtest.Logout, entraidtest.Graph} {
		if n := tenant.Hits(e); n != 0 {
			t.Errorf("New made %d %s requests", n, e)
		}
	}
	// The counter counts: the first request through the middleware
	// fetches the tenant's metadata.
	h, _ := New(context.Background(), http.NotFoundHandler(), c, "test")
	r := httptest.NewRequest("GET", "https://app.example.com/", nil)
	r.Header.Set("Accept", "text/html")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if tenant.Hits(entraidtest.Discovery) == 0 {
		t.Error("a sign-in did not reach the tenant: the hit counts above prove nothing")
	}
}

func TestTraefikTestDataIsAValidConfig(t *testing.T) {
	// .traefik.yml's testData is what the plugin catalog's analyzer feeds to
	// New; keep it in step with this configuration.
	b, err := os.ReadFile(".traefik.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tenantID: 00000000-0000-0000-0000-000000000000", "clientID: 11111111-1111-1111-1111-111111111111", "clientSecret:", "secret: please-replace-this-with-32-or-more-random-characters"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf(".traefik.yml testData lacks %q", want)
		}
	}
	c := CreateConfig()
	c.MicrosoftEntraID.TenantID = "00000000-0000-0000-0000-000000000000"
	c.MicrosoftEntraID.ClientID = "11111111-1111-1111-1111-111111111111"
	c.MicrosoftEntraID.ClientSecret = "not-a-real-secret"
	c.Session.Secret = "please-replace-this-with-32-or-more-random-characters"
	if _, err := New(context.Background(), http.NotFoundHandler(), c, "testData"); err != nil {
		t.Fatalf("New(testData): %v", err)
	}
	// And decoded as the catalog's analyzer decodes it: every key an
	// option, none of them unknown.
	docs, err := parseYAML(string(b))
	if err != nil || len(docs) != 1 {
		t.Fatalf(".traefik.yml: %v", err)
	}
	manifest, _ := docs[0].(map[string]interface{})
	testData, ok := manifest["testData"].(map[string]interface{})
	if !ok {
		t.Fatalf(".traefik.yml has no testData block: %v", docs[0])
	}
	decoded := CreateConfig()
	if err := decodeLikeTraefik(testData, decoded); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), http.NotFoundHandler(), decoded, "testData"); err != nil {
		t.Fatalf("New(decoded testData): %v", err)
	}
}

func TestValidateRefusesBadOptionsByName(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(c *Config)
		option string
	}{
		{"an upper-case portal", func(c *Config) { c.Portal = "Main" }, "portal"},
		{"a portal with a slash", func(c *Config) { c.Portal = "a/b" }, "portal"},
		{"a missing tenant", func(c *Config) { c.MicrosoftEntraID.TenantID = "" }, "microsoftEntraID.tenantID"},
		{"a malformed tenant", func(c *Config) { c.MicrosoftEntraID.TenantID = "not a tenant" }, "microsoftEntraID.tenantID"},
		{"a multi-tenant authority without allowedTenants", func(c *Config) { c.MicrosoftEntraID.TenantID = "organizations" }, "microsoftEntraID.allowedTenants"},
		{"allowedTenants that are not GUIDs", func(c *Config) {
			c.MicrosoftEntraID.TenantID = "common"
			c.MicrosoftEntraID.AllowedTenants = []string{"contoso.com"}
		}, "microsoftEntraID.allowedTenants"},
		{"the consumers authority", func(c *Config) { c.MicrosoftEntraID.TenantID = "consumers" }, "microsoftEntraID.tenantID"},
		{"an allowed group that is no object ID", func(c *Config) { c.AllowedGroups = []string{"Admins"} }, "allowedGroups"},
		{"an allowed email domain with a scheme", func(c *Config) { c.AllowedEmailDomains = []string{"https://contoso.com"} }, "allowedEmailDomains"},
		{"a header name with a space", func(c *Config) { c.Headers = map[string]string{"X User": "oid"} }, "headers"},
		{"a header claim list", func(c *Config) { c.Headers = map[string]string{"X-User": "oid, email"} }, "headers"},
		{"an excluded path without a slash", func(c *Config) { c.ExcludedPaths = []string{"health"} }, "excludedPaths"},
		{"an excluded path inside the portal", func(c *Config) { c.ExcludedPaths = []string{"/portals/main/*"} }, "excludedPaths"},
		{"an excluded prefix with a path parameter", func(c *Config) { c.ExcludedPaths = []string{"/public;v=1/*"} }, "excludedPaths"},
		{"an excluded path with a dot-dot segment", func(c *Config) { c.ExcludedPaths = []string{"/public/../health"} }, "excludedPaths"},
		{"an excluded path with a percent sign", func(c *Config) { c.ExcludedPaths = []string{"/public%2Fx"} }, "excludedPaths"},
		{"an excluded method with a space", func(c *Config) { c.ExcludedMethods = []string{"GET /"} }, "excludedMethods"},
		{"a client ID that is not a GUID", func(c *Config) { c.MicrosoftEntraID.ClientID = "my-app" }, "microsoftEntraID.clientID"},
		{"no client credential", func(c *Config) { c.MicrosoftEntraID.ClientSecret = "" }, "microsoftEntraID"},
		{"two client credentials", func(c *Config) { c.MicrosoftEntraID.ClientSecretFile = "/x" }, "microsoftEntraID"},
		{"a missing secret file", func(c *Config) {
			c.MicrosoftEntraID.ClientSecret = ""
			c.MicrosoftEntraID.ClientSecretFile = filepath.Join(dir, "nope")
		}, "microsoftEntraID.clientSecretFile"},
		{"an empty secret file", func(c *Config) {
			c.MicrosoftEntraID.ClientSecret = ""
			c.MicrosoftEntraID.ClientSecretFile = empty
		}, "microsoftEntraID.clientSecretFile"},
		{"an unknown client assertion", func(c *Config) {
			c.MicrosoftEntraID.ClientSecret = ""
			c.MicrosoftEntraID.ClientAssertion = "SomethingElse"
		}, "microsoftEntraID.clientAssertion"},
		{"a plain-http authority host", func(c *Config) { c.MicrosoftEntraID.AuthorityHost = "http://login.microsoftonline.com" }, "microsoftEntraID.authorityHost"},
		{"an authority host with a path", func(c *Config) { c.MicrosoftEntraID.AuthorityHost = "https://login.microsoftonline.com/tenant" }, "microsoftEntraID.authorityHost"},
		{"an authority host that is not Microsoft's", func(c *Config) { c.MicrosoftEntraID.AuthorityHost = "https://attacker.example" }, "microsoftEntraID.authorityHost"},
		{"an authority host that only starts like Microsoft's", func(c *Config) {
			c.MicrosoftEntraID.AuthorityHost = "https://login.microsoftonline.com.attacker.example"
		}, "microsoftEntraID.authorityHost"},
		{"an authority host on a private address", func(c *Config) { c.MicrosoftEntraID.AuthorityHost = "https://10.0.0.5" }, "microsoftEntraID.authorityHost"},
		{"an authority host with user info", func(c *Config) {
			c.MicrosoftEntraID.AuthorityHost = "https://login.microsoftonline.com@attacker.example"
		}, "microsoftEntraID.authorityHost"},
		{"the reserved header Cookie in headers", func(c *Config) { c.Headers = map[string]string{"Cookie": "oid"} }, "headers"},
		{"the reserved header cookie in headers", func(c *Config) { c.Headers = map[string]string{"cookie": "oid"} }, "headers"},
		{"the reserved header Authorization in headers", func(c *Config) { c.Headers = map[string]string{"Authorization": "oid"} }, "headers"},
		{"the reserved header Host in headers", func(c *Config) { c.Headers = map[string]string{"Host": "oid"} }, "headers"},
		{"the reserved header Forwarded in headers", func(c *Config) { c.Headers = map[string]string{"Forwarded": "oid"} }, "headers"},
		{"the reserved header X-Forwarded-For in headers", func(c *Config) { c.Headers = map[string]string{"X-Forwarded-For": "oid"} }, "headers"},
		{"the reserved header X-Forwarded-Host in headers", func(c *Config) { c.Headers = map[string]string{"X-Forwarded-Host": "oid"} }, "headers"},
		{"the reserved header X-Forwarded-Proto in headers", func(c *Config) { c.Headers = map[string]string{"X-Forwarded-Proto": "oid"} }, "headers"},
		{"the reserved header X-Forwarded-Port in headers", func(c *Config) { c.Headers = map[string]string{"X-Forwarded-Port": "oid"} }, "headers"},
		{"the reserved header X-Forwarded-Server in headers", func(c *Config) { c.Headers = map[string]string{"X-Forwarded-Server": "oid"} }, "headers"},
		{"the reserved header X-Forwarded-Prefix in headers", func(c *Config) { c.Headers = map[string]string{"X-Forwarded-Prefix": "oid"} }, "headers"},
		{"the reserved header X-Real-Ip in headers", func(c *Config) { c.Headers = map[string]string{"X-Real-Ip": "oid"} }, "headers"},
		{"the reserved header X-Real-IP in headers", func(c *Config) { c.Headers = map[string]string{"X-Real-IP": "oid"} }, "headers"},
		{"the reserved header Connection in headers", func(c *Config) { c.Headers = map[string]string{"Connection": "oid"} }, "headers"},
		{"the reserved header Keep-Alive in headers", func(c *Config) { c.Headers = map[string]string{"Keep-Alive": "oid"} }, "headers"},
		{"the reserved header Transfer-Encoding in headers", func(c *Config) { c.Headers = map[string]string{"Transfer-Encoding": "oid"} }, "headers"},
		{"the reserved header Content-Length in headers", func(c *Config) { c.Headers = map[string]string{"Content-Length": "oid"} }, "headers"},
		{"the reserved header Te in headers", func(c *Config) { c.Headers = map[string]string{"Te": "oid"} }, "headers"},
		{"the reserved header Trailer in headers", func(c *Config) { c.Headers = map[string]string{"Trailer": "oid"} }, "headers"},
		{"the reserved header Upgrade in headers", func(c *Config) { c.Headers = map[string]string{"Upgrade": "oid"} }, "headers"},
		{"the reserved header Proxy-Authorization in headers", func(c *Config) { c.Headers = map[string]string{"Proxy-Authorization": "oid"} }, "headers"},
		{"the reserved header Proxy-Connection in headers", func(c *Config) { c.Headers = map[string]string{"Proxy-Connection": "oid"} }, "headers"},
		{"a prompt Entra ID would not show", func(c *Config) { c.MicrosoftEntraID.Prompt = "none" }, "microsoftEntraID.prompt"},
		{"a domain hint that is no domain", func(c *Config) { c.MicrosoftEntraID.DomainHint = "contoso com" }, "microsoftEntraID.domainHint"},
		{"a max lifetime that is no duration", func(c *Config) { c.Session.MaxLifetime = "a week" }, "session.maxLifetime"},
		{"a max lifetime beyond Entra ID's 90 days", func(c *Config) { c.Session.MaxLifetime = "2200h" }, "session.maxLifetime"},
		{"a max lifetime shorter than the lifetime", func(c *Config) { c.Session.MaxLifetime = "30m" }, "session.maxLifetime"},
		{"an upstream scope of OpenID", func(c *Config) { c.UpstreamAccessToken.Scope = "openid" }, "upstreamAccessToken.scope"},
		{"an upstream scope of two APIs", func(c *Config) { c.UpstreamAccessToken.Scope = "api://a/Read api://b/Read" }, "upstreamAccessToken.scope"},
		{"an upstream scope with a trailing slash", func(c *Config) { c.UpstreamAccessToken.Scope = "api://a/" }, "upstreamAccessToken.scope"},
		{"an upstream header without a scope", func(c *Config) { c.UpstreamAccessToken.Header = "X-Token" }, "upstreamAccessToken.scope"},
		{"an upstream token in the Cookie header", func(c *Config) {
			c.UpstreamAccessToken = UpstreamAccessToken{Scope: "api://a/.default", Header: "Cookie"}
		}, "upstreamAccessToken.header"},
		{"an upstream token in an identity header", func(c *Config) {
			c.UpstreamAccessToken = UpstreamAccessToken{Scope: "api://a/.default", Header: "X-Forwarded-User"}
		}, "upstreamAccessToken.header"},
		{"an upstream token without renewal", func(c *Config) {
			c.UpstreamAccessToken.Scope = "api://a/.default"
			c.Session.Renew = false
		}, "upstreamAccessToken"},
		{"scopes without openid", func(c *Config) { c.MicrosoftEntraID.Scopes = []string{"profile email"} }, "microsoftEntraID.scopes"},
		{"a missing session secret", func(c *Config) { c.Session.Secret = "" }, "session.secret"},
		{"a short session secret", func(c *Config) { c.Session.Secret = "short" }, "session.secret"},
		{"both secret and secretFile", func(c *Config) { c.Session.SecretFile = empty }, "session"},
		{"a short previous secret", func(c *Config) { c.Session.PreviousSecrets = []string{"short"} }, "session.previousSecrets"},
		{"a lifetime that is no duration", func(c *Config) { c.Session.Lifetime = "two hours" }, "session.lifetime"},
		{"a lifetime too short", func(c *Config) { c.Session.Lifetime = "5s" }, "session.lifetime"},
		{"a lifetime too long", func(c *Config) { c.Session.Lifetime = "9000h" }, "session.lifetime"},
		{"a cookie name with a space", func(c *Config) { c.Session.CookieName = "my cookie" }, "session.cookieName"},
		{"a __Host- cookie name with a cookie domain, which browsers refuse", func(c *Config) {
			c.Session.CookieName = "__Host-app"
			c.Session.CookieDomain = "example.com"
		}, "session.cookieName"},
		{"a __Host- cookie name on plain HTTP", func(c *Config) {
			c.Session.CookieName = "__Host-app"
			c.Session.InsecureCookies = true
		}, "session.cookieName"},
		{"a __Secure- cookie name on plain HTTP", func(c *Config) {
			c.Session.CookieName = "__Secure-app"
			c.Session.InsecureCookies = true
		}, "session.cookieName"},
		{"a cookie domain with a scheme", func(c *Config) { c.Session.CookieDomain = "https://example.com" }, "session.cookieDomain"},
		{"a request timeout without a unit", func(c *Config) { c.MicrosoftEntraID.RequestTimeout = "10" }, "microsoftEntraID.requestTimeout"},
		{"a request timeout too short", func(c *Config) { c.MicrosoftEntraID.RequestTimeout = "500ms" }, "microsoftEntraID.requestTimeout"},
		{"a request timeout too long", func(c *Config) { c.MicrosoftEntraID.RequestTimeout = "5m" }, "microsoftEntraID.requestTimeout"},
		{"an auth host without a cookie domain", func(c *Config) { c.AuthHost = "auth.example.com" }, "session.cookieDomain"},
		{"an auth host with a scheme", func(c *Config) {
			c.AuthHost = "https://auth.example.com"
			c.Session.CookieDomain = "example.com"
		}, "authHost"},
		{"an auth host outside the cookie domain", func(c *Config) {
			c.AuthHost = "auth.other.com"
			c.Session.CookieDomain = "example.com"
		}, "authHost"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(c)
			_, err := New(context.Background(), http.NotFoundHandler(), c, "test")
			if err == nil {
				t.Fatal("New accepted the configuration")
			}
			if !strings.HasPrefix(err.Error(), "entraauth: "+tt.option+": ") {
				t.Fatalf("error %q does not name the option %s", err, tt.option)
			}
			if strings.Contains(err.Error(), "client-secret-value") {
				t.Fatalf("error %q reveals the client secret", err)
			}
		})
	}
}

func TestValidateAcceptsLabelStyleValues(t *testing.T) {
	// Traefik hands label values over as strings; lists arrive as one
	// comma-separated string, which Traefik splits on commas only.
	c := validConfig()
	c.MicrosoftEntraID.Scopes = []string{"openid profile", "email"}
	c.Session.PreviousSecrets = []string{testSecret + "-old,", testSecret + "-older"}
	c.MicrosoftEntraID.TenantID = " contoso.onmicrosoft.com "
	c.Session.CookieDomain = ".Example.com"
	c.AuthHost = "Auth.Example.com:8443"
	s, err := validate(c, noEnv)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if got := strings.Join(s.entra.Scopes, " "); got != "openid profile email offline_access" {
		t.Errorf("scopes = %q", got)
	}
	if s.entra.Tenant != "contoso.onmicrosoft.com" {
		t.Errorf("tenant = %q", s.entra.Tenant)
	}
	if s.cookieDomain != "example.com" || s.authHost != "auth.example.com:8443" {
		t.Errorf("cookieDomain, authHost = %q, %q", s.cookieDomain, s.authHost)
	}
	if s.cookieName != "entraauth_main" || s.lifetime != time.Hour || s.maxLifetime != 24*time.Hour || !s.renew {
		t.Errorf("defaults: cookie %q, lifetime %v, maxLifetime %v, renew %v", s.cookieName, s.lifetime, s.maxLifetime, s.renew)
	}
}

func TestValidateAcceptsRenewalAndUpstreamOptions(t *testing.T) {
	c := validConfig()
	c.Session.Lifetime = "30m"
	c.Session.MaxLifetime = "168h"
	c.MicrosoftEntraID.Prompt = "Select_Account"
	c.MicrosoftEntraID.DomainHint = "Contoso.com"
	c.UpstreamAccessToken = UpstreamAccessToken{Scope: "api://orders/Orders.Read api://orders/Orders.Write", Header: "x-access-token"}
	s, err := validate(c, noEnv)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if s.lifetime != 30*time.Minute || s.maxLifetime != 168*time.Hour || s.prompt != "select_account" || s.domainHint != "contoso.com" {
		t.Errorf("lifetime %v, maxLifetime %v, prompt %q, domainHint %q", s.lifetime, s.maxLifetime, s.prompt, s.domainHint)
	}
	if s.upstream == nil || s.upstream.scope != "api://orders/Orders.Read api://orders/Orders.Write" || s.upstream.header != "X-Access-Token" || s.upstream.bearer {
		t.Errorf("upstream %+v", s.upstream)
	}
	// A long lifetime alone stretches the unset maxLifetime with it.
	c = validConfig()
	c.Session.Lifetime = "72h"
	if s, err = validate(c, noEnv); err != nil || s.maxLifetime != 72*time.Hour {
		t.Fatalf("lifetime 72h alone: maxLifetime %v, %v", s.maxLifetime, err)
	}
	// Graph, by its short name or its URL, and a client ID's .default.
	for _, scope := range []string{"User.Read", "https://graph.microsoft.com/User.Read Mail.Read", "0f8e5a7c-1d2b-4c3d-9e8f-123456789abc/.default"} {
		c = validConfig()
		c.UpstreamAccessToken.Scope = scope
		if s, err = validate(c, noEnv); err != nil || !s.upstream.bearer || s.upstream.header != "Authorization" {
			t.Errorf("scope %q: %v, %+v", scope, err, s)
		}
	}
}

func TestSignInHintsReachTheAuthorizationRequest(t *testing.T) {
	st := newStack(t, func(c *Config) {
		c.MicrosoftEntraID.Prompt = "select_account"
		c.MicrosoftEntraID.DomainHint = "contoso.com"
	})
	resp, _ := navigate(t, noRedirects(st.browser()), st.server.URL+"/")
	q := func() url.Values { u, _ := url.Parse(resp.Header.Get("Location")); return u.Query() }()
	if q.Get("prompt") != "select_account" || q.Get("domain_hint") != "contoso.com" {
		t.Errorf("authorize query %v, want prompt and domain_hint", q)
	}
	if !strings.Contains(q.Get("scope"), "offline_access") {
		t.Errorf("scope %q lacks offline_access: renewal is on by default", q.Get("scope"))
	}
}

func TestRequestTimeoutBoundsTheEntraClientAndKeysTheSharedOne(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 10 * time.Second},
		{"10s", 10 * time.Second},
		{" 1s ", time.Second},
		{"1m30s", 90 * time.Second},
		{"2m", 2 * time.Minute},
	}
	keys := map[string]string{}
	for _, tt := range tests {
		c := validConfig()
		c.MicrosoftEntraID.RequestTimeout = tt.value
		s, err := validate(c, noEnv)
		if err != nil {
			t.Fatalf("requestTimeout %q: %v", tt.value, err)
		}
		if s.requestTimeout != tt.want || s.entra.HTTPClient == nil || s.entra.HTTPClient.Timeout != tt.want {
			t.Errorf("requestTimeout %q: got %v and an Entra ID client %+v, want %v for both", tt.value, s.requestTimeout, s.entra.HTTPClient, tt.want)
		}
		// Clients are shared by configuration: another timeout is another client.
		if other, ok := keys[s.clientKey]; ok && other != tt.want.String() {
			t.Errorf("requestTimeout %q shares its Entra ID client with %s", tt.value, other)
		}
		keys[s.clientKey] = tt.want.String()
	}
}

func TestValidateReadsSecretsFromFiles(t *testing.T) {
	// Files as kubectl create secret and editors write them: with a
	// trailing newline, which is not part of the secret.
	dir := t.TempDir()
	clientSecret := filepath.Join(dir, "client")
	sessionSecret := filepath.Join(dir, "session")
	writeSecret(t, clientSecret, "from-file\n")
	writeSecret(t, sessionSecret, testSecret+"\r\n")
	c := validConfig()
	c.MicrosoftEntraID.ClientSecret = ""
	c.MicrosoftEntraID.ClientSecretFile = clientSecret
	c.Session.Secret = ""
	c.Session.SecretFile = sessionSecret
	s, err := validate(c, noEnv)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if got := clientSecretOf(t, s.entra.Credential); got != "from-file" {
		t.Errorf("client secret %q, want %q", got, "from-file")
	}
	// The session secret is the file's without the newline: sessions
	// sealed by an instance configured with it inline open here.
	inline, err := validate(validConfig(), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if s.sessionKey != inline.sessionKey {
		t.Errorf("the session secret from the file differs from the same secret inline")
	}
	v, err := inline.sealer.Seal([]byte("payload"), "aad", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.sealer.Open(v, "aad", time.Now()); err != nil {
		t.Errorf("a value sealed with the inline secret does not open with the file's: %v", err)
	}
}

// TestClientSecretFileIsReadOnEveryUse: the secret sent to the token
// endpoint is the file's current content without its trailing newline, so
// that a rotated Kubernetes secret (a new file swapped in) takes effect
// without a reload.
func TestClientSecretFileIsReadOnEveryUse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "client-secret")
	writeSecret(t, path, "first-secret\n")
	c := validConfig()
	c.MicrosoftEntraID.ClientSecret = ""
	c.MicrosoftEntraID.ClientSecretFile = path
	s, err := validate(c, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"a trailing newline is not part of the secret", "first-secret\n", "first-secret"},
		{"a rotated file is read again", "second-secret\n", "second-secret"},
		{"CR LF and surrounding blanks are trimmed", "  third-secret \r\n", "third-secret"},
	}
	for _, tt := range tests {
		// Swapped in by rename, as the kubelet updates a mounted secret.
		tmp := filepath.Join(dir, "new")
		writeSecret(t, tmp, tt.content)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		if got := clientSecretOf(t, s.entra.Credential); got != tt.want {
			t.Errorf("%s: client_secret %q, want %q", tt.name, got, tt.want)
		}
	}
	os.Remove(path)
	form := url.Values{}
	if err := s.entra.Credential.SetClientAuth(context.Background(), form); err == nil || form.Get("client_secret") != "" {
		t.Errorf("a removed file gave client_secret %q, error %v", form.Get("client_secret"), err)
	}
}

func writeSecret(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientSecretOf is the client_secret cred puts in a token request.
func clientSecretOf(t *testing.T, cred entraid.Credential) string {
	t.Helper()
	form := url.Values{}
	if err := cred.SetClientAuth(context.Background(), form); err != nil {
		t.Fatalf("SetClientAuth: %v", err)
	}
	return form.Get("client_secret")
}

func TestNewSharesTheEntraClientAcrossReloads(t *testing.T) {
	// Traefik calls New on every reload: the tenant's metadata and keys
	// must not be fetched again each time.
	a, err := New(context.Background(), http.NotFoundHandler(), validConfig(), "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(context.Background(), http.NotFoundHandler(), validConfig(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if a.(*Middleware).client != b.(*Middleware).client {
		t.Fatal("two identical configurations got different Entra ID clients")
	}
	other := validConfig()
	other.MicrosoftEntraID.ClientSecret = "another-secret"
	c, err := New(context.Background(), http.NotFoundHandler(), other, "c")
	if err != nil {
		t.Fatal(err)
	}
	if c.(*Middleware).client == a.(*Middleware).client {
		t.Fatal("a different client secret shared the Entra ID client")
	}
}

// rawValidConfig is validConfig as Traefik's file provider hands it to the
// plugin loader: nested maps, before decoding.
func rawValidConfig() map[string]interface{} {
	return map[string]interface{}{
		"microsoftEntraID": map[string]interface{}{
			"tenantID":     testTenantID,
			"clientID":     testClientID,
			"clientSecret": "client-secret-value",
		},
		"session": map[string]interface{}{"secret": testSecret},
	}
}

// Traefik drops options that match no field (mapstructure), so a misspelt
// rule would leave the router open to the whole tenant: New must refuse
// every unknown option by its full path, with the nearest known name.
func TestNewRefusesMisspeltOptionsWithTheNearestName(t *testing.T) {
	tests := []struct {
		name   string
		change func(raw map[string]interface{})
		want   string
	}{
		{"a misspelt rule", func(raw map[string]interface{}) { raw["allowedGroup"] = []interface{}{alice.Groups[0]} },
			"unknown option allowedGroup: did you mean allowedGroups?"},
		{"a misspelt rule in another case", func(raw map[string]interface{}) { raw["ALLOWEDROLE"] = "Admin" },
			"unknown option ALLOWEDROLE: did you mean allowedRoles?"},
		{"a misspelt session option", func(raw map[string]interface{}) {
			raw["session"].(map[string]interface{})["lifetme"] = "1h"
		}, "unknown option session.lifetme: did you mean session.lifetime?"},
		{"a misspelt Entra ID option", func(raw map[string]interface{}) {
			raw["microsoftEntraID"].(map[string]interface{})["allowedTenant"] = testTenantID
		}, "unknown option microsoftEntraID.allowedTenant: did you mean microsoftEntraID.allowedTenants?"},
		{"a misspelt upstream token option", func(raw map[string]interface{}) {
			raw["upstreamAccessToken"] = map[string]interface{}{"scopes": "api://x/.default"}
		}, "unknown option upstreamAccessToken.scopes: did you mean upstreamAccessToken.scope?"},
		{"an option of another block", func(raw map[string]interface{}) { raw["cookieDomain"] = "example.com" },
			"unknown option cookieDomain: did you mean session.cookieDomain?"},
		{"a misspelt block", func(raw map[string]interface{}) { raw["sesion"] = map[string]interface{}{"renew": "false"} },
			"unknown option sesion: did you mean session?"},
		{"an option like none", func(raw map[string]interface{}) { raw["colour"] = "blue" },
			"unknown option colour: not an option of this plugin"},
		{"two misspelt options", func(raw map[string]interface{}) {
			raw["excludePaths"] = "/health"
			raw["session"].(map[string]interface{})["lifeTim"] = "1h"
		}, "unknown option excludePaths: did you mean excludedPaths?; unknown option session.lifeTim: did you mean session.lifetime?"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			raw := rawValidConfig()
			tt.change(raw)
			c := CreateConfig()
			if err := decodeLikeTraefik(raw, c); err != nil {
				t.Fatal(err)
			}
			_, err := New(context.Background(), http.NotFoundHandler(), c, "test")
			if err == nil {
				t.Fatalf("New accepted the configuration, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// Options that Traefik matches to a field are no unknown options: any
// case, and the headers map, whose keys are header names.
func TestNewAcceptsKnownOptionsInAnyCaseAndAnyHeaderName(t *testing.T) {
	raw := rawValidConfig()
	raw["ALLOWEDGROUPS"] = []interface{}{alice.Groups[0]}
	raw["Session"] = raw["session"]
	delete(raw, "session")
	raw["Session"].(map[string]interface{})["LIFETIME"] = "30m"
	raw["headers"] = map[string]interface{}{"X-Allowed-Group": "groups", "X-Lifetme": "oid"}
	c := CreateConfig()
	if err := decodeLikeTraefik(raw, c); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), http.NotFoundHandler(), c, "test"); err != nil {
		t.Fatalf("New: %v", err)
	}
	if len(c.AllowedGroups) != 1 || c.Session.Lifetime != "30m" || len(c.Headers) != 2 {
		t.Fatalf("decoded %+v", c)
	}
}

func TestClientCertificateFileIsCheckedAtLoad(t *testing.T) {
	now := time.Now()
	year := now.Add(365 * 24 * time.Hour)
	certPEM, good := entraidtest.NewCertificate("good", now.Add(-time.Hour), year)
	_, other := entraidtest.NewCertificate("other", now.Add(-time.Hour), year)
	_, expired := entraidtest.NewCertificate("expired", now.Add(-48*time.Hour), now.Add(-time.Hour))
	_, soon := entraidtest.NewCertificate("soon", now.Add(-time.Hour), now.Add(10*24*time.Hour))
	otherKey := other[:strings.Index(string(other), "-----BEGIN CERTIFICATE-----")]
	dir := t.TempDir()
	file := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		writeSecret(t, path, string(data))
		return path
	}
	tests := []struct {
		name   string
		change func(c *Config)
		option string
		want   string // in the error; "" means accepted
	}{
		{"a certificate with its key", func(c *Config) { c.MicrosoftEntraID.ClientCertificateFile = file("good.pem", good) }, "", ""},
		{"a missing file", func(c *Config) { c.MicrosoftEntraID.ClientCertificateFile = filepath.Join(dir, "nope.pem") }, "microsoftEntraID.clientCertificateFile", "cannot read"},
		{"a certificate without its key", func(c *Config) { c.MicrosoftEntraID.ClientCertificateFile = file("cert.pem", certPEM) }, "microsoftEntraID.clientCertificateFile", "no private key"},
		{"a key that is not the certificate's", func(c *Config) {
			c.MicrosoftEntraID.ClientCertificateFile = file("mixed.pem", append(append([]byte{}, certPEM...), otherKey...))
		}, "microsoftEntraID.clientCertificateFile", "does not match the certificate"},
		{"an expired certificate", func(c *Config) { c.MicrosoftEntraID.ClientCertificateFile = file("expired.pem", expired) }, "microsoftEntraID.clientCertificateFile", "expired on"},
		{"a certificate beside a secret", func(c *Config) {
			c.MicrosoftEntraID.ClientSecret = "client-secret-value"
			c.MicrosoftEntraID.ClientCertificateFile = file("good2.pem", good)
		}, "microsoftEntraID", "exactly one of clientSecret, clientSecretFile, clientAssertion or clientCertificateFile (found 2)"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.MicrosoftEntraID.ClientSecret = ""
			tt.change(c)
			s, err := validate(c, noEnv)
			if tt.want == "" {
				if err != nil || len(s.warnings) != 0 {
					t.Fatalf("err %v, warnings %q", err, s.warnings)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), "entraauth: "+tt.option+": ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %s with %q", err, tt.option, tt.want)
			}
		})
	}

	c := validConfig()
	c.MicrosoftEntraID.ClientSecret = ""
	c.MicrosoftEntraID.ClientCertificateFile = file("soon.pem", soon)
	s, err := validate(c, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.warnings) != 1 || !strings.Contains(s.warnings[0], "microsoftEntraID.clientCertificateFile") || !strings.Contains(s.warnings[0], "in 9 days") {
		t.Errorf("warnings %q, want one that the certificate expires in 9 days", s.warnings)
	}
}

// TestSignInWithACertificateAndItsRenewal signs in with no secret
// configured, only the certificate file, then renews the certificate the
// way an operator does (upload the new one, replace the file, remove the
// old one) and signs in again without a reload.
func TestSignInWithACertificateAndItsRenewal(t *testing.T) {
	now := time.Now()
	firstPEM, first := entraidtest.NewCertificate("first", now.Add(-time.Hour), now.Add(90*24*time.Hour))
	secondPEM, second := entraidtest.NewCertificate("second", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	path := filepath.Join(t.TempDir(), "cert.pem")
	writeSecret(t, path, string(first))
	st := newStack(t, func(c *Config) {
		c.MicrosoftEntraID.ClientSecret = ""
		c.MicrosoftEntraID.ClientCertificateFile = path
	})
	oldThumb, err := st.tenant.UploadCertificate(st.tenant.ClientID, firstPEM)
	if err != nil {
		t.Fatal(err)
	}
	st.signIn(st.browser())
	if _, err := st.tenant.UploadCertificate(st.tenant.ClientID, secondPEM); err != nil {
		t.Fatal(err)
	}
	writeSecret(t, path+".new", string(second))
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	st.tenant.RemoveCertificate(st.tenant.ClientID, oldThumb)
	st.signIn(st.browser())

	// A certificate Entra ID does not know: a clear page with AADSTS700027.
	_, unknown := entraidtest.NewCertificate("unknown", now.Add(-time.Hour), now.Add(time.Hour))
	writeSecret(t, path, string(unknown))
	resp, body := navigate(t, st.browser(), st.server.URL+"/start")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "AADSTS700027") || !strings.Contains(body, "clientCertificateFile") {
		t.Errorf("an unknown certificate: %d %.400s", resp.StatusCode, body)
	}
}
