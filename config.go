package entraauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// settings is a validated Config.
type settings struct {
	portal          string
	entra           entraid.Config
	clientKey       string           // identifies entra for the shared client cache
	assertions      *assertion.Cache // with clientAssertion, to explain refusals
	sealer          *session.Sealer
	lifetime        time.Duration
	maxLifetime     time.Duration
	renew           bool
	prompt          string
	domainHint      string
	upstream        *upstreamToken
	cookieName      string      // as configured, or the default
	cookies         cookieNames // the names of the plugin's cookies
	cookieDomain    string
	insecureCookies bool
	authHost        string
	headers         []headerClaim
	rules           rules
	exclusions      exclusions
	api             *entraid.AccessPolicy
	requiredScopes  []string
	apiAppRoles     []string
	apiClients      map[string]bool
	// unauthenticated is redirect, 401 or allow.
	unauthenticated string
	appService      bool
	sessionKey      string        // cookie name and secret fingerprint
	requestTimeout  time.Duration // of every call to Entra ID, Graph and assertion sources

	// warnings are logged by New: the configuration works, for now.
	warnings []string
}

const (
	defaultLifetime    = "1h"
	defaultMaxLifetime = "24h"
	minLifetime        = time.Minute
	maxLifetime        = 30 * 24 * time.Hour
	// longestMaxLifetime is Entra ID's own limit: a web app's refresh token
	// lives 90 days.
	longestMaxLifetime = 90 * 24 * time.Hour

	defaultRequestTimeout = 10 * time.Second
	minRequestTimeout     = time.Second
	maxRequestTimeout     = 2 * time.Minute
)

// validate checks every option and says, for the first one that is wrong,
// which option it is and what to write instead.
func validate(c *Config, getenv func(string) string) (*settings, error) {
	if c == nil {
		c = CreateConfig()
	}
	s := &settings{}
	// First: a misspelt option explains the errors it would cause below
	// (a misspelt session block leaves no secret).
	if err := unknownOptions(c); err != nil {
		return nil, err
	}

	s.portal = strings.TrimSpace(c.Portal)
	if s.portal == "" {
		s.portal = "main"
	}
	if !isPortalName(s.portal) {
		return nil, optionError("portal", "%q may hold only lower-case letters, digits and '-' (at most 63), e.g. \"main\"", s.portal)
	}

	if err := validateEntra(c.MicrosoftEntraID, getenv, s); err != nil {
		return nil, err
	}
	if err := validateSession(c.Session, s); err != nil {
		return nil, err
	}

	s.authHost = strings.ToLower(strings.TrimSpace(c.AuthHost))
	if s.authHost != "" {
		if !isHostPort(s.authHost) {
			return nil, optionError("authHost", "%q is not a host name: write the auth host alone, e.g. auth.example.com (no scheme, no path)", c.AuthHost)
		}
		if s.cookieDomain == "" {
			return nil, optionError("session.cookieDomain", "is required with authHost: write the parent domain the applications share, e.g. example.com")
		}
		if !hostUnderDomain(hostOnly(s.authHost), s.cookieDomain) {
			return nil, optionError("authHost", "%q is not under session.cookieDomain %q: the session cookie set there would not reach the applications", c.AuthHost, s.cookieDomain)
		}
	}

	var err error
	if s.headers, err = parseHeaders(c.Headers); err != nil {
		return nil, err
	}
	if err := validateRules(c, s); err != nil {
		return nil, err
	}
	if err := validateExclusions(c, s); err != nil {
		return nil, err
	}
	if err := validateAPI(c, s); err != nil {
		return nil, err
	}
	if err := validateUpstreamToken(c.UpstreamAccessToken, s); err != nil {
		return nil, err
	}
	if err := validateUnauthenticated(c, s); err != nil {
		return nil, err
	}
	if err := validateAppService(c, s); err != nil {
		return nil, err
	}
	if s.renew && !contains(s.entra.Scopes, "offline_access") {
		// Entra ID hands out a refresh token only with offline_access.
		s.entra.Scopes = append(s.entra.Scopes, "offline_access")
		s.clientKey += "\noffline_access"
	}
	if len(s.rules.groups) > 0 && !containsFold(s.entra.Scopes, entraid.GraphScope) {
		// Users in more than 200 groups get none in the token: reading
		// them from Microsoft Graph needs this delegated permission.
		s.entra.Scopes = append(s.entra.Scopes, entraid.GraphScope)
		s.clientKey += "\n" + entraid.GraphScope
	}
	return s, nil
}

