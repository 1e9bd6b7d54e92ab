package entraauth

import (
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/tfa-plugin/entraauth/entraid"
)

// Fuzz targets of the root package: return URLs and configuration values.
// yaegi test ignores Fuzz functions; the Seeds tests run the seeds and the
// properties there too.

func returnURLSeeds() []string {
	return []string{
		"/", "/reports?year=2026#top", "https://app.example.com/page?x=1", "https://APP.example.com/",
		"https://app2.example.com:8443/x", "https://example.com/", "http://app.example.com/",
		"//evil.com", "///evil.com", `/\evil.com`, `\\evil.com`, "/%2F%2Fevil.com", "/%5cevil.com",
		"https://evil.com/", "https://app.example.com.evil.com/", "https://app.example.com@evil.com/",
		"https://evil.com#@app.example.com", "https://evil.com?@app.example.com", "https:evil.com", "https:/evil.com",
		"https:///evil.com", "HTTPS://evil.com", "javascript:alert(1)", "data:text/html,x", " //evil.com",
		"/\t/evil.com", "/\r\n/evil.com", "https://app.example.com//evil.com", "https://example.com.evil.com/",
		"https://evilexample.com/", "https://%61pp.example.com/", "https://app.example.com%2F@evil.com/",
		"https://[::1]/", "https://app.example.com:/", "https://app.example.com:0x1/", "https://.example.com/",
		"https://a..example.com/", "https://app.example.com./", "/\u3002evil.com", "\ufeff//evil.com",
		"https://app.example.com\x00.evil.com/", "https://xn--80ak6aa92e.example.com/",
	}
}

// checkReturnURL is the property of safeReturnURL: whatever it allows is
// returned unchanged and is either a path of this origin or an http(s) URL
// whose host is the request's or, in auth-host mode, one under the cookie
// domain, spelt so that no browser could read another host in it: no
// white space, control or non-ASCII characters, no backslashes (browsers
// take them for slashes), no user info, nothing percent-encoded in the
// host.
func checkReturnURL(t *testing.T, raw string, authHostMode bool) {
	m := &Middleware{}
	if authHostMode {
		m = &Middleware{authHost: "auth.example.com", cookieDomain: "example.com"}
	}
	r := httptest.NewRequest("GET", "https://app.example.com/", nil)
	got, ok := m.safeReturnURL(raw, r)
	if !ok {
		if got != "" {
			t.Fatalf("safeReturnURL(%q) refused it but returned %q", raw, got)
		}
		return
	}
	if got != raw {
		t.Fatalf("safeReturnURL(%q) = %q, want it unchanged", raw, got)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			t.Fatalf("safeReturnURL allowed %q, which holds %q", raw, c)
		}
	}
	if raw[0] == '/' {
		if len(raw) > 1 && raw[1] == '/' {
			t.Fatalf("safeReturnURL allowed %q, a URL of another host", raw)
		}
		return
	}
	rest := ""
	switch {
	case strings.HasPrefix(raw, "https://"):
		rest = raw[len("https://"):]
	case strings.HasPrefix(raw, "http://"):
		rest = raw[len("http://"):]
	default:
		t.Fatalf("safeReturnURL allowed %q, neither a path nor an http(s) URL", raw)
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if strings.EqualFold(authority, r.Host) {
		return
	}
	if !authHostMode {
		t.Fatalf("safeReturnURL allowed %q, whose host %q is not the request's", raw, authority)
	}
	host := authority
	if i := strings.LastIndexByte(authority, ':'); i >= 0 {
		host = authority[:i]
		// An empty port is the default one, as browsers read it.
		if port := authority[i+1:]; strings.Trim(port, "0123456789") != "" {
			t.Fatalf("safeReturnURL allowed %q, whose port %q is not a number", raw, port)
		}
	}
	host = strings.ToLower(host)
	if strings.Trim(host, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" || strings.Contains(host, "..") ||
		!(host == "example.com" || strings.HasSuffix(host, ".example.com") && !strings.HasPrefix(host, ".")) {
		t.Fatalf("safeReturnURL allowed %q, whose host %q is not under the cookie domain", raw, host)
	}
}

func TestSafeReturnURLSeeds(t *testing.T) {
	for _, raw := range returnURLSeeds() {
		checkReturnURL(t, raw, false)
		checkReturnURL(t, raw, true)
	}
}

func FuzzSafeReturnURL(f *testing.F) {
	for _, raw := range returnURLSeeds() {
		f.Add(raw, false)
		f.Add(raw, true)
	}
	f.Fuzz(func(t *testing.T, raw string, authHostMode bool) {
		checkReturnURL(t, raw, authHostMode)
	})
}

// plainPathSeeds are request targets that leave, or try to leave, an
// excluded prefix.
func plainPathSeeds() []string {
	return []string{
		"/public/x", "/public/", "/public/..;/admin", "/public/..;jsessionid=x/admin", "/public/%2e%2e;/admin",
		"/public/..%3b/admin", "/public/%252e%252e/admin", "/public/%252e%252e%252fadmin", "/public/a%2Fb",
		"/public/%c0%ae%c0%ae/admin", "/public/..%5Cadmin", "/public/%2E%2E/admin", "/public/.%2e/admin",
	}
}

// checkPlainPath is the property of plainPath: a path it calls plain has
// no "." or ".." segment, no ';' or '\\' and no encoded slash, and reads
// the same after a second decoding, so that no server (one that drops
// ";..." parameters, reads '\\' as '/', or decodes twice) reads it as
// leaving the folder it names.
func checkPlainPath(t *testing.T, target string) {
	u, err := url.ParseRequestURI(target)
	if err != nil || !plainPath(u) {
		return
	}
	if again, err := url.PathUnescape(u.Path); err != nil || again != u.Path {
		t.Fatalf("plainPath(%q): plain, but decodes again to %q", target, again)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." || strings.ContainsAny(seg, ";\\") {
			t.Fatalf("plainPath(%q): plain, but has the segment %q", target, seg)
		}
	}
	if strings.Contains(strings.ToLower(u.EscapedPath()), "%2f") {
		t.Fatalf("plainPath(%q): plain, but holds an encoded slash", target)
	}
}

