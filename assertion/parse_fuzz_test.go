package assertion_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tfa-plugin/entraauth/assertion"
)

// Fuzz targets for what the clientAssertion option and the services behind
// it hand the plugin. yaegi test ignores Fuzz functions: the Seeds tests
// run the seeds there.

type parseSeed struct{ value, authority, env string }

func parseSeeds() []parseSeed {
	return []parseSeed{
		{"AzureManagedIdentity", "", ""},
		{"azuremanagedidentity=11111111-1111-1111-1111-111111111111", "https://login.microsoftonline.us/", ""},
		{"AzureManagedIdentity=", "", ""},
		{"AzureManagedIdentity=not-a-guid", "", ""},
		{"AzureManagedIdentity", "", "IDENTITY_ENDPOINT=http://127.0.0.1:41234/msi/token\nIDENTITY_HEADER=secret"},
		{"AzureManagedIdentity", "", "IDENTITY_ENDPOINT=http://127.0.0.1:40342/metadata/identity/oauth2/token\nIMDS_ENDPOINT=http://127.0.0.1:40342"},
		{"AzureManagedIdentity", "", "IDENTITY_ENDPOINT=::bad\nIDENTITY_HEADER=x"},
		{"AzureManagedIdentity", "", "AZURE_POD_IDENTITY_AUTHORITY_HOST=javascript:alert(1)"},
		{"AzureManagedIdentity", "", "IDENTITY_ENDPOINT=x\nIDENTITY_HEADER=y\nIDENTITY_SERVER_THUMBPRINT=z"},
		{"AzureWorkloadIdentity", "", "AZURE_CLIENT_ID=a\nAZURE_TENANT_ID=b\nAZURE_FEDERATED_TOKEN_FILE=/t\nAZURE_AUTHORITY_HOST=https://login.partner.microsoftonline.cn/"},
		{"AzureWorkloadIdentity", "", "AZURE_CLIENT_ID=a"},
		{"AzureWorkloadIdentity=x", "", ""},
		{"KubernetesServiceAccountToken", "", ""},
		{"KubernetesServiceAccountToken=/var/run/secrets/tokens/entra", "", ""},
		{"KubernetesServiceAccountToken=relative/path", "", ""},
		{"tsiam=https://tsiam.example.ts.net/", "", ""},
		{"tsiam=https://tsiam.example.ts.net/?x=1", "", ""},
		{"tsiam=ftp://tsiam", "", ""},
		{"tsiam", "", ""},
		{" = ", "", ""},
		{"", "", ""},
		{"Unknown=1", "", ""},
		{"tsiam=https://x", "not a url", ""},
		{"AzureManagedIdentity==", "http://", ""},
	}
}

func envFrom(s string) func(string) string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return func(name string) string { return m[name] }
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// checkParse is the property of Parse: it never panics; an error names
// the package and comes with no source; a source is one of the four kinds,
// with the audience of a known cloud and endpoints that are http(s) URLs.
func checkParse(t *testing.T, value, authority, env string) {
	src, err := assertion.Parse(value, authority, envFrom(env))
	if err != nil {
		if src != nil || !strings.HasPrefix(err.Error(), "assertion: ") {
			t.Fatalf("Parse(%q) = %v, %v", value, src, err)
		}
		return
	}
	audiences := map[string]bool{assertion.AudiencePublic: true, assertion.AudienceUSGov: true, assertion.AudienceChina: true}
	switch s := src.(type) {
	case *assertion.ManagedIdentity:
		if !audiences[s.Resource] || !isHTTPURL(s.Endpoint) || (s.ClientID != "" && len(s.ClientID) != 36) {
			t.Fatalf("Parse(%q) = %+v", value, s)
		}
	case *assertion.WorkloadIdentity:
		if !audiences[strings.TrimSuffix(s.Scope, "/.default")] || !isHTTPURL(s.AuthorityHost) || s.ClientID == "" || s.TenantID == "" || s.TokenFile == "" {
			t.Fatalf("Parse(%q) = %+v", value, s)
		}
	case *assertion.ServiceAccountToken:
		if !audiences[s.Audience] || !strings.HasPrefix(s.Path, "/") {
			t.Fatalf("Parse(%q) = %+v", value, s)
		}
	case *assertion.Tsiam:
		if !audiences[s.Resource] || !isHTTPURL(s.Endpoint) || strings.ContainsAny(s.Endpoint, "?#") {
			t.Fatalf("Parse(%q) = %+v", value, s)
		}
	default:
		t.Fatalf("Parse(%q) returned a %T", value, src)
	}
}