// validateAPI checks the bearer token options. Which aud a token carries
// depends on its version, which the API's app registration chooses: a v2.0
// token always names the API by its client ID; a v1.0 token (the default)
// by what the client asked for, the application ID URI or the client ID.
// A configuration that no token can match is refused.
func validateAPI(c *Config, s *settings) error {
	audiences := splitList(c.APIAudience)
	scopes := splitList(c.RequiredScopes)
	appRoles := splitList(c.APIAppRoles)
	clients := splitList(c.APIAllowedClients)
	if len(audiences) == 0 {
		if len(scopes) > 0 || len(appRoles) > 0 || len(clients) > 0 {
			return optionError("apiAudience", "is required with requiredScopes, apiAppRoles or apiAllowedClients: write the API's client ID (a GUID) and its application ID URI (api://...)")
		}
		return nil
	}
	for _, id := range clients {
		if !entraid.IsGUID(id) {
			return optionError("apiAllowedClients", "%q is not an application (client) ID: write the GUID of each client app that may call the API (its app registration's Application (client) ID)", id)
		}
		if s.apiClients == nil {
			s.apiClients = map[string]bool{}
		}
		s.apiClients[strings.ToLower(id)] = true
	}
	clientID := false
	for i, a := range audiences {
		switch {
		case entraid.IsGUID(a):
			audiences[i] = strings.ToLower(a)
			clientID = true
		case isAppIDURI(a):
			// Tokens carry the URI with or without a trailing slash.
			audiences[i] = strings.TrimSuffix(a, "/")
		default:
			return optionError("apiAudience", "%q is neither a client ID (a GUID) nor an application ID URI (api://...): write the API's client ID, and its application ID URI for v1.0 tokens", a)
		}
	}
	if !c.APIAcceptV1Tokens && !clientID {
		return optionError("apiAudience", "names no client ID, and with apiAcceptV1Tokens false only v2.0 tokens are accepted, whose aud is always the API's client ID (a GUID), never its application ID URI: add the client ID")
	}
	s.api = &entraid.AccessPolicy{Audiences: audiences, AllowV1: c.APIAcceptV1Tokens}
	s.requiredScopes = scopes
	s.apiAppRoles = appRoles
	return nil
}

// isAppIDURI reports whether s can be an application ID URI: a scheme
// (api, https, urn...) and more, without characters that would break a
// WWW-Authenticate header.
func isAppIDURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "") && !strings.ContainsAny(s, "\"<>\\")
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func validateRules(c *Config, s *settings) error {
	r := &s.rules
	// A GUID names a user by object ID; anything else by preferred_username.
	for _, u := range splitList(c.AllowedUsers) {
		if entraid.IsGUID(u) {
			if r.users == nil {
				r.users = map[string]bool{}
			}
			r.users[strings.ToLower(u)] = true
			continue
		}
		if r.userNames == nil {
			r.userNames = map[string]bool{}
		}
		r.userNames[strings.ToLower(u)] = true
	}
	for _, g := range splitList(c.AllowedGroups) {
		if !entraid.IsGUID(g) {
			return optionError("allowedGroups", "%q is not a group object ID: write the GUID shown on the group's overview page", g)
		}
		r.groups = append(r.groups, strings.ToLower(g))
	}
	r.roles = splitList(c.AllowedRoles)
	for _, d := range splitList(c.AllowedEmailDomains) {
		d = strings.ToLower(strings.TrimPrefix(d, "@"))
		if !isDomain(d) {
			return optionError("allowedEmailDomains", "%q is not a domain: write e.g. contoso.com", d)
		}
		r.emailDomains = append(r.emailDomains, d)
	}
	switch {
	case isMultiTenant(s.entra.Tenant):
		for _, t := range s.entra.AllowedTenants {
			if r.tenants == nil {
				r.tenants = map[string]bool{}
			}
			r.tenants[strings.ToLower(t)] = true
		}
	case entraid.IsGUID(s.entra.Tenant):
		r.tenants = map[string]bool{strings.ToLower(s.entra.Tenant): true}
	}
	return nil
}

