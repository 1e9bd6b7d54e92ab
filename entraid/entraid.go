// Package entraid signs users in with Microsoft Entra ID (v2 endpoints): it
// discovers a tenant's endpoints, builds authorization URLs with PKCE,
// redeems codes and verifies ID tokens.
//
// A Client does no network I/O until first needed and starts no goroutines:
// discovery and signing keys are fetched lazily, cached, and refreshed under
// a lock, so that Traefik can create clients on every reload and drop them.
package entraid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// DefaultAuthorityHost is the public cloud's authority host.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

const (
	// metadataTTL and keysTTL bound how long a good document is used before
	// it is fetched again; Entra ID announces key rollover well ahead.
	metadataTTL = 24 * time.Hour
	keysTTL     = 24 * time.Hour
	// failureTTL is how long a failed fetch is remembered: long enough that an
	// outage does not turn every request into a fetch, short enough to recover
	// on its own.
	failureTTL                = 5 * time.Second
	defaultKeyRefetchInterval = time.Minute
	defaultHTTPTimeout        = 10 * time.Second
	// maxResponseSize bounds what is read from Entra ID; real documents are a
	// few kilobytes.
	maxResponseSize = 1 << 20
)

var (
	// ErrUnavailable means Entra ID could not be used: unreachable, timed
	// out, a 5xx, or an answer that is not what Entra ID sends. It is wrapped
	// with the detail.
	ErrUnavailable = errors.New("entraid: Entra ID unavailable")
	// ErrInvalidToken means an ID token failed a check; the wrapping error
	// names the check.
	ErrInvalidToken = errors.New("entraid: invalid ID token")
	// ErrTenantNotAllowed is wrapped, beside ErrInvalidToken, when a
	// multi-tenant app gets a genuine token from a tenant that is not in
	// AllowedTenants: signing in again cannot help that user.
	ErrTenantNotAllowed = errors.New("tenant not allowed")
)

// Config describes one app registration in one tenant. Fields are checked
// by NewClient.
type Config struct {
	// AuthorityHost is the cloud's login host, e.g. the default
	// "https://login.microsoftonline.com": one of Microsoft's sign-in hosts
	// (see CheckAuthorityHost), or a loopback address for tests. A trailing
	// slash is allowed.
	AuthorityHost string
	// Tenant is a tenant ID (GUID), a verified domain such as
	// "contoso.onmicrosoft.com", or "organizations" or "common" for a
	// multi-tenant app (then AllowedTenants is required). "consumers" is
	// refused: its users are personal Microsoft accounts, all of the one
	// tenant 9188040d-6c67-4c5b-b112-36a304b66dad, and its issuer is that
	// tenant's, not the multi-tenant template.
	Tenant string
	// AllowedTenants lists the tenant IDs whose users may sign in when Tenant
	// is multi-tenant.
	AllowedTenants []string
	// ClientID is the app registration's Application (client) ID.
	ClientID string
	// Scopes requested at sign-in; must include "openid". Default: openid
	// profile email.
	Scopes []string
	// Credential authenticates the app at the token endpoint.
	Credential Credential
	// HTTPClient is used for every call to Entra ID. Nil means a client with
	// a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// KeyRefetchInterval is the minimum time between JWKS fetches caused by
	// a token signed with an unknown key. Zero means one minute.
	KeyRefetchInterval time.Duration
}

// Client talks to one tenant for one app. It is safe for concurrent use.
type Client struct {
	host        string // authority host: scheme://host, lower case
	cloud       *cloud // nil for a loopback test tenant
	tenant      string // as configured, lower-cased
	tenantKind  tenantKind
	allowed     map[string]bool
	clientID    string
	scope       string
	credential  Credential
	http        *http.Client
	now         func() time.Time
	keyRefetch  time.Duration
	metadataURL string

	// Discovery cache; mdSem is a lock that waiters can abandon when their
	// context ends, held during the fetch so concurrent callers share it.
	mdSem      chan struct{}
	md         *Metadata
	mdTenantID string // tid expected in tokens when tenant is a domain
	mdExpires  time.Time
	mdErr      error
	mdErrUntil time.Time

	// Signing key cache, same locking.
	keySem       chan struct{}
	keys         jwt.KeySet
	keysExpires  time.Time
	keysFetched  time.Time // last fetch attempt, for the refetch rate limit
	keyFetches   int64     // fetch attempts so far (atomic), see signingKey
	keysErr      error
	keysErrUntil time.Time
}

type tenantKind int

const (
	tenantGUID tenantKind = iota
	tenantDomain
	tenantMulti
)