func TestParseSeeds(t *testing.T) {
	for _, s := range parseSeeds() {
		checkParse(t, s.value, s.authority, s.env)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds() {
		f.Add(s.value, s.authority, s.env)
	}
	f.Fuzz(func(t *testing.T, value, authority, env string) {
		checkParse(t, value, authority, env)
	})
}

// answerServer answers every request with the status and body set last.
type answerServer struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int
	body   string
}

func newAnswerServer(tb testing.TB) *answerServer {
	a := &answerServer{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		status := a.status
		body := a.body
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	tb.Cleanup(func() { a.srv.Close() })
	return a
}

func (a *answerServer) set(status int, body string) {
	a.mu.Lock()
	a.status = status
	a.body = body
	a.mu.Unlock()
}

type answerSeed struct {
	status int
	body   string
}

func answerSeeds() []answerSeed {
	return []answerSeed{
		{200, `{"access_token":"eyJ.e30.","expires_in":"300","expires_on":"1700000300","token_type":"Bearer"}`},
		{200, `{"access_token":"x","expires_in":300}`},
		{200, `{"access_token":"x","expires_on":1.7e9}`},
		{200, `{"access_token":"x","expires_on":"soon"}`},
		{200, `{"access_token":"a.eyJleHAiOiIxNzAwMDAwMDAwIn0.b"}`},
		{200, `{"access_token":""}`},
		{200, `{"access_token":7}`},
		{200, `[]`},
		{200, `<html>`},
		{400, `{"code":"bad_request","message":"no\r\nway"}`},
		{403, `{"code":"audience_not_allowed","message":"Audience is not allowed"}`},
		{429, ``},
		{500, `{"error":{"code":"x","message":"y"}}`},
		{503, `{"error":"server_error","error_description":"down","error_codes":[1,"2"]}`},
	}
}

// checkAnswer is the property of reading a token service's answer (tsiam's,
// whose reader the managed identity sources share): never a panic; a token
// only from a 200 with a non-empty access_token; a refusal as *Error, an
// unreadable answer as ErrUnavailable.
func checkAnswer(t *testing.T, a *answerServer, status int, body string) {
	if status < 200 || status > 599 {
		status = 200 + (status%400+400)%400
	}
	a.set(status, body)
	src := &assertion.Tsiam{Endpoint: a.srv.URL, Resource: assertion.AudiencePublic, HTTPClient: a.srv.Client()}
	tok, err := src.Fetch(context.Background())
	if err == nil {
		if status != http.StatusOK || tok.Value == "" {
			t.Fatalf("HTTP %d %q gave the token %q", status, body, tok.Value)
		}
		return
	}
	if e, ok := assertion.AsError(err); ok {
		if e.StatusCode != status || status == http.StatusOK || strings.ContainsAny(e.Description, "\r\n") {
			t.Fatalf("HTTP %d %q gave %+v", status, body, e)
		}
		return
	}
	if !errors.Is(err, assertion.ErrUnavailable) {
		t.Fatalf("HTTP %d %q gave %v, neither *Error nor ErrUnavailable", status, body, err)
	}
}

func TestTokenAnswerSeeds(t *testing.T) {
	a := newAnswerServer(t)
	for _, s := range answerSeeds() {
		checkAnswer(t, a, s.status, s.body)
	}
}

func FuzzTokenAnswer(f *testing.F) {
	a := newAnswerServer(f)
	for _, s := range answerSeeds() {
		f.Add(s.status, s.body)
	}
	f.Fuzz(func(t *testing.T, status int, body string) {
		checkAnswer(t, a, status, body)
	})
}