func validateExclusions(c *Config, s *settings) error {
	e := &s.exclusions
	for _, p := range splitList(c.ExcludedPaths) {
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, s.portalPrefix()) {
			return optionError("excludedPaths", "%q must be a path starting with '/' outside /portals/%s/, e.g. /health or /public/*", p, s.portal)
		}
		// A path that plainPath refuses could never match a request: say
		// so rather than leave it excluded in name only.
		if !plainPath(&url.URL{Path: strings.TrimSuffix(p, "*")}) {
			return optionError("excludedPaths", "%q is not a plain path: write it without '.' or '..' segments, ';', '%%', '\\' or control characters, e.g. /public/*", p)
		}
		if strings.HasSuffix(p, "*") {
			e.prefixes = append(e.prefixes, strings.TrimSuffix(p, "*"))
			continue
		}
		if e.exact == nil {
			e.exact = map[string]bool{}
		}
		e.exact[p] = true
	}
	for _, m := range splitList(c.ExcludedMethods) {
		m = strings.ToUpper(m)
		if !isHeaderName(m) {
			return optionError("excludedMethods", "%q is not an HTTP method: write e.g. OPTIONS", m)
		}
		if e.methods == nil {
			e.methods = map[string]bool{}
		}
		e.methods[m] = true
	}
	return nil
}

func (s *settings) portalPrefix() string {
	return "/portals/" + s.portal + "/"
}

func validateEntra(e MicrosoftEntraID, getenv func(string) string, s *settings) error {
	tenant := strings.TrimSpace(e.TenantID)
	switch {
	case tenant == "":
		return optionError("microsoftEntraID.tenantID", "is required: write the directory (tenant) ID, a GUID, or a verified domain such as contoso.com")
	case isMultiTenant(tenant):
		if strings.EqualFold(tenant, "consumers") {
			return optionError("microsoftEntraID.tenantID", "consumers signs in personal Microsoft accounts only, which carry no tenant to check: write your directory (tenant) ID, or organizations with allowedTenants")
		}
		if len(splitList(e.AllowedTenants)) == 0 {
			return optionError("microsoftEntraID.allowedTenants", "is required with tenantID %s: list the tenant IDs (GUIDs) whose users may sign in", tenant)
		}
	case !entraid.IsGUID(tenant) && !isDomain(tenant):
		return optionError("microsoftEntraID.tenantID", "%q is neither a GUID nor a domain: write the directory (tenant) ID from the Entra admin center, e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47", tenant)
	}
	clientID := strings.TrimSpace(e.ClientID)
	if !entraid.IsGUID(clientID) {
		return optionError("microsoftEntraID.clientID", "%q is not an application (client) ID: write the GUID shown on the app registration's overview page", clientID)
	}

	authority, err := entraid.CheckAuthorityHost(e.AuthorityHost)
	if err != nil {
		// Any other host would receive the app's credentials at its token
		// endpoint: whoever may write a middleware could collect them.
		return optionError("microsoftEntraID.authorityHost", "%q is not a Microsoft Entra ID sign-in host: write %s", e.AuthorityHost, entraid.AuthorityHosts)
	}

	scopes := splitList(e.Scopes)
	if len(scopes) == 0 {
		scopes = []string{"openid", "profile", "email"}
	}
	if !contains(scopes, "openid") {
		return optionError("microsoftEntraID.scopes", "must include openid (e.g. \"openid profile email\")")
	}

	s.prompt = strings.ToLower(strings.TrimSpace(e.Prompt))
	switch s.prompt {
	case "", "select_account", "login", "consent":
	default:
		return optionError("microsoftEntraID.prompt", "%q is not a prompt: write select_account (choose an account), login (always ask for credentials) or consent", e.Prompt)
	}
	s.domainHint = strings.ToLower(strings.TrimSpace(e.DomainHint))
	if s.domainHint != "" && s.domainHint != "organizations" && s.domainHint != "consumers" && !isDomain(s.domainHint) {
		return optionError("microsoftEntraID.domainHint", "%q is not a domain: write the users' federated domain, e.g. contoso.com", e.DomainHint)
	}
	s.requestTimeout = defaultRequestTimeout
	if v := strings.TrimSpace(e.RequestTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < minRequestTimeout || d > maxRequestTimeout {
			return optionError("microsoftEntraID.requestTimeout", "%q is not a duration from 1s to 2m: write e.g. \"10s\" or \"30s\"", e.RequestTimeout)
		}
		s.requestTimeout = d
	}

	credential, err := clientCredential(e, authority, getenv, s)
	if err != nil {
		return err
	}

	var allowedTenants []string
	for _, t := range splitList(e.AllowedTenants) {
		if !entraid.IsGUID(t) {
			return optionError("microsoftEntraID.allowedTenants", "%q is not a tenant ID: write the directory (tenant) ID GUID of each allowed organization", t)
		}
		allowedTenants = append(allowedTenants, strings.ToLower(t))
	}
	s.entra = entraid.Config{
		AuthorityHost:  authority,
		Tenant:         tenant,
		AllowedTenants: allowedTenants,
		ClientID:       clientID,
		Scopes:         scopes,
		Credential:     credential,
		HTTPClient:     &http.Client{Timeout: s.requestTimeout},
	}
	s.clientKey = strings.Join([]string{authority, tenant, clientID, strings.Join(scopes, " "), strings.Join(allowedTenants, ","), credentialKey(e), s.requestTimeout.String()}, "\n")
	return nil
}

