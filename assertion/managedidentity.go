package assertion

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Platforms a managed identity token can come from, chosen from the
// environment by Parse.
const (
	PlatformAppService = "App Service" // also Functions and Container Apps
	PlatformArc        = "Azure Arc"
	PlatformIMDS       = "IMDS" // VMs, scale sets, AKS nodes
)

// Defaults for managed identity endpoints.
const (
	DefaultIMDSHost    = "http://169.254.169.254"
	DefaultArcTokenDir = "/var/opt/azcmagent/tokens"
	imdsTokenPath      = "/metadata/identity/oauth2/token"
	maxArcKeySize      = 4096
)

// Retry policy for managed identity endpoints: IMDS answers 404 while an
// identity is being assigned, 410 while it updates, 429 when throttling.
const (
	maxAttempts   = 4
	firstRetry    = 500 * time.Millisecond
	maxRetryDelay = 4 * time.Second
)

// ManagedIdentity gets an Azure managed identity token for Resource. Only a
// user-assigned identity (ClientID set) can back a federated credential on an
// app registration; Azure Arc has only the system-assigned one.
type ManagedIdentity struct {
	Platform       string // PlatformAppService, PlatformArc or PlatformIMDS
	Endpoint       string // token URL: IDENTITY_ENDPOINT, or the IMDS host + /metadata/identity/oauth2/token
	IdentityHeader string // App Service: the X-IDENTITY-HEADER secret (IDENTITY_HEADER)
	ClientID       string // user-assigned identity; "" for the system-assigned one
	Resource       string // audience, e.g. api://AzureADTokenExchange

	// ArcTokenDir is the only folder whose .key files an Arc challenge may
	// name ("" means DefaultArcTokenDir): a forged challenge must not make
	// the plugin read and send any file.
	ArcTokenDir string

	HTTPClient *http.Client // nil: a shared client that uses no proxy
	// RequestTimeout bounds each request (zero: DefaultRequestTimeout); a
	// Fetch, retries included, is bounded by three times it.
	RequestTimeout time.Duration
	// Sleep waits between retries (nil: a timer that honours ctx). Tests
	// replace it so they do not wait.
	Sleep func(ctx context.Context, d time.Duration) error
}

// managedIdentityFromEnv picks the platform from the environment as the Azure
// SDKs do.
func managedIdentityFromEnv(clientID, resource string, getenv func(string) string) (*ManagedIdentity, error) {
	m := &ManagedIdentity{ClientID: clientID, Resource: resource}
	endpoint := getenv("IDENTITY_ENDPOINT")
	switch {
	case endpoint != "" && getenv("IDENTITY_HEADER") != "":
		if getenv("IDENTITY_SERVER_THUMBPRINT") != "" {
			return nil, errors.New("assertion: AzureManagedIdentity: Service Fabric managed identity (IDENTITY_SERVER_THUMBPRINT is set) " +
				"is not supported; use AzureWorkloadIdentity or a client secret")
		}
		m.Platform = PlatformAppService
		m.IdentityHeader = getenv("IDENTITY_HEADER")
	case endpoint != "" && getenv("IMDS_ENDPOINT") != "":
		if clientID != "" {
			return nil, errors.New("assertion: AzureManagedIdentity=" + clientID + ": Azure Arc (IDENTITY_ENDPOINT and IMDS_ENDPOINT are set) " +
				"has only the system-assigned identity; write AzureManagedIdentity without a client ID")
		}
		m.Platform = PlatformArc
	default:
		m.Platform = PlatformIMDS
		host := strings.TrimRight(getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST"), "/")
		if host == "" {
			host = DefaultIMDSHost
		}
		endpoint = host + imdsTokenPath
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("assertion: AzureManagedIdentity: the %s endpoint %q is not an http(s) URL; check IDENTITY_ENDPOINT "+
			"or AZURE_POD_IDENTITY_AUTHORITY_HOST", m.Platform, endpoint)
	}
	m.Endpoint = endpoint
	return m, nil
}

// String describes the source for logs, without secrets.
func (m *ManagedIdentity) String() string {
	id := "system-assigned"
	if m.ClientID != "" {
		id = "client ID " + m.ClientID
	}
	return fmt.Sprintf("managed identity (%s %s, %s, resource %s)", m.Platform, m.Endpoint, id, m.Resource)
}

func (m *ManagedIdentity) name() string { return "managed identity (" + m.Platform + ")" }

// Fetch gets a token, retrying 404, 410, 429 and 5xx answers with bounded
// exponential backoff; other answers are final.
func (m *ManagedIdentity) Fetch(ctx context.Context) (Token, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout(m.RequestTimeout))
	defer cancel()
	delay := firstRetry
	for attempt := 1; ; attempt++ {
		r, err := m.attempt(ctx)
		if err != nil {
			return Token{}, err
		}
		if r.status == http.StatusOK {
			return tokenFromJSON(m.name(), r.body, time.Now())
		}
		if attempt >= maxAttempts || !retryable(r.status) {
			return Token{}, m.refusal(r, attempt)
		}
		wait := delay
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err == nil && time.Duration(s)*time.Second > wait {
			wait = time.Duration(s) * time.Second
		}
		if wait > maxRetryDelay {
			wait = maxRetryDelay
		}
		if err := m.sleep(ctx, wait); err != nil {
			return Token{}, unavailable(m.name(), "waiting to retry", "", err)
		}
		delay *= 2
	}
}

// retryable says whether a managed identity answer may pass on its own.
func retryable(status int) bool {
	return status == http.StatusNotFound || status == http.StatusGone || status == http.StatusTooManyRequests || status >= 500
}

