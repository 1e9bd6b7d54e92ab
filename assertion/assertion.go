// Package assertion gets the client assertions that replace a client secret
// when the plugin's app registration trusts a federated identity credential.
//
// An assertion is a short-lived JWT from a workload identity: an Azure managed
// identity, Kubernetes workload identity, a Kubernetes service account token or
// tsiam (Tailscale). The plugin sends it as client_assertion on its token
// requests to Entra ID. Parse turns the plugin option
// microsoftEntraID.clientAssertion into a Source without network I/O; a Cache
// (usually the one from Shared) fetches lazily and reuses the assertion until
// shortly before it expires.
package assertion

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Audiences of the assertion, by cloud. A federated identity credential lists
// the one of its cloud; Audience picks it from the authority host.
const (
	AudiencePublic = "api://AzureADTokenExchange"
	AudienceUSGov  = "api://AzureADTokenExchangeUSGov"
	AudienceChina  = "api://AzureADTokenExchangeChina"
)

// DefaultAuthorityHost is Entra ID's public cloud, used when no authority
// host is configured.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

// Token is an assertion and the time it stops being valid. A zero Expires
// means the source could not tell; Cache then keeps it for a short while.
type Token struct {
	Value   string
	Expires time.Time
}

// Source fetches a fresh assertion. Fetch is safe for concurrent use once the
// source's fields are set; it does no caching (see Cache).
type Source interface {
	Fetch(ctx context.Context) (Token, error)
}

// ErrUnavailable is wrapped (with fmt.Errorf and %w) by errors that may pass
// on their own: the service behind a source could not be reached, timed out,
// or answered something that is not a token. Refusals are *Error.
var ErrUnavailable = errors.New("assertion: source unavailable")

// Error is a refusal from the service behind a source (managed identity
// endpoint, Entra ID for workload identity, tsiam), with the service's own
// code and description and a hint about what to check.
type Error struct {
	Source        string // the source, e.g. "managed identity (IMDS)", "workload identity", "tsiam"
	StatusCode    int
	Code          string // the service's error code, e.g. "invalid_client", "audience_not_permitted"
	Description   string // first line of the service's description
	ErrorCodes    []int  // Entra ID's error_codes (AADSTS numbers)
	TraceID       string
	CorrelationID string
	Hint          string // what to check, for a person reading the log
}

// Error reads like "assertion: tsiam: HTTP 403 audience_not_permitted: ...; check ...".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("assertion: ")
	b.WriteString(e.Source)
	b.WriteString(": HTTP ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.TraceID != "" {
		b.WriteString(" (trace ID ")
		b.WriteString(e.TraceID)
		b.WriteString(")")
	}
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Temporary reports whether the refusal may pass on its own (429, 5xx).
// Error has no Unwrap: under Yaegi errors.Is ignores an interpreted Unwrap.
func (e *Error) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// AsError finds an *Error in err's chain. Use it rather than errors.As,
// which panics under Yaegi for interpreted error types.
func AsError(err error) (*Error, bool) {
	for i := 0; err != nil && i < 100; i++ {
		if e, ok := err.(*Error); ok {
			return e, true
		}
		err = errors.Unwrap(err)
	}
	return nil, false
}

// AADSTS returns "AADSTS70021" for Entra ID's first error code, or "".
func (e *Error) AADSTS() string {
	if len(e.ErrorCodes) == 0 {
		return ""
	}
	return "AADSTS" + strconv.Itoa(e.ErrorCodes[0])
}

// Audience returns the assertion audience for an Entra ID authority host:
// the US Government and China clouds have their own.
func Audience(authorityHost string) string {
	host := authorityHost
	if u, err := url.Parse(strings.TrimSpace(authorityHost)); err == nil && u.Host != "" {
		host = u.Hostname()
	}
	switch strings.ToLower(strings.TrimSuffix(host, ".")) {
	case "login.microsoftonline.us", "login.usgovcloudapi.net":
		return AudienceUSGov
	case "login.partner.microsoftonline.cn", "login.chinacloudapi.cn":
		return AudienceChina
	}
	return AudiencePublic
}