// clientCredential builds the one configured way of authenticating the
// application.
func clientCredential(e MicrosoftEntraID, authority string, getenv func(string) string, s *settings) (entraid.Credential, error) {
	set := 0
	for _, v := range []string{e.ClientSecret, e.ClientSecretFile, e.ClientAssertion, e.ClientCertificateFile} {
		if strings.TrimSpace(v) != "" {
			set++
		}
	}
	if set != 1 {
		return nil, optionError("microsoftEntraID", "set exactly one of clientSecret, clientSecretFile, clientAssertion or clientCertificateFile (found %d)", set)
	}
	// Assigned to an interface variable first: Yaegi mishandles returning
	// concrete values straight into interface results.
	var credential entraid.Credential
	switch {
	case e.ClientSecret != "":
		credential = entraid.ClientSecret(e.ClientSecret)
	case e.ClientSecretFile != "":
		if _, err := readSecretFile(e.ClientSecretFile); err != nil {
			return nil, optionError("microsoftEntraID.clientSecretFile", "%v", err)
		}
		credential = &secretFile{path: e.ClientSecretFile}
	case strings.TrimSpace(e.ClientCertificateFile) != "":
		cert, err := assertion.NewCertificate(strings.TrimSpace(e.ClientCertificateFile), strings.TrimSpace(e.ClientID), nil)
		if err != nil {
			return nil, optionError("microsoftEntraID.clientCertificateFile", "%v", err)
		}
		if left := time.Until(cert.NotAfter()); left < assertion.ExpiryWarning {
			s.warnings = append(s.warnings, fmt.Sprintf("microsoftEntraID.clientCertificateFile: the certificate in %s (thumbprint %s) expires on %s, in %d days: create a new one, upload it to the app registration and replace the file",
				strings.TrimSpace(e.ClientCertificateFile), cert.Thumbprint(), cert.NotAfter().UTC().Format(time.RFC3339), int(left.Hours()/24)))
		}
		credential = entraid.SignedAssertion{Sign: cert.Sign}
	default:
		cache, err := assertion.Shared(strings.TrimSpace(e.ClientAssertion), authority, s.requestTimeout, getenv)
		if err != nil {
			return nil, optionError("microsoftEntraID.clientAssertion", "%v", err)
		}
		credential = entraid.ClientAssertion{Get: cache.Assertion}
		s.assertions = cache
	}
	return credential, nil
}

// credentialKey tells client credentials apart, for the shared client
// cache, without holding a secret itself.
func credentialKey(e MicrosoftEntraID) string {
	switch {
	case e.ClientSecret != "":
		return "secret:" + fingerprint(e.ClientSecret)
	case e.ClientSecretFile != "":
		return "secretfile:" + e.ClientSecretFile
	case strings.TrimSpace(e.ClientCertificateFile) != "":
		return "certificatefile:" + strings.TrimSpace(e.ClientCertificateFile)
	default:
		return "assertion:" + strings.ToLower(strings.TrimSpace(e.ClientAssertion))
	}
}

