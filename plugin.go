// Package entraauth is a Traefik middleware plugin that signs users in with
// Microsoft Entra ID (OpenID Connect authorization code flow with PKCE) and
// keeps them signed in with a sealed cookie, so that the services behind
// Traefik need no authentication code of their own.
package entraauth

import (
	"context"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// Config is the middleware's dynamic configuration, decoded by Traefik.
// Field names are the option names: Traefik matches them case-insensitively
// and converts label strings ("true", "a,b") to the field types.
type Config struct {
	// Portal names this sign-in portal: its endpoints live under
	// /portals/<portal>/. Lower-case letters, digits and '-'.
	Portal string `json:"portal,omitempty"`
	// MicrosoftEntraID says which tenant and application to sign in with.
	MicrosoftEntraID MicrosoftEntraID `json:"microsoftEntraID,omitempty"`
	// Session configures the session cookie.
	Session Session `json:"session,omitempty"`
	// AuthHost, when set, is the one host (host or host:port) whose callback
	// URL every sign-in uses; the session cookie is then shared over
	// Session.CookieDomain.
	AuthHost string `json:"authHost,omitempty"`

	// AllowedUsers, AllowedGroups, AllowedRoles and AllowedEmailDomains
	// restrict who may pass: a user must satisfy every non-empty list.
	AllowedUsers        []string `json:"allowedUsers,omitempty"`
	AllowedGroups       []string `json:"allowedGroups,omitempty"`
	AllowedRoles        []string `json:"allowedRoles,omitempty"`
	AllowedEmailDomains []string `json:"allowedEmailDomains,omitempty"`

	// Headers maps identity header names to claims; empty means the
	// X-Forwarded-* defaults.
	Headers map[string]string `json:"headers,omitempty"`

	// ExcludedPaths (exact, or prefixes ending in '*') and ExcludedMethods
	// pass without authentication.
	ExcludedPaths   []string `json:"excludedPaths,omitempty"`
	ExcludedMethods []string `json:"excludedMethods,omitempty"`

	// APIAudience turns on bearer tokens for API clients: the accepted
	// audiences, the API's client ID (the aud of v2.0 tokens) and/or its
	// application ID URI (v1.0 tokens asked for by it).
	APIAudience []string `json:"apiAudience,omitempty"`
	// RequiredScopes: a delegated bearer token must carry one of them.
	RequiredScopes []string `json:"requiredScopes,omitempty"`
	// APIAppRoles: an app-only bearer token must carry one of these app
	// roles; without them app-only tokens are refused. The Allowed* lists
	// are for people.
	APIAppRoles []string `json:"apiAppRoles,omitempty"`
	// APIAcceptV1Tokens accepts v1.0 access tokens (issuer
	// https://sts.windows.net/{tid}/), which an API gets unless its
	// manifest asks for v2.0; true by default.
	APIAcceptV1Tokens bool `json:"apiAcceptV1Tokens,omitempty"`
	// APIAllowedClients, when set, are the only client applications
	// (application IDs: azp in v2.0 tokens, appid in v1.0) whose bearer
	// tokens the API accepts, delegated and app-only alike.
	APIAllowedClients []string `json:"apiAllowedClients,omitempty"`

	// Unauthenticated says what happens to a request without a session:
	// redirect (browsers sign in, others get 401; the default), 401 (never
	// redirect) or allow (pass without identity headers).
	Unauthenticated string `json:"unauthenticated,omitempty"`

	// AppServiceHeaders also sets Azure App Service's identity headers
	// (X-MS-CLIENT-PRINCIPAL...) and answers its /.auth/me, /.auth/login/aad
	// and /.auth/logout, for apps written for App Service.
	AppServiceHeaders bool `json:"appServiceHeaders,omitempty"`

	// UpstreamAccessToken, when its scope is set, gives every signed-in
	// request an access token of the user for that API.
	UpstreamAccessToken UpstreamAccessToken `json:"upstreamAccessToken,omitempty"`

	// Unknown receives the options Traefik matches to no field of this
	// block (mapstructure's remain): New refuses them by name, since
	// Traefik would otherwise drop a misspelt option without a word.
	Unknown map[string]interface{} `json:"-" mapstructure:",remain"`
}

// UpstreamAccessToken asks for an access token for the upstream: the
// plugin redeems the session's refresh token for Scope and sets the token
// on every signed-in request.
type UpstreamAccessToken struct {
	// Scope names the API and its permissions, e.g. api://my-api/.default or
	// https://graph.microsoft.com/User.Read: one resource.
	Scope string `json:"scope,omitempty"`
	// Header carries the token: Authorization (the default) as "Bearer
	// <token>", any other header as the token alone.
	Header string `json:"header,omitempty"`

	// Unknown receives the options Traefik matches to no field of this
	// block (mapstructure's remain): New refuses them by name, since
	// Traefik would otherwise drop a misspelt option without a word.
	Unknown map[string]interface{} `json:"-" mapstructure:",remain"`
}

// MicrosoftEntraID holds the Entra ID application registration settings.
type MicrosoftEntraID struct {
	// TenantID is the directory (tenant) ID or a verified domain.
	TenantID string `json:"tenantID,omitempty"`
	// ClientID is the application (client) ID.
	ClientID string `json:"clientID,omitempty"`
	// ClientSecret, ClientSecretFile and ClientAssertion are the three ways
	// to authenticate the application; exactly one must be set.
	ClientSecret     string `json:"clientSecret,omitempty"`
	ClientSecretFile string `json:"clientSecretFile,omitempty"`
	ClientAssertion  string `json:"clientAssertion,omitempty"`
	// ClientCertificateFile is a PEM file with a certificate uploaded to the
	// app registration and its private key: the fourth way, exclusive of
	// the other three.
	ClientCertificateFile string `json:"clientCertificateFile,omitempty"`
	// AuthorityHost is the Entra ID sign-in host of the cloud in use.
	AuthorityHost string `json:"authorityHost,omitempty"`
	// Scopes requested at sign-in, separated by spaces or commas.
	Scopes []string `json:"scopes,omitempty"`
	// AllowedTenants lists the tenant IDs a multi-tenant application
	// (tenantID organizations or common) accepts.
	AllowedTenants []string `json:"allowedTenants,omitempty"`
	// Prompt asks Entra ID to behave at sign-in: select_account, login or
	// consent.
	Prompt string `json:"prompt,omitempty"`
	// DomainHint skips home-realm discovery: a federated domain, or
	// organizations or consumers.
	DomainHint string `json:"domainHint,omitempty"`
	// RequestTimeout bounds every call to Entra ID, Microsoft Graph and the
	// client assertion source, as a Go duration ("10s").
	RequestTimeout string `json:"requestTimeout,omitempty"`

	// Unknown receives the options Traefik matches to no field of this
	// block (mapstructure's remain): New refuses them by name, since
	// Traefik would otherwise drop a misspelt option without a word.
	Unknown map[string]interface{} `json:"-" mapstructure:",remain"`
}

// Session configures the sealed session cookie.
type Session struct {
	// Secret seals the cookies; at least 32 characters. Or SecretFile.
	Secret     string `json:"secret,omitempty"`
	SecretFile string `json:"secretFile,omitempty"`
	// PreviousSecrets still open cookies but never seal new ones.
	PreviousSecrets []string `json:"previousSecrets,omitempty"`
	// Lifetime is how long a session is trusted without asking Entra ID
	// again, as a Go duration ("1h", "30m"); then it is renewed, or ends.
	Lifetime string `json:"lifetime,omitempty"`
	// MaxLifetime is how long renewals may go on after a sign-in before the
	// user must sign in again.
	MaxLifetime string `json:"maxLifetime,omitempty"`
	// Renew keeps Entra ID's refresh token in the session and renews the
	// session with it, in-band, once Lifetime is over.
	Renew bool `json:"renew,omitempty"`
	// CookieName defaults to "entraauth_<portal>".
	CookieName string `json:"cookieName,omitempty"`
	// CookieDomain shares the session across subdomains (e.g. example.com).
	CookieDomain string `json:"cookieDomain,omitempty"`
	// InsecureCookies drops the Secure attribute: plain-HTTP development only.
	InsecureCookies bool `json:"insecureCookies,omitempty"`

	// Unknown receives the options Traefik matches to no field of this
	// block (mapstructure's remain): New refuses them by name, since
	// Traefik would otherwise drop a misspelt option without a word.
	Unknown map[string]interface{} `json:"-" mapstructure:",remain"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{
		Portal: "main",
		MicrosoftEntraID: MicrosoftEntraID{
			AuthorityHost:  "https://login.microsoftonline.com",
			Scopes:         []string{"openid", "profile", "email"},
			RequestTimeout: "10s",
		},
		Session:           Session{Lifetime: defaultLifetime, Renew: true},
		APIAcceptV1Tokens: true,
	}
}

// Middleware is the sign-in middleware for one Traefik router.
type Middleware struct {
	next   http.Handler
	name   string
	client *entraid.Client
	sealer *session.Sealer
	// assertions is the client assertion cache with clientAssertion, nil
	// with a client secret.
	assertions *assertion.Cache
	log        *log.Logger
	// now and until are the clock: time.Now and time.Until, or in tests
	// one settable clock (setClock). passCached uses until, which compares
	// a time with the clock in one call.
	now   func() time.Time
	until func(time.Time) time.Duration

	portal        string
	prefix        string // "/portals/<portal>/"
	callbackPath  string
	logoutPath    string
	profilePath   string
	signedOutPath string
	signInPath    string
	// unauthenticated is the unauthenticated option: redirect, 401 or
	// allow (unauthenticated.go).
	unauthenticated string
	// appService: appServiceHeaders (appservice.go).
	appService  bool
	restorePath string // the restore hop's endpoint (serveRestore)

	lifetime    time.Duration
	maxLifetime time.Duration
	renew       bool
	prompt      string
	domainHint  string
	// upstream, when set, is the access token every signed-in request gets.
	upstream    *upstreamToken
	headers     []headerClaim // identity headers set on signed-in requests
	stripped    []string      // identity headers removed from every request
	strippedSet map[string]bool
	rules       rules
	exclusions  exclusions
	// api accepts bearer tokens when set; requiredScopes bound delegated
	// ones, apiAppRoles app-only ones.
	api            *entraid.AccessPolicy
	requiredScopes []string
	apiAppRoles    []string
	// apiClients, when not nil, are the client application IDs (lower
	// case) whose tokens the API accepts.
	apiClients map[string]bool
	// sessionKey names the session cookie and secret, which routers share.
	sessionKey string
	// sessionAAD binds sessions to the cookie and the app registration
	// (session.AAD): sessions are sealed and opened under it.
	sessionAAD string
	// tenantIsDomain is set when tenantID is a verified domain: a session's
	// tid must then be the tenant ID that the domain's discovery names.
	tenantIsDomain bool
	cookie         session.CookieOptions // the session cookie
	// portalCookie keeps the whole session under the portal's path, sealed
	// under portalBinding and the session's handle (portalAAD).
	portalCookie  session.CookieOptions
	portalBinding string
	// legacy is the session cookie under its name from before the __Host-
	// prefix, whose sessions are sealed under legacyAAD; its Name is ""
	// when there is none (see sessionCookieNames).
	legacy        session.CookieOptions
	legacyAAD     string
	loginPrefix   string // login-state cookie names start with this
	loginBinding  string // ties sign-ins to their browser (cookieNames.binding)
	signedOutName string // the signed-out page's cookie
	authHost      string
	cookieDomain  string
	insecure      bool
	// cache is this middleware's scope in the session cache.
	cache *cacheScope
	// hostOnlyCookies are the session and portal cookies as they were
	// before session.cookieDomain was set: without a Domain, the session
	// cookie under its names of then (see clearHostOnlySession).
	hostOnlyCookies []session.CookieOptions
}

// New validates the configuration and builds the middleware. It does no
// network I/O: the tenant's metadata and keys are fetched on first need.
func New(ctx context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	s, err := validate(config, os.Getenv)
	if err != nil {
		return nil, err
	}
	client, err := sharedClient(s)
	if err != nil {
		return nil, err
	}
	registerGroups(s.sessionKey, s.rules.groups)
	m := newMiddleware(next, name, s, client)
	for _, w := range s.warnings {
		m.log.Print("warning: " + w)
	}
	return m, nil
}

func newMiddleware(next http.Handler, name string, s *settings, client *entraid.Client) *Middleware {
	prefix := s.portalPrefix()
	// What a cookie named cookie is sealed under: bound to it and the app.
	bound := func(cookie string) string {
		return session.AAD(cookie, s.entra.AuthorityHost, s.entra.Tenant, s.entra.ClientID)
	}
	m := &Middleware{
		next:          next,
		name:          name,
		client:        client,
		sealer:        s.sealer,
		assertions:    s.assertions,
		log:           log.New(os.Stderr, "entraauth["+name+"]: ", 0),
		now:           time.Now,
		until:         time.Until,
		portal:        s.portal,
		prefix:        prefix,
		callbackPath:  prefix + "oauth2/callback",
		logoutPath:    prefix + "logout",
		profilePath:   prefix + "profile",
		signedOutPath: prefix + "signed-out",
		signInPath:    prefix + "sign-in",
		restorePath:   prefix + "session",
		lifetime:      s.lifetime,
		maxLifetime:   s.maxLifetime,
		renew:         s.renew,
		prompt:        s.prompt,
		domainHint:    s.domainHint,
		upstream:      s.upstream,
		headers:       s.headers,
		stripped:      strippedHeaders(s.headers, s.upstream),
		rules:         s.rules,
		exclusions:    s.exclusions,
		api:           s.api,
		sessionKey:    s.sessionKey,

		requiredScopes: s.requiredScopes,
		apiAppRoles:    s.apiAppRoles,
		apiClients:     s.apiClients,

		unauthenticated: s.unauthenticated,
		appService:      s.appService,

		loginPrefix:    s.cookies.login,
		loginBinding:   s.cookies.binding,
		signedOutName:  s.cookies.signedOut,
		authHost:       s.authHost,
		cookieDomain:   s.cookieDomain,
		insecure:       s.insecureCookies,
		sessionAAD:     bound(s.cookies.session),
		tenantIsDomain: !entraid.IsGUID(s.entra.Tenant) && !isMultiTenant(s.entra.Tenant),
	}
	m.strippedSet = map[string]bool{}
	for _, name := range m.stripped {
		m.strippedSet[foldHeaderName(name)] = true
	}
	m.cookie = session.CookieOptions{
		Name:     s.cookies.session,
		Domain:   s.cookieDomain,
		Path:     "/",
		Secure:   !s.insecureCookies,
		MaxAge:   int(s.lifetime / time.Second),
		SameSite: http.SameSiteLaxMode,
	}
	m.portalCookie = m.cookie
	m.portalCookie.Name = s.cookies.portal
	m.portalCookie.Path = prefix
	m.portalBinding = bound(s.cookies.portal)
	if s.cookies.legacy != "" {
		m.legacy = m.cookie
		m.legacy.Name = s.cookies.legacy
		m.legacyAAD = bound(s.cookies.legacy)
	}
	if s.cookieDomain != "" {
		portal := m.portalCookie
		portal.Domain = ""
		m.hostOnlyCookies = []session.CookieOptions{portal}
		before := sessionCookieNames(s.cookieName, "", s.insecureCookies)
		for _, name := range []string{before.session, before.legacy} {
			if name != "" {
				c := m.cookie
				c.Name = name
				c.Domain = ""
				m.hostOnlyCookies = append(m.hostOnlyCookies, c)
			}
		}
	}
	m.cache = newCacheScope(m)
	return m
}

// ServeHTTP answers the portal's own endpoints and guards everything else.
// A response on which authorize set a cookie (a renewal) is made private
// (privateIfCookie); the fast path sets none.
func (m *Middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if passCached(m, m.cache, r) {
		m.next.ServeHTTP(w, r)
	} else if m.authorize(w, r) {
		m.next.ServeHTTP(privateIfCookie(w), r)
	}
}

// authorize prepares r for the upstream and reports true, or answers the
// request itself and reports false. A panic in it becomes a 500 for this
// request only: a plugin panic must never reach Traefik.
func (m *Middleware) authorize(w http.ResponseWriter, r *http.Request) (pass bool) {
	defer func() {
		if v := recover(); v != nil {
			// Quoted: a decoded path may hold CR LF, which would forge log lines.
			m.log.Printf("internal error on %s %q: %v", r.Method, r.URL.Path, v)
			m.writeError(w, r, internalProblem())
			pass = false
		}
	}()
	m.stripIdentityHeaders(r.Header)
	if r.Trailer != nil {
		m.stripIdentityHeaders(r.Trailer)
	}
	// The paths it answers here are portalPaths.
	if strings.HasPrefix(r.URL.Path, m.prefix) {
		switch r.URL.Path {
		case m.callbackPath:
			m.serveCallback(w, r)
			return false
		case m.logoutPath:
			m.serveLogout(w, r)
			return false
		case m.profilePath:
			m.serveProfile(w, r)
			return false
		case m.signedOutPath:
			m.serveSignedOut(w, r)
			return false
		case m.signInPath:
			m.serveSignIn(w, r)
		case m.restorePath:
			m.serveRestore(w, r)
			return false
		}
	}
	if m.appService && strings.HasPrefix(r.URL.Path, "/.auth/") && m.serveAppService(w, r) {
		return false
	}
	if m.exclusions.match(r) {
		m.stripOwnCookies(r)
		return true
	}
	if m.api != nil {
		if raw, ok := bearerToken(r); ok {
			return m.authorizeBearer(w, r, raw)
		}
	}
	s, state := m.currentSession(w, r)
	switch {
	case state == requestAnswered:
		return false
	case s == nil:
		if m.unauthenticated == unauthenticatedAllow {
			return m.passAnonymous(r)
		}
		m.challenge(w, r, state)
		return false
	case s.GroupsPending && len(m.rules.groups) > 0:
		// A pending groups overage: this middleware needs the groups, and
		// its sign-in resolves them (on an allow router, the portal's
		// sign-in endpoint does).
		if m.unauthenticated == unauthenticatedAllow {
			return m.passAnonymous(r)
		}
		m.challenge(w, r, noSession)
		return false
	}
	if !m.rules.empty() {
		if ok, why := m.rules.allow(s); !ok {
			if m.unauthenticated == unauthenticatedAllow {
				return m.passAnonymous(r)
			}
			m.forbidden(w, r, s, why)
			return false
		}
	}
	values := m.identityValues(s)
	m.setIdentityHeaders(r.Header, values)
	// The fast path serves this outcome until the session must be renewed
	// or ends, or the upstream's token must be replaced.
	until := m.renewAt(s)
	if end := m.sessionEnd(s); end < until {
		until = end
	}
	if m.upstream != nil {
		expires, answered := m.setUpstreamToken(w, r, s)
		if answered {
			return false
		}
		if expires < until {
			until = expires
		}
	}
	if state == sessionRenewed {
		// The old Cookie header is not remembered: the browser now has the
		// new one, which the next request caches.
		m.stripOwnCookies(r)
		return true
	}
	rememberSignedIn(m, m.cache, r, s, values, until)
	return true
}

// portalPaths are the paths authorize answers itself, whatever the
// session: passCached leaves them to it.
func (m *Middleware) portalPaths() []string {
	paths := []string{m.callbackPath, m.logoutPath, m.profilePath, m.signedOutPath, m.signInPath, m.restorePath}
	if m.appService {
		paths = append(paths, appServiceMePath, appServiceLoginPath, appServiceLogoutPath)
	}
	return paths
}

// challenge starts a sign-in for a browser navigation and answers 401 to
// anything else (API calls, fetches, non-GET requests), which could not
// follow a redirect to the sign-in page anyway, and to every request with
// unauthenticated: 401; its code says whether there was no session
// (unauthenticated) or one that ended (session_expired).
func (m *Middleware) challenge(w http.ResponseWriter, r *http.Request, state sessionState) {
	if m.unauthenticated != unauthenticated401 && isNavigation(r) {
		m.startLogin(w, r)
		return
	}
	p := &problem{
		Status:  http.StatusUnauthorized,
		Title:   "Sign-in required",
		Message: "This resource needs a signed-in user. Open it in a browser to sign in.",
		Code:    "unauthenticated",
	}
	if state == sessionEnded {
		p.Title = "Session expired"
		p.Message = "The session has ended. Reload the page to sign in again."
		p.Code = "session_expired"
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+m.portal+`"`)
	m.writeError(w, r, p)
}

// isNavigation reports whether r is a top-level browser navigation, the only
// kind of request that can usefully be redirected to the sign-in page.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" && mode != "navigate" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// requestScheme is the scheme the client used: Traefik's entry point sets
// X-Forwarded-Proto (and removes one from untrusted clients).
// requestOrigin is the scheme and host r was sent to, as the browser sees
// them: "https://app.example.com".
func requestOrigin(r *http.Request) string {
	return requestScheme(r) + "://" + r.Host
}

// requestURL is the URL r was sent to, as the browser sees it.
func requestURL(r *http.Request) string {
	return requestOrigin(r) + r.URL.RequestURI()
}

func requestScheme(r *http.Request) string {
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		return p
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
