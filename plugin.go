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
	// audiences (the API's application ID URI and/or client ID).
	APIAudience []string `json:"apiAudience,omitempty"`
	// RequiredScopes: a delegated bearer token must carry one of them.
	RequiredScopes []string `json:"requiredScopes,omitempty"`
	// APIAcceptV1Tokens also accepts v1.0 access tokens (issuer
	// https://sts.windows.net/{tid}/).
	APIAcceptV1Tokens bool `json:"apiAcceptV1Tokens,omitempty"`
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
	// AuthorityHost is the Entra ID sign-in host of the cloud in use.
	AuthorityHost string `json:"authorityHost,omitempty"`
	// Scopes requested at sign-in, separated by spaces or commas.
	Scopes []string `json:"scopes,omitempty"`
	// AllowedTenants lists the tenant IDs a multi-tenant application
	// (tenantID organizations or common) accepts.
	AllowedTenants []string `json:"allowedTenants,omitempty"`
}

// Session configures the sealed session cookie.
type Session struct {
	// Secret seals the cookies; at least 32 characters. Or SecretFile.
	Secret     string `json:"secret,omitempty"`
	SecretFile string `json:"secretFile,omitempty"`
	// PreviousSecrets still open cookies but never seal new ones.
	PreviousSecrets []string `json:"previousSecrets,omitempty"`
	// Lifetime of a session, as a Go duration ("2h", "30m").
	Lifetime string `json:"lifetime,omitempty"`
	// CookieName defaults to "entraauth_<portal>".
	CookieName string `json:"cookieName,omitempty"`
	// CookieDomain shares the session across subdomains (e.g. example.com).
	CookieDomain string `json:"cookieDomain,omitempty"`
	// InsecureCookies drops the Secure attribute: plain-HTTP development only.
	InsecureCookies bool `json:"insecureCookies,omitempty"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{
		Portal: "main",
		MicrosoftEntraID: MicrosoftEntraID{
			AuthorityHost: "https://login.microsoftonline.com",
			Scopes:        []string{"openid", "profile", "email"},
		},
		Session: Session{Lifetime: "2h"},
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

	portal       string
	prefix       string // "/portals/<portal>/"
	callbackPath string
	logoutPath   string
	profilePath  string

	lifetime    time.Duration
	headers     []headerClaim // identity headers set on signed-in requests
	stripped    []string      // identity headers removed from every request
	strippedSet map[string]bool
	rules       rules
	exclusions  exclusions
	// api accepts bearer tokens when set; requiredScopes bound delegated ones.
	api            *entraid.AccessPolicy
	requiredScopes []string
	// sessionKey names the session cookie and secret, which routers share.
	sessionKey   string
	cookie       session.CookieOptions // the session cookie
	loginPrefix  string                // login-state cookie names start with this
	authHost     string
	cookieDomain string
	insecure     bool
	// cache is this middleware's scope in the session cache.
	cache *cacheScope
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
	return newMiddleware(next, name, s, client), nil
}

func newMiddleware(next http.Handler, name string, s *settings, client *entraid.Client) *Middleware {
	prefix := s.portalPrefix()
	m := &Middleware{
		next:         next,
		name:         name,
		client:       client,
		sealer:       s.sealer,
		assertions:   s.assertions,
		log:          log.New(os.Stderr, "entraauth["+name+"]: ", 0),
		now:          time.Now,
		until:        time.Until,
		portal:       s.portal,
		prefix:       prefix,
		callbackPath: prefix + "oauth2/callback",
		logoutPath:   prefix + "logout",
		profilePath:  prefix + "profile",
		lifetime:     s.lifetime,
		headers:      s.headers,
		stripped:     strippedHeaders(s.headers),
		rules:        s.rules,
		exclusions:   s.exclusions,
		api:          s.api,
		sessionKey:   s.sessionKey,

		requiredScopes: s.requiredScopes,
		loginPrefix:    s.cookieName + "_login_",
		authHost:       s.authHost,
		cookieDomain:   s.cookieDomain,
		insecure:       s.insecureCookies,
	}
	m.strippedSet = map[string]bool{}
	for _, name := range m.stripped {
		m.strippedSet[name] = true
	}
	m.cookie = session.CookieOptions{
		Name:     s.cookieName,
		Domain:   s.cookieDomain,
		Path:     "/",
		Secure:   !s.insecureCookies,
		MaxAge:   int(s.lifetime / time.Second),
		SameSite: http.SameSiteLaxMode,
	}
	m.cache = newCacheScope(m)
	return m
}

// ServeHTTP answers the portal's own endpoints and guards everything else.
func (m *Middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if passCached(m, m.cache, r) || m.authorize(w, r) {
		m.next.ServeHTTP(w, r)
	}
}

// authorize prepares r for the upstream and reports true, or answers the
// request itself and reports false. A panic in it becomes a 500 for this
// request only: a plugin panic must never reach Traefik.
func (m *Middleware) authorize(w http.ResponseWriter, r *http.Request) (pass bool) {
	defer func() {
		if v := recover(); v != nil {
			m.log.Printf("internal error on %s %s: %v", r.Method, r.URL.Path, v)
			m.writeError(w, r, internalProblem())
			pass = false
		}
	}()
	m.stripIdentityHeaders(r.Header)
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
		}
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
	s := m.openSession(r)
	if s == nil || (s.GroupsPending && len(m.rules.groups) > 0) {
		// A pending groups overage: this middleware needs the groups, and
		// its sign-in resolves them.
		m.challenge(w, r)
		return false
	}
	if !m.rules.empty() {
		if ok, why := m.rules.allow(s); !ok {
			m.forbidden(w, r, s, why)
			return false
		}
	}
	values := m.identityValues(s)
	m.setIdentityHeaders(r.Header, values)
	rememberSignedIn(m, m.cache, r, s, values)
	return true
}

// portalPaths are the paths authorize answers itself, whatever the
// session: passCached leaves them to it.
func (m *Middleware) portalPaths() []string {
	return []string{m.callbackPath, m.logoutPath, m.profilePath}
}

// challenge starts a sign-in for a browser navigation and answers 401 to
// anything else (API calls, fetches, non-GET requests), which could not
// follow a redirect to the sign-in page anyway.
func (m *Middleware) challenge(w http.ResponseWriter, r *http.Request) {
	if isNavigation(r) {
		m.startLogin(w, r)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+m.portal+`"`)
	m.writeError(w, r, &problem{
		Status:  http.StatusUnauthorized,
		Title:   "Sign-in required",
		Message: "This resource needs a signed-in user. Open it in a browser to sign in.",
		Code:    "unauthenticated",
	})
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
func requestScheme(r *http.Request) string {
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		return p
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