// secretFile reads the client secret on every use, so that a rotated
// Kubernetes secret or file takes effect without a Traefik reload.
type secretFile struct {
	path string
}

// SetClientAuth implements entraid.Credential.
func (f *secretFile) SetClientAuth(ctx context.Context, form url.Values) error {
	secret, err := readSecretFile(f.path)
	if err != nil {
		return err
	}
	return entraid.ClientSecret(secret).SetClientAuth(ctx, form)
}

func validateSession(c Session, s *settings) error {
	secret := c.Secret
	switch {
	case c.Secret != "" && c.SecretFile != "":
		return optionError("session", "set secret or secretFile, not both")
	case c.SecretFile != "":
		var err error
		if secret, err = readSecretFile(c.SecretFile); err != nil {
			return optionError("session.secretFile", "%v", err)
		}
	case c.Secret == "":
		return optionError("session.secret", "is required: write at least 32 random characters (e.g. the output of `openssl rand -base64 32`), or use session.secretFile")
	}
	if len(secret) < 32 {
		return optionError("session.secret", "is %d characters long: write at least 32 random characters (e.g. `openssl rand -base64 32`)", len(secret))
	}
	previous := splitList(c.PreviousSecrets)
	for i, p := range previous {
		if len(p) < 32 {
			return optionError("session.previousSecrets", "entry %d is %d characters long: every secret has at least 32 (a comma or white space separates entries: a secret cannot contain one)", i+1, len(p))
		}
	}
	sealer, err := sharedSealer(secret, previous)
	if err != nil {
		return optionError("session.secret", "%v", err)
	}
	s.sealer = sealer
	s.sessionKey = fingerprint(secret)

	lifetime := strings.TrimSpace(c.Lifetime)
	if lifetime == "" {
		lifetime = defaultLifetime
	}
	d, err := time.ParseDuration(lifetime)
	if err != nil || d < minLifetime || d > maxLifetime {
		return optionError("session.lifetime", "%q is not a duration from 1m to 720h: write e.g. \"1h\" or \"30m\"", c.Lifetime)
	}
	s.lifetime = d
	s.renew = c.Renew
	longest := strings.TrimSpace(c.MaxLifetime)
	if longest == "" {
		longest = defaultMaxLifetime
	}
	d, err = time.ParseDuration(longest)
	if err != nil || d > longestMaxLifetime {
		return optionError("session.maxLifetime", "%q is not a duration up to 2160h (Entra ID's 90 days): write e.g. \"24h\" or \"168h\"", c.MaxLifetime)
	}
	if d < s.lifetime {
		if strings.TrimSpace(c.MaxLifetime) != "" {
			return optionError("session.maxLifetime", "%s is shorter than session.lifetime %s: renewals go on for maxLifetime after a sign-in, write at least the lifetime", d, s.lifetime)
		}
		// Unset: at least the lifetime, so that a long lifetime alone
		// keeps meaning what it says.
		d = s.lifetime
	}
	s.maxLifetime = d

	s.cookieName = strings.TrimSpace(c.CookieName)
	if s.cookieName == "" {
		s.cookieName = "entraauth_" + strings.ReplaceAll(s.portal, "-", "_")
	}
	if !isCookieName(s.cookieName) {
		return optionError("session.cookieName", "%q may hold only letters, digits, '_' and '-' (at most 64)", c.CookieName)
	}
	s.sessionKey = s.cookieName + ":" + s.sessionKey

	s.cookieDomain = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(c.CookieDomain), "."))
	if s.cookieDomain != "" && !isDomain(s.cookieDomain) {
		return optionError("session.cookieDomain", "%q is not a domain: write the parent domain alone, e.g. example.com", c.CookieDomain)
	}
	s.insecureCookies = c.InsecureCookies
	switch {
	case strings.HasPrefix(s.cookieName, hostPrefix) && (s.cookieDomain != "" || s.insecureCookies):
		return optionError("session.cookieName", "%q starts with %s, which browsers accept only on a Secure cookie without a Domain: drop the prefix (the plugin adds it where it can) or session.cookieDomain and session.insecureCookies", c.CookieName, hostPrefix)
	case strings.HasPrefix(s.cookieName, securePrefix) && s.insecureCookies:
		return optionError("session.cookieName", "%q starts with %s, which browsers accept only on a Secure cookie: drop the prefix or session.insecureCookies", c.CookieName, securePrefix)
	}
	s.cookies = sessionCookieNames(s.cookieName, s.cookieDomain, s.insecureCookies)
	return nil
}