func TestPlainPathSeeds(t *testing.T) {
	for _, target := range plainPathSeeds() {
		checkPlainPath(t, target)
	}
}

func FuzzPlainPath(f *testing.F) {
	for _, target := range plainPathSeeds() {
		f.Add(target)
	}
	f.Fuzz(func(t *testing.T, target string) {
		checkPlainPath(t, target)
	})
}

// labelConfig is a configuration as Docker or Kubernetes labels give it:
// every value a string, lists as one comma-separated string.
type labelConfig struct {
	portal, tenantID, clientID, clientSecret, clientAssertion, authorityHost, scopes, allowedTenants string
	secret, previousSecrets, lifetime, cookieName, cookieDomain, authHost                            string
	allowedUsers, allowedGroups, allowedRoles, allowedEmailDomains                                   string
	headerName, headerClaim, excludedPaths, excludedMethods, apiAudience, requiredScopes             string
	insecureCookies, apiAcceptV1Tokens                                                               bool
}

func (l labelConfig) config() *Config {
	list := func(s string) []string {
		if s == "" {
			return nil
		}
		return []string{s}
	}
	c := CreateConfig()
	c.Portal = l.portal
	c.MicrosoftEntraID.TenantID = l.tenantID
	c.MicrosoftEntraID.ClientID = l.clientID
	c.MicrosoftEntraID.ClientSecret = l.clientSecret
	c.MicrosoftEntraID.ClientAssertion = l.clientAssertion
	c.MicrosoftEntraID.AuthorityHost = l.authorityHost
	c.MicrosoftEntraID.Scopes = list(l.scopes)
	c.MicrosoftEntraID.AllowedTenants = list(l.allowedTenants)
	c.Session.Secret = l.secret
	c.Session.PreviousSecrets = list(l.previousSecrets)
	c.Session.Lifetime = l.lifetime
	c.Session.CookieName = l.cookieName
	c.Session.CookieDomain = l.cookieDomain
	c.Session.InsecureCookies = l.insecureCookies
	c.AuthHost = l.authHost
	c.AllowedUsers = list(l.allowedUsers)
	c.AllowedGroups = list(l.allowedGroups)
	c.AllowedRoles = list(l.allowedRoles)
	c.AllowedEmailDomains = list(l.allowedEmailDomains)
	if l.headerName != "" || l.headerClaim != "" {
		c.Headers = map[string]string{l.headerName: l.headerClaim}
	}
	c.ExcludedPaths = list(l.excludedPaths)
	c.ExcludedMethods = list(l.excludedMethods)
	c.APIAudience = list(l.apiAudience)
	c.RequiredScopes = list(l.requiredScopes)
	c.APIAcceptV1Tokens = l.apiAcceptV1Tokens
	return c
}

