package entraauth

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	c := validConfig()
	// An unroutable authority host: New must not try to reach it.
	c.MicrosoftEntraID.AuthorityHost = "https://login.invalid"
	h, err := New(context.Background(), http.NotFoundHandler(), c, "test")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if h == nil {
		t.Fatal("New returned a nil handler")
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
		{"scopes without openid", func(c *Config) { c.MicrosoftEntraID.Scopes = []string{"profile email"} }, "microsoftEntraID.scopes"},
		{"a missing session secret", func(c *Config) { c.Session.Secret = "" }, "session.secret"},
		{"a short session secret", func(c *Config) { c.Session.Secret = "short" }, "session.secret"},
		{"both secret and secretFile", func(c *Config) { c.Session.SecretFile = empty }, "session"},
		{"a short previous secret", func(c *Config) { c.Session.PreviousSecrets = []string{"short"} }, "session.previousSecrets"},
		{"a lifetime that is no duration", func(c *Config) { c.Session.Lifetime = "two hours" }, "session.lifetime"},
		{"a lifetime too short", func(c *Config) { c.Session.Lifetime = "5s" }, "session.lifetime"},
		{"a lifetime too long", func(c *Config) { c.Session.Lifetime = "9000h" }, "session.lifetime"},
		{"a cookie name with a space", func(c *Config) { c.Session.CookieName = "my cookie" }, "session.cookieName"},
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
	if got := strings.Join(s.entra.Scopes, " "); got != "openid profile email" {
		t.Errorf("scopes = %q", got)
	}
	if s.entra.Tenant != "contoso.onmicrosoft.com" {
		t.Errorf("tenant = %q", s.entra.Tenant)
	}
	if s.cookieDomain != "example.com" || s.authHost != "auth.example.com:8443" {
		t.Errorf("cookieDomain, authHost = %q, %q", s.cookieDomain, s.authHost)
	}
	if s.cookieName != "entraauth_main" || s.lifetime.String() != "2h0m0s" {
		t.Errorf("defaults: cookie %q, lifetime %v", s.cookieName, s.lifetime)
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
	dir := t.TempDir()
	clientSecret := filepath.Join(dir, "client")
	sessionSecret := filepath.Join(dir, "session")
	os.WriteFile(clientSecret, []byte("from-file\n"), 0o600)
	os.WriteFile(sessionSecret, []byte(testSecret+"\n"), 0o600)
	c := validConfig()
	c.MicrosoftEntraID.ClientSecret = ""
	c.MicrosoftEntraID.ClientSecretFile = clientSecret
	c.Session.Secret = ""
	c.Session.SecretFile = sessionSecret
	if _, err := validate(c, noEnv); err != nil {
		t.Fatalf("validate: %v", err)
	}
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