// cookieNames are the names of the plugin's cookies, decided once, by
// sessionCookieNames, for every caller.
type cookieNames struct {
	// session names the session cookie; its chunks add _1, _2, ...
	session string
	// portal names the portal cookie, which keeps the whole session
	// under the portal's path (see remembered). Its Path forbids the
	// __Host- prefix; it is sealed under its session cookie's handle.
	portal string
	// legacy is the session cookie's name from before the __Host- prefix,
	// or "" when it did not change: a session under it is still opened when
	// no session cookie came, then moved to the new name and deleted.
	legacy string
	// login starts the login-state cookies' names and signedOut names the
	// signed-out page's cookie. Their Path is a portal path, which __Host-
	// forbids, so they never get the prefix; sealed under their own name and
	// state, a planted one opens nothing (see the readme).
	login     string
	signedOut string
	// binding names the cookie that ties a sign-in to the browser that
	// started it, where the session cookie has the __Host- prefix (which
	// this cookie has too): a login-state cookie that a sibling subdomain
	// planted, the attacker's own, then opens no sign-in. "" otherwise.
	binding string
}

// The cookie name prefixes that browsers enforce: a __Host- cookie must be
// Secure, have Path=/ and no Domain, so that no other host (a sibling
// subdomain setting a cookie for the parent domain) can set one; a
// __Secure- cookie must be Secure.
const (
	hostPrefix   = "__Host-"
	securePrefix = "__Secure-"
)

// sessionCookieNames names the plugin's cookies for the configured (or
// default) cookie name. The session cookie gets the __Host- prefix where
// browsers accept it: a Secure cookie without a Domain. A name that has a
// prefix already is kept as it is; with session.cookieDomain (the cookie is
// meant for sibling hosts) or session.insecureCookies (plain HTTP) the name
// stays as configured. A name that gets the prefix had none before this
// release: that one is still read, for the sessions issued under it (at
// most maxLifetime).
func sessionCookieNames(configured, cookieDomain string, insecure bool) cookieNames {
	base := strings.TrimPrefix(configured, hostPrefix)
	names := cookieNames{session: configured, portal: base + "_full", login: base + "_login_", signedOut: base + "_signedout"}
	if cookieDomain == "" && !insecure && !strings.HasPrefix(configured, hostPrefix) && !strings.HasPrefix(configured, securePrefix) {
		names.session = hostPrefix + configured
		names.legacy = configured
	}
	if strings.HasPrefix(names.session, hostPrefix) {
		names.binding = hostPrefix + base + "_login"
	}
	return names
}

// upstreamToken is a validated UpstreamAccessToken.
type upstreamToken struct {
	scope  string // space-separated, one resource
	header string // canonical
	bearer bool   // "Bearer " before the token (the Authorization header)
}