// validSources names the valid values of the clientAssertion option, for messages.
const validSources = "AzureManagedIdentity, AzureManagedIdentity=<client-id>, AzureWorkloadIdentity, " +
	"KubernetesServiceAccountToken, KubernetesServiceAccountToken=<path>, tsiam=<endpoint>"

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Parse turns the clientAssertion option into a Source. The part before '='
// is matched case-insensitively. authorityHost is the plugin's Entra ID
// authority host ("" for the public cloud); it chooses the audience. getenv
// reads the environment (nil: os.Getenv). Parse validates everything it can
// and does no network or file I/O.
func Parse(value, authorityHost string, getenv func(string) string) (Source, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	value = strings.TrimSpace(value)
	name, arg, hasArg := strings.Cut(value, "=")
	name = strings.TrimSpace(name)
	arg = strings.TrimSpace(arg)
	authority, err := normalizeAuthority(authorityHost)
	if err != nil {
		return nil, err
	}
	audience := Audience(authority)

	switch strings.ToLower(name) {
	case "azuremanagedidentity":
		if hasArg && arg == "" {
			return nil, errors.New("assertion: AzureManagedIdentity= needs the client ID of a user-assigned managed identity " +
				"(AzureManagedIdentity=00000000-0000-0000-0000-000000000000), or no '=' for the system-assigned identity")
		}
		if hasArg && !guidPattern.MatchString(arg) {
			return nil, fmt.Errorf("assertion: AzureManagedIdentity=%s: %q is not a client ID; use the managed identity's "+
				"client ID, a GUID such as 00000000-0000-0000-0000-000000000000 (az identity show --query clientId)", arg, arg)
		}
		m, err := managedIdentityFromEnv(arg, audience, getenv)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return m, nil
	case "azureworkloadidentity":
		if hasArg {
			return nil, errors.New("assertion: AzureWorkloadIdentity takes no value; it reads AZURE_CLIENT_ID, AZURE_TENANT_ID " +
				"and AZURE_FEDERATED_TOKEN_FILE, which the workload identity webhook sets")
		}
		w, err := workloadIdentityFromEnv(authority, audience, getenv)
		if err != nil {
			return nil, err
		}
		return w, nil
	case "kubernetesserviceaccounttoken":
		path := DefaultServiceAccountTokenPath
		if hasArg {
			if arg == "" {
				return nil, errors.New("assertion: KubernetesServiceAccountToken= needs the path of a projected service account " +
					"token, e.g. KubernetesServiceAccountToken=/var/run/secrets/tokens/entra, or no '=' for " + DefaultServiceAccountTokenPath)
			}
			if !strings.HasPrefix(arg, "/") {
				return nil, fmt.Errorf("assertion: KubernetesServiceAccountToken=%s: the path must be absolute", arg)
			}
			path = arg
		}
		return &ServiceAccountToken{Path: path, Audience: audience}, nil
	case "tsiam":
		if !hasArg || arg == "" {
			return nil, errors.New("assertion: tsiam needs its endpoint, e.g. tsiam=https://tsiam.example.ts.net")
		}
		u, err := url.Parse(arg)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("assertion: tsiam=%s: the endpoint must be an http(s) URL without query, e.g. tsiam=https://tsiam.example.ts.net", arg)
		}
		return &Tsiam{Endpoint: strings.TrimRight(arg, "/"), Resource: audience}, nil
	case "":
		return nil, errors.New("assertion: no source given; use one of " + validSources)
	}
	return nil, fmt.Errorf("assertion: unknown source %q; use one of %s", name, validSources)
}

// normalizeAuthority returns the authority host without trailing slash, the
// public cloud when empty.
func normalizeAuthority(host string) (string, error) {
	host = strings.TrimRight(strings.TrimSpace(host), "/")
	if host == "" {
		return DefaultAuthorityHost, nil
	}
	u, err := url.Parse(host)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("assertion: authority host %q is not an http(s) URL, e.g. %s", host, DefaultAuthorityHost)
	}
	return host, nil
}

// Limits on what is read from the network and from token files: tokens are a
// few kilobytes, so anything much larger is a misconfiguration.
const (
	maxResponseSize  = 1 << 20
	maxTokenFileSize = 64 << 10
)

// DefaultRequestTimeout bounds each HTTP request of a source whose
// RequestTimeout is zero.
const DefaultRequestTimeout = 10 * time.Second

// requestTimeout is the bound of each HTTP request of a source.
func requestTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultRequestTimeout
	}
	return d
}

// fetchTimeout bounds a whole Fetch, which may retry: three requests' worth.
func fetchTimeout(d time.Duration) time.Duration {
	return 3 * requestTimeout(d)
}

// Default HTTP clients, shared by all sources whose HTTPClient is nil so that
// connections are reused. Local metadata endpoints (IMDS, App Service, Arc,
// tsiam over Tailscale) must not go through an HTTP proxy; Entra ID may have to.
// They carry no timeout of their own: send bounds each request with the
// source's RequestTimeout.
var (
	directClient = newHTTPClient(false)
	proxyClient  = newHTTPClient(true)
)

func newHTTPClient(useProxy bool) *http.Client {
	var transport http.RoundTripper = http.DefaultTransport
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		c := t.Clone()
		if !useProxy {
			c.Proxy = nil
		}
		transport = c
	}
	return &http.Client{Transport: transport}
}

// clientOr returns c, or def when c is nil.
func clientOr(c, def *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return def
}

// response is an HTTP answer read in full (bounded).
type response struct {
	status int
	header http.Header
	body   []byte
}