// NewClient checks cfg and returns a client. It does no network I/O.
func NewClient(cfg Config) (*Client, error) {
	host, err := CheckAuthorityHost(cfg.AuthorityHost)
	if err != nil {
		return nil, err
	}
	tenant := strings.ToLower(strings.TrimSpace(cfg.Tenant))
	c := &Client{
		host:       host,
		cloud:      cloudOf(host),
		tenant:     tenant,
		clientID:   strings.TrimSpace(cfg.ClientID),
		credential: cfg.Credential,
		http:       cfg.HTTPClient,
		now:        cfg.Now,
		keyRefetch: cfg.KeyRefetchInterval,
		mdSem:      make(chan struct{}, 1),
		keySem:     make(chan struct{}, 1),
	}
	switch {
	case tenant == "":
		return nil, errors.New("entraid: Tenant is required: the Directory (tenant) ID from the app registration's overview page")
	case IsGUID(tenant):
		c.tenantKind = tenantGUID
	case tenant == "organizations" || tenant == "common":
		c.tenantKind = tenantMulti
	case tenant == "consumers":
		return nil, errors.New("entraid: Tenant consumers signs in personal Microsoft accounts only, which belong to no organization: use the tenant ID, or organizations with AllowedTenants")
	case isDomain(tenant):
		c.tenantKind = tenantDomain
	default:
		return nil, fmt.Errorf("entraid: Tenant %q is neither a tenant ID (GUID), a domain, nor organizations or common", cfg.Tenant)
	}
	if c.tenantKind == tenantMulti {
		if len(cfg.AllowedTenants) == 0 {
			return nil, fmt.Errorf("entraid: Tenant %q lets any tenant sign in: list the tenant IDs to accept in AllowedTenants", tenant)
		}
		c.allowed = map[string]bool{}
		for _, t := range cfg.AllowedTenants {
			t = strings.ToLower(strings.TrimSpace(t))
			if !IsGUID(t) {
				return nil, fmt.Errorf("entraid: AllowedTenants entry %q is not a tenant ID (GUID)", t)
			}
			c.allowed[t] = true
		}
	} else if len(cfg.AllowedTenants) > 0 {
		return nil, fmt.Errorf("entraid: AllowedTenants applies only when Tenant is organizations or common, not %q", tenant)
	}
	if c.clientID == "" {
		return nil, errors.New("entraid: ClientID is required: the Application (client) ID from the app registration's overview page")
	}
	if strings.ContainsAny(c.clientID, " \t\r\n/?#&") {
		return nil, fmt.Errorf("entraid: ClientID %q is not an application ID", c.clientID)
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = []string{"openid", "profile", "email"}
	}
	hasOpenID := false
	for _, s := range scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return nil, fmt.Errorf("entraid: Scopes entry %q is empty or contains whitespace: give one scope per entry", s)
		}
		if s == "openid" {
			hasOpenID = true
		}
	}
	if !hasOpenID {
		return nil, fmt.Errorf("entraid: Scopes %q must include openid, or Entra ID issues no ID token", strings.Join(scopes, " "))
	}
	c.scope = strings.Join(scopes, " ")
	if c.credential == nil {
		return nil, errors.New("entraid: Credential is required: a ClientSecret or a ClientAssertion")
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: defaultHTTPTimeout}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.keyRefetch <= 0 {
		c.keyRefetch = defaultKeyRefetchInterval
	}
	c.metadataURL = c.host + "/" + url.PathEscape(c.tenant) + "/v2.0/.well-known/openid-configuration"
	return c, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsGUID reports whether s is a GUID in its 8-4-4-4-12 hex form, the form
// of tenant, client and object IDs.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// isDomain reports whether s looks like a DNS name with at least two labels.
func isDomain(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// semaphores makes acquire's look at a semaphore and its send one step.
// It guards no data and is held for that step only.
var semaphores sync.Mutex

// acquire takes a one-slot semaphore, giving up when ctx ends so that a
// caller waiting behind a slow fetch keeps its own deadline.
//
// It does not select on the semaphore and ctx.Done(): Yaegi v0.16.1 keeps
// one list of cases per select statement, shared by every goroutine
// executing it (interp/run.go, _select), so under concurrent requests one
// waits on another's channels: it gives up with no error, takes another
// client's semaphore or none, and holders overlap or hang. Instead the slot
// is taken when free, with a send that cannot block (only acquire sends,
// under semaphores), and a waiter polls with a growing pause until the slot
// is free or ctx ends.
func acquire(ctx context.Context, sem chan struct{}) error {
	pause := 20 * time.Microsecond
	for {
		semaphores.Lock()
		free := len(sem) < cap(sem)
		if free {
			sem <- struct{}{}
		}
		semaphores.Unlock()
		if free {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		time.Sleep(pause)
		if pause < 2*time.Millisecond {
			pause *= 2
		}
	}
}

// readBody reads a bounded response body.
func readBody(resp *http.Response) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxResponseSize {
		return nil, fmt.Errorf("response larger than %d bytes", maxResponseSize)
	}
	return body, nil
}

// get fetches a JSON document from Entra ID. Every failure is ErrUnavailable.
func (c *Client) get(ctx context.Context, what, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
	}
	defer resp.Body.Close()
	body, err := readBody(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: GET %s: %v", ErrUnavailable, what, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: GET %s: HTTP %d%s", ErrUnavailable, what, u, resp.StatusCode, errorSummary(body))
	}
	return body, nil
}

// Scopes returns the scopes the client requests at sign-in.
func (c *Client) Scopes() []string {
	return strings.Fields(c.scope)
}