func (l labelConfig) strings() []string {
	return []string{l.portal, l.tenantID, l.clientID, l.clientSecret, l.clientAssertion, l.authorityHost, l.scopes, l.allowedTenants,
		l.secret, l.previousSecrets, l.lifetime, l.cookieName, l.cookieDomain, l.authHost,
		l.allowedUsers, l.allowedGroups, l.allowedRoles, l.allowedEmailDomains,
		l.headerName, l.headerClaim, l.excludedPaths, l.excludedMethods, l.apiAudience, l.requiredScopes}
}

func labelFromStrings(s []string, insecure, v1 bool) labelConfig {
	return labelConfig{
		portal: s[0], tenantID: s[1], clientID: s[2], clientSecret: s[3], clientAssertion: s[4], authorityHost: s[5], scopes: s[6], allowedTenants: s[7],
		secret: s[8], previousSecrets: s[9], lifetime: s[10], cookieName: s[11], cookieDomain: s[12], authHost: s[13],
		allowedUsers: s[14], allowedGroups: s[15], allowedRoles: s[16], allowedEmailDomains: s[17],
		headerName: s[18], headerClaim: s[19], excludedPaths: s[20], excludedMethods: s[21], apiAudience: s[22], requiredScopes: s[23],
		insecureCookies: insecure, apiAcceptV1Tokens: v1,
	}
}

func configSeeds() []labelConfig {
	good := labelConfig{
		portal: "main", tenantID: testTenantID, clientID: testClientID, clientSecret: "client-secret-value",
		authorityHost: "https://login.microsoftonline.com", scopes: "openid profile email", secret: testSecret, lifetime: "2h",
	}
	labels := good
	labels.tenantID = "organizations"
	labels.allowedTenants = testTenantID + "," + otherGUID
	labels.previousSecrets = testSecret + "-old," + testSecret + "-older"
	labels.cookieDomain = ".Example.com"
	labels.authHost = "Auth.Example.com:8443"
	labels.allowedUsers = "alice@contoso.example,bob@contoso.example"
	labels.allowedGroups = "a1b2c3d4-0000-4000-8000-000000000001, a1b2c3d4-0000-4000-8000-000000000002"
	labels.allowedRoles = "Reader,Writer"
	labels.allowedEmailDomains = "@contoso.example,fabrikam.example"
	labels.headerName = "X-User"
	labels.headerClaim = "oid"
	labels.excludedPaths = "/health,/public/*"
	labels.excludedMethods = "options,HEAD"
	labels.apiAudience = "api://app," + testClientID
	labels.requiredScopes = "Items.Read"
	labels.insecureCookies = true
	labels.apiAcceptV1Tokens = true

	seeds := []labelConfig{good, labels}
	odd := []struct {
		field int
		value string
	}{
		{0, "Main"}, {0, "a/b"}, {0, strings.Repeat("p", 64)}, {1, ""}, {1, "consumers"}, {1, "contoso.com"}, {1, "not a tenant"},
		{2, "my-app"}, {3, ""}, {4, "AzureManagedIdentity"}, {4, "tsiam=https://tsiam.example.ts.net"}, {4, "bogus"},
		{5, "http://login.microsoftonline.com"}, {5, "https://login.microsoftonline.com/tenant"}, {5, "http://127.0.0.1:1"}, {5, "https://[::1"},
		{6, "profile email"}, {6, "openid\roffline_access"}, {6, "openid profile\roffline_access"}, {6, "openid,\x00"}, {7, "contoso.com"},
		{8, "short"}, {8, ""}, {9, "short"}, {10, "two hours"}, {10, "5s"}, {10, "9000h"}, {10, "-1h"}, {10, "1e400h"},
		{11, "my cookie"}, {11, "é"}, {12, "https://example.com"}, {12, "."}, {13, "auth.example.com"}, {13, "https://auth.example.com"},
		{13, "auth.other.com"}, {13, "[::1]:80"}, {15, "Admins"}, {17, "https://contoso.com"}, {18, "X User"}, {19, "oid, email"},
		{18, "X-Forwarded-User"}, {19, ""}, {20, "health"}, {20, "/portals/main/*"}, {21, "GET /"}, {22, "\"<x>\""}, {23, "x"},
	}
	for _, o := range odd {
		s := good.strings()
		s[o.field] = o.value
		if o.field == 4 {
			s[3] = ""
		}
		if o.field == 13 && o.value == "auth.example.com" {
			s[12] = ""
		}
		seeds = append(seeds, labelFromStrings(s, false, false))
	}
	return seeds
}