// send runs req and reads at most maxResponseSize bytes of the body, all
// within timeout (a source's RequestTimeout; zero: DefaultRequestTimeout).
func send(client *http.Client, req *http.Request, timeout time.Duration) (*response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), requestTimeout(timeout))
	defer cancel()
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxResponseSize {
		return nil, fmt.Errorf("response larger than %d bytes", maxResponseSize)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// unavailable wraps a transport failure or a garbage answer so that both
// ErrUnavailable and err (e.g. context.DeadlineExceeded) are in its chain.
// Two %w verbs give a stdlib wrapper, which errors.Is follows under Yaegi too.
func unavailable(source, what, hint string, err error) error {
	if hint != "" {
		return fmt.Errorf("%w: %s: %s: %w; %s", ErrUnavailable, source, what, err, hint)
	}
	return fmt.Errorf("%w: %s: %s: %w", ErrUnavailable, source, what, err)
}

// serviceError builds an Error from a non-200 answer, reading the error
// shapes of Entra ID and IMDS ({error, error_description, error_codes, ...}),
// tsiam ({code, message}) and App Service ({statusCode, message}).
func serviceError(source string, r *response, hint string) *Error {
	e := &Error{Source: source, StatusCode: r.status, Hint: hint}
	var body struct {
		Error            interface{} `json:"error"`
		ErrorDescription string      `json:"error_description"`
		ErrorCodes       []int       `json:"error_codes"`
		TraceID          string      `json:"trace_id"`
		CorrelationID    string      `json:"correlation_id"`
		Code             string      `json:"code"`
		Message          string      `json:"message"`
	}
	if json.Unmarshal(r.body, &body) == nil {
		switch v := body.Error.(type) {
		case string:
			e.Code = v
		case map[string]interface{}: // {"error":{"code":..,"message":..}}
			if s, ok := v["code"].(string); ok {
				e.Code = s
			}
			if s, ok := v["message"].(string); ok {
				body.Message = s
			}
		}
		if e.Code == "" {
			e.Code = body.Code
		}
		e.Description = body.ErrorDescription
		if e.Description == "" {
			e.Description = body.Message
		}
		e.ErrorCodes = body.ErrorCodes
		e.TraceID = body.TraceID
		e.CorrelationID = body.CorrelationID
	} else if text := strings.TrimSpace(string(r.body)); text != "" && len(text) <= 200 {
		e.Description = text
	}
	e.Description = firstLine(e.Description)
	return e
}

// firstLine keeps a description short: Entra ID appends trace and
// correlation IDs and a timestamp on later lines.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// tokenFromJSON reads an access token and its expiry from a token response.
// Expiry fields may be JSON strings or numbers: expires_on (Unix seconds) is
// preferred, then expires_in (seconds from now), then the JWT's exp claim.
func tokenFromJSON(source string, body []byte, now time.Time) (Token, error) {
	var m map[string]interface{}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return Token{}, unavailable(source, "reading the token response", "", fmt.Errorf("not JSON: %v", err))
	}
	value, _ := m["access_token"].(string)
	if value == "" {
		return Token{}, unavailable(source, "reading the token response", "", errors.New("no access_token"))
	}
	tok := Token{Value: value}
	if v, ok := m["expires_on"]; ok {
		n, err := seconds(v)
		if err != nil {
			return Token{}, unavailable(source, "reading the token response", "", fmt.Errorf("expires_on: %v", err))
		}
		tok.Expires = time.Unix(n, 0)
	} else if v, ok := m["expires_in"]; ok {
		n, err := seconds(v)
		if err != nil {
			return Token{}, unavailable(source, "reading the token response", "", fmt.Errorf("expires_in: %v", err))
		}
		tok.Expires = now.Add(time.Duration(n) * time.Second)
	} else if claims, err := decodeClaims(value); err == nil {
		tok.Expires, _ = claimTime(claims, "exp")
	}
	return tok, nil
}

// seconds reads a count of seconds sent as a JSON number or a string.
func seconds(v interface{}) (int64, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		return int64(x), nil
	default:
		return 0, fmt.Errorf("%v is neither a number nor a string", v)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1<<40 {
		return 0, fmt.Errorf("%q is not a number of seconds", s)
	}
	return int64(f), nil
}

// decodeClaims decodes the payload of a compact JWT without verifying it:
// only to read exp and, in messages, iss, sub and aud.
func decodeClaims(raw string) (map[string]interface{}, error) {
	if len(raw) > maxTokenFileSize {
		return nil, errors.New("token too large")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT (expected three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("not a JWT: payload: %v", err)
	}
	var claims map[string]interface{}
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("not a JWT: payload: %v", err)
	}
	return claims, nil
}

// claimTime reads a NumericDate claim.
func claimTime(claims map[string]interface{}, name string) (time.Time, bool) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false
	}
	n, err := seconds(v)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// claimStrings reads a claim that is a string or an array of strings.
func claimStrings(claims map[string]interface{}, name string) []string {
	switch v := claims[name].(type) {
	case string:
		return []string{v}
	case []interface{}:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// describeAssertion says what Entra ID matches a federated identity credential
// against: the assertion's issuer, subject and audience.
func describeAssertion(raw string) string {
	claims, err := decodeClaims(raw)
	if err != nil {
		return ""
	}
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	return fmt.Sprintf("issuer %q, subject %q, audience %q", iss, sub, strings.Join(claimStrings(claims, "aud"), ","))
}

// readTokenFile reads a token file, bounded, and trims it.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxTokenFileSize {
		return "", fmt.Errorf("%s is larger than %d bytes, not a token", path, maxTokenFileSize)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}