func (m *ManagedIdentity) sleep(ctx context.Context, d time.Duration) error {
	if m.Sleep != nil {
		return m.Sleep(ctx, d)
	}
	// Polled, not selected: see waitUntil.
	until := time.Now().Add(d)
	return waitUntil(ctx, func() bool { return !time.Now().Before(until) })
}

// attempt sends one token request (for Arc: the challenge and the answer).
func (m *ManagedIdentity) attempt(ctx context.Context) (*response, error) {
	q := url.Values{}
	q.Set("resource", m.Resource)
	if m.ClientID != "" {
		q.Set("client_id", m.ClientID)
	}
	header := http.Header{}
	switch m.Platform {
	case PlatformAppService:
		q.Set("api-version", "2019-08-01")
		header.Set("X-IDENTITY-HEADER", m.IdentityHeader)
	case PlatformArc:
		q.Set("api-version", "2020-06-01")
		header.Set("Metadata", "true")
	default:
		q.Set("api-version", "2018-02-01")
		header.Set("Metadata", "true")
	}
	r, err := m.get(ctx, q, header)
	if err != nil || m.Platform != PlatformArc || r.status != http.StatusUnauthorized {
		return r, err
	}
	// Arc proves the caller may read a root/himds-only file: it names a
	// fresh key file in the challenge and expects its contents back.
	key, err := m.arcKey(r.header.Get("WWW-Authenticate"))
	if err != nil {
		return nil, err
	}
	header.Set("Authorization", "Basic "+key)
	return m.get(ctx, q, header)
}

func (m *ManagedIdentity) get(ctx context.Context, q url.Values, header http.Header) (*response, error) {
	u := m.Endpoint
	if strings.Contains(u, "?") {
		u += "&" + q.Encode()
	} else {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("assertion: %s: %v", m.name(), err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	r, err := send(clientOr(m.HTTPClient, directClient), req, m.RequestTimeout)
	if err != nil {
		return nil, unavailable(m.name(), "requesting a token from "+m.Endpoint, m.unreachableHint(), err)
	}
	return r, nil
}

// arcKey reads the key file an Arc challenge names, after checking that it is
// a .key file directly inside the allowed folder and of bounded size.
func (m *ManagedIdentity) arcKey(challenge string) (string, error) {
	const prefix = "basic realm="
	if len(challenge) <= len(prefix) || !strings.EqualFold(challenge[:len(prefix)], prefix) {
		return "", fmt.Errorf("assertion: %s: the 401 answer has no WWW-Authenticate: Basic realm=<key file> challenge (got %q); "+
			"is IDENTITY_ENDPOINT the Arc agent (azcmagent)?", m.name(), challenge)
	}
	path := strings.Trim(strings.TrimSpace(challenge[len(prefix):]), `"`)
	dir := m.ArcTokenDir
	if dir == "" {
		dir = DefaultArcTokenDir
	}
	clean := filepath.Clean(path)
	if !filepath.IsAbs(path) || filepath.Ext(clean) != ".key" || filepath.Dir(clean) != filepath.Clean(dir) {
		return "", fmt.Errorf("assertion: %s: the challenge names %q, which is not a .key file in %s; refusing to read it", m.name(), path, dir)
	}
	info, err := os.Lstat(clean)
	if err != nil {
		return "", fmt.Errorf("assertion: %s: reading the challenge key: %v; Traefik must run as root or as a member of the himds group", m.name(), err)
	}
	if !info.Mode().IsRegular() || info.Size() > maxArcKeySize {
		return "", fmt.Errorf("assertion: %s: the challenge key %s is not a regular file of at most %d bytes", m.name(), clean, maxArcKeySize)
	}
	b, err := os.ReadFile(clean)
	if err != nil {
		return "", fmt.Errorf("assertion: %s: reading the challenge key: %v; Traefik must run as root or as a member of the himds group", m.name(), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// refusal turns a final non-200 answer into an Error with a hint.
func (m *ManagedIdentity) refusal(r *response, attempts int) error {
	e := serviceError(m.name(), r, "")
	desc := strings.ToLower(e.Description)
	switch {
	case r.status == http.StatusBadRequest && m.ClientID != "" &&
		(strings.Contains(desc, "identity not found") || strings.Contains(desc, "unable to load")):
		e.Hint = "no managed identity with client ID " + m.ClientID + " is assigned to this resource; " +
			"assign it (az vm identity assign, az webapp identity assign, ...) or fix the client ID"
	case r.status == http.StatusBadRequest && m.Platform == PlatformIMDS && m.ClientID == "":
		e.Hint = "this resource may have no system-assigned identity; assign a user-assigned identity and write AzureManagedIdentity=<its client ID>"
	case r.status == http.StatusUnauthorized && m.Platform == PlatformArc:
		e.Hint = "the Arc agent refused the challenge key"
	case m.Platform == PlatformAppService && r.status >= 400 && r.status < 404:
		e.Hint = "check that the managed identity is enabled on the app and that IDENTITY_HEADER is current (restart after it rotates)"
	case retryable(r.status):
		e.Hint = fmt.Sprintf("gave up after %d attempts; the managed identity endpoint is failing or the identity is still being assigned", attempts)
	default:
		e.Hint = "check that the managed identity is enabled on this resource and the client ID is right"
	}
	return e
}

func (m *ManagedIdentity) unreachableHint() string {
	switch m.Platform {
	case PlatformIMDS:
		return "is this an Azure VM, scale set or AKS node? Outside Azure, use another clientAssertion source"
	case PlatformArc:
		return "is the Azure Connected Machine agent (himds) running?"
	}
	return "is the managed identity enabled on this app (IDENTITY_ENDPOINT)?"
}