// configOptions lists every option name, from Config's json tags: what an
// error must start with.
func configOptions() map[string]bool {
	out := map[string]bool{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("json"), ",")[0]
			if name == "" {
				continue
			}
			out[prefix+name] = true
			if f.Type.Kind() == reflect.Struct {
				walk(prefix+name+".", f.Type)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	return out
}

// checkConfig is the property of validate: it never panics; an error
// starts with "entraauth: <option>: " for a real option and never shows
// the client secret; a configuration it accepts is one the Entra ID client
// accepts too (else New would fail with a vaguer message).
func checkConfig(t *testing.T, options map[string]bool, l labelConfig) {
	s, err := validate(l.config(), noEnv)
	if err != nil {
		msg := err.Error()
		rest := strings.TrimPrefix(msg, "entraauth: ")
		option, _, found := strings.Cut(rest, ": ")
		if rest == msg || !found || !options[option] {
			t.Fatalf("error %q does not start with entraauth: <option>: ", msg)
		}
		if secret := l.clientSecret; len(secret) >= 8 && strings.Contains(msg, secret) {
			inOther := false
			for i, v := range l.strings() {
				if i != 3 && strings.Contains(v, secret) {
					inOther = true
				}
			}
			if !inOther {
				t.Fatalf("error %q shows the client secret", msg)
			}
		}
		return
	}
	if _, err := entraid.NewClient(s.entra); err != nil {
		t.Fatalf("validate accepted a configuration the Entra ID client refuses: %v", err)
	}
	if s.sealer == nil || s.lifetime < minLifetime || s.lifetime > maxLifetime || !isCookieName(s.cookieName) {
		t.Fatalf("validate accepted incomplete settings: %+v", s)
	}
}

func TestValidateSeeds(t *testing.T) {
	options := configOptions()
	if !options["microsoftEntraID.tenantID"] || !options["session.secret"] {
		t.Fatalf("option names from Config: %v", options)
	}
	for _, l := range configSeeds() {
		checkConfig(t, options, l)
	}
}

func FuzzValidate(f *testing.F) {
	options := configOptions()
	for _, l := range configSeeds() {
		s := l.strings()
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11], s[12], s[13],
			s[14], s[15], s[16], s[17], s[18], s[19], s[20], s[21], s[22], s[23], l.insecureCookies, l.apiAcceptV1Tokens)
	}
	f.Fuzz(func(t *testing.T, portal, tenantID, clientID, clientSecret, clientAssertion, authorityHost, scopes, allowedTenants,
		secret, previousSecrets, lifetime, cookieName, cookieDomain, authHost,
		allowedUsers, allowedGroups, allowedRoles, allowedEmailDomains,
		headerName, headerClaim, excludedPaths, excludedMethods, apiAudience, requiredScopes string, insecure, v1 bool) {
		checkConfig(t, options, labelFromStrings([]string{portal, tenantID, clientID, clientSecret, clientAssertion, authorityHost, scopes, allowedTenants,
			secret, previousSecrets, lifetime, cookieName, cookieDomain, authHost,
			allowedUsers, allowedGroups, allowedRoles, allowedEmailDomains,
			headerName, headerClaim, excludedPaths, excludedMethods, apiAudience, requiredScopes}, insecure, v1))
	})
}