func validateUpstreamToken(c UpstreamAccessToken, s *settings) error {
	scopes := splitList([]string{c.Scope})
	if len(scopes) == 0 {
		if strings.TrimSpace(c.Header) != "" {
			return optionError("upstreamAccessToken.scope", "is required with upstreamAccessToken.header: write the API's scope, e.g. api://my-api/.default")
		}
		return nil
	}
	if !s.renew {
		return optionError("upstreamAccessToken", "needs session.renew: the token is redeemed with the session's refresh token")
	}
	resource := ""
	for _, sc := range scopes {
		r := scopeResource(sc)
		if r == "" || strings.ContainsAny(sc, "\"<>") {
			return optionError("upstreamAccessToken.scope", "%q is not an API scope: write e.g. api://my-api/.default or https://graph.microsoft.com/User.Read", sc)
		}
		if resource != "" && r != resource {
			return optionError("upstreamAccessToken.scope", "names two APIs (%s and %s): Entra ID issues a token for one API at a time", resource, r)
		}
		resource = r
	}
	header := http.CanonicalHeaderKey(strings.TrimSpace(c.Header))
	if header == "" {
		header = "Authorization"
	}
	if !isHeaderName(header) || header != "Authorization" && (reservedHeaders[header] || strings.HasPrefix(header, "Proxy-")) {
		return optionError("upstreamAccessToken.header", "%q cannot carry the token: write Authorization (the default) or a header of your own, e.g. X-Access-Token", c.Header)
	}
	for _, h := range s.headers {
		if h.name == header {
			return optionError("upstreamAccessToken.header", "%s already carries the claim %s (headers)", header, h.claim)
		}
	}
	s.upstream = &upstreamToken{scope: strings.Join(scopes, " "), header: header, bearer: header == "Authorization"}
	return nil
}

// scopeResource is the API a scope belongs to: the part before its last
// "/" (api://my-api for api://my-api/.default), Microsoft Graph for a bare
// permission (User.Read), "" for the OpenID scopes, which name none.
func scopeResource(scope string) string {
	switch scope {
	case "openid", "profile", "email", "offline_access":
		return ""
	}
	i := strings.LastIndex(scope, "/")
	switch {
	case i < 0:
		return "https://graph.microsoft.com"
	case i == len(scope)-1 || !strings.Contains(scope[:i], "/") && !entraid.IsGUID(scope[:i]):
		return ""
	}
	return scope[:i]
}

// optionError is a configuration error that names the option at fault.
func optionError(option, format string, args ...interface{}) error {
	return fmt.Errorf("entraauth: %s: %s", option, fmt.Sprintf(format, args...))
}

const maxSecretFileSize = 64 << 10

func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	b := make([]byte, maxSecretFileSize+1)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	if n > maxSecretFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes", path, maxSecretFileSize)
	}
	secret := strings.TrimSpace(string(b[:n]))
	if secret == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return secret, nil
}

func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte("entraauth client key\x00" + secret))
	return hex.EncodeToString(sum[:8])
}

// clients holds one Entra ID client per distinct configuration, so that the
// tenant's metadata and keys survive Traefik's reloads (which call New for
// every router every time) instead of being fetched again. Like the other
// reload-safe package caches (sessions and sealers in sessioncache.go,
// groupRules, usedStates), it is bounded: by maxClients.
var clients = struct {
	sync.Mutex
	byKey map[string]*entraid.Client
}{byKey: map[string]*entraid.Client{}}

const maxClients = 64

func sharedClient(s *settings) (*entraid.Client, error) {
	clients.Lock()
	defer clients.Unlock()
	if c, ok := clients.byKey[s.clientKey]; ok {
		return c, nil
	}
	c, err := entraid.NewClient(s.entra)
	if err != nil {
		return nil, optionError("microsoftEntraID", "%v", err)
	}
	if len(clients.byKey) >= maxClients {
		// Configurations that many mean old ones are gone: start afresh
		// rather than keep clients that no router uses.
		clients.byKey = map[string]*entraid.Client{}
	}
	clients.byKey[s.clientKey] = c
	return c, nil
}

// splitList flattens list options: Traefik gives YAML lists as slices and
// label values as one comma-separated string; scopes are also commonly
// written space-separated.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func isMultiTenant(tenant string) bool {
	switch strings.ToLower(tenant) {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

// isDomain reports whether s is a DNS name with at least two labels.
func isDomain(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' || !onlyOf(label, alphanumeric+"-") {
			return false
		}
	}
	return true
}

// isHostPort reports whether s is a DNS name or IP literal, optionally with
// a port.
func isHostPort(s string) bool {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return false
		}
		host = h
	}
	if net.ParseIP(host) != nil {
		return true
	}
	return isDomain(host) || host == "localhost"
}

func isPortalName(s string) bool {
	return len(s) <= 63 && onlyOf(s, "abcdefghijklmnopqrstuvwxyz0123456789-")
}

func isCookieName(s string) bool {
	return s != "" && len(s) <= 64 && onlyOf(s, alphanumeric+"_-")
}

const alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// onlyOf reports whether every byte of s is in chars. strings.Trim does the
// work compiled: under Yaegi a loop over the bytes would be interpreted.
func onlyOf(s, chars string) bool {
	return strings.Trim(s, chars) == ""
}

// hostOnly drops the port of a host:port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// hostUnderDomain reports whether host is domain or one of its subdomains.
func hostUnderDomain(host, domain string) bool {
	host = strings.ToLower(host)
	return host == domain || strings.HasSuffix(host, "."+domain)
}

// unknownOption is an option that Traefik matched to no field: key as the
// user wrote it, in the block at parent ("" for the top level).
type unknownOption struct{ parent, key string }

// unknownOptions refuses the options Traefik could not place in c, or
// returns nil. Traefik decodes the options with mapstructure, which drops
// keys that match no field except into a block's field tagged
// `mapstructure:",remain"` (Unknown, in every block), so a misspelt rule
// (allowedGroup) would leave the router open to the whole tenant. Each one
// is named by its full path, with the option the user most likely meant.
func unknownOptions(c *Config) error {
	var known []string
	var unknown []unknownOption
	collectOptions("", reflect.ValueOf(c).Elem(), &known, &unknown)
	if len(unknown) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(unknown))
	for _, u := range unknown {
		msgs = append(msgs, "unknown option "+optionPath(u.parent, u.key)+": "+suggestOption(u, known))
	}
	sort.Slice(msgs, func(i, j int) bool { return strings.ToLower(msgs[i]) < strings.ToLower(msgs[j]) })
	return fmt.Errorf("entraauth: %s", strings.Join(msgs, "; "))
}

// collectOptions walks the block v at path: the full names of its options
// (json tags, the documented names) go to known, the keys of its remain
// field to unknown, and nested blocks are walked in turn. Reflection keeps
// the option list in one place, the Config structs; New alone pays for it.
func collectOptions(path string, v reflect.Value, known *[]string, unknown *[]unknownOption) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if strings.HasSuffix(f.Tag.Get("mapstructure"), ",remain") {
			rest, _ := v.Field(i).Interface().(map[string]interface{})
			for key := range rest {
				*unknown = append(*unknown, unknownOption{parent: path, key: key})
			}
			continue
		}
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		full := optionPath(path, name)
		*known = append(*known, full)
		if f.Type.Kind() == reflect.Struct {
			collectOptions(full, v.Field(i), known, unknown)
		}
	}
}

// suggestOption says what u likely meant: the nearest option of its own
// block (a typo), else an option of that name in another block (written at
// the wrong level), else the nearest option anywhere. Names compare
// without regard to case, as Traefik matches them.
func suggestOption(u unknownOption, known []string) string {
	key := strings.ToLower(u.key)
	best, bestDistance := "", 0
	consider := func(option, name string) {
		d := editDistance(key, strings.ToLower(name))
		if d <= 2 && d*3 <= len(key) && (best == "" || d < bestDistance) {
			best, bestDistance = option, d
		}
	}
	for _, option := range known {
		if parent, name := splitOption(option); parent == u.parent {
			consider(option, name)
		}
	}
	if best == "" {
		for _, option := range known {
			if _, name := splitOption(option); strings.EqualFold(name, u.key) {
				return "did you mean " + option + "?"
			}
		}
		for _, option := range known {
			_, name := splitOption(option)
			consider(option, name)
		}
	}
	if best != "" {
		return "did you mean " + best + "?"
	}
	if u.parent == "" {
		return "not an option of this plugin (the readme lists them)"
	}
	return "not an option of " + u.parent + " (the readme lists them)"
}

// optionPath is an option's full name: its block's path, '.', its name.
func optionPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// splitOption is optionPath undone.
func splitOption(option string) (parent, name string) {
	if i := strings.LastIndexByte(option, '.'); i >= 0 {
		return option[:i], option[i+1:]
	}
	return "", option
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diagonal := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			next := diagonal + cost
			if row[j]+1 < next {
				next = row[j] + 1
			}
			if row[j-1]+1 < next {
				next = row[j-1] + 1
			}
			diagonal = row[j]
			row[j] = next
		}
	}
	return row[len(b)]
}
