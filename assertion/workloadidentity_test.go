package assertion_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

const (
	wiTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	wiClient = "77777777-7777-7777-7777-777777777777"
)

// fakeEntra is a minimal Entra ID token endpoint for the first hop of
// workload identity: it records the forms it receives and answers with an
// access token, or with the error it was given.
type fakeEntra struct {
	srv *httptest.Server

	mu          sync.Mutex
	requests    []*http.Request
	forms       []url.Values
	errStatus   int
	errBody     string
	expiresIn   interface{} // what expires_in is sent as
	accessToken string
}

func newFakeEntra() *fakeEntra {
	f := &fakeEntra{expiresIn: 3599, accessToken: "access-token-for-the-plugin"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

func (f *fakeEntra) serve(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.forms = append(f.forms, r.PostForm)
	status, body, expiresIn, token := f.errStatus, f.errBody, f.expiresIn, f.accessToken
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if status != 0 {
		w.WriteHeader(status)
		w.Write([]byte(body))
		return
	}
	json.NewEncoder(w).Encode(map[string]interface{}{
		"token_type": "Bearer", "expires_in": expiresIn, "ext_expires_in": expiresIn, "access_token": token,
	})
}

func (f *fakeEntra) fail(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errStatus = status
	f.errBody = body
}

func (f *fakeEntra) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.forms)
}

func (f *fakeEntra) firstRequest() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[0]
}

func (f *fakeEntra) lastForm() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.forms) == 0 {
		return nil
	}
	return f.forms[len(f.forms)-1]
}

// serviceAccountJWT is a token like the one kubelet projects for azwi.
func serviceAccountJWT(sub string, exp time.Time) string {
	return assertiontest.UnsignedJWT(map[string]interface{}{
		"iss": "https://oidc.prod-aks.azure.com/abc/", "sub": sub,
		"aud": []string{"api://AzureADTokenExchange"}, "exp": exp.Unix(), "iat": time.Now().Unix(),
	})
}

// newWorkloadIdentity writes a token file and parses AzureWorkloadIdentity
// against the fake.
func newWorkloadIdentity(t *testing.T, entra *fakeEntra) (*assertion.WorkloadIdentity, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	writeFile(t, file, serviceAccountJWT("system:serviceaccount:traefik:traefik", time.Now().Add(time.Hour)))
	src, err := assertion.Parse("AzureWorkloadIdentity", "", env(map[string]string{
		"AZURE_CLIENT_ID":            wiClient,
		"AZURE_TENANT_ID":            wiTenant,
		"AZURE_FEDERATED_TOKEN_FILE": file,
		"AZURE_AUTHORITY_HOST":       entra.srv.URL + "/",
	}))
	if err != nil {
		t.Fatal(err)
	}
	return src.(*assertion.WorkloadIdentity), file
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWorkloadIdentitySendsTheExactRequest(t *testing.T) {
	entra := newFakeEntra()
	defer entra.srv.Close()
	w, file := newWorkloadIdentity(t, entra)
	tok, err := w.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Value != "access-token-for-the-plugin" {
		t.Errorf("assertion %q, want the access token", tok.Value)
	}
	federated, _ := os.ReadFile(file)
	want := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {wiClient},
		"scope":                 {"api://AzureADTokenExchange/.default"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {string(federated)},
	}
	if got := entra.lastForm(); !reflect.DeepEqual(got, want) {
		t.Errorf("form %v\nwant %v", got, want)
	}
	r := entra.firstRequest()
	if r.Method != http.MethodPost || r.URL.Path != "/"+wiTenant+"/oauth2/v2.0/token" || r.URL.RawQuery != "" {
		t.Errorf("request %s %s, want POST /%s/oauth2/v2.0/token", r.Method, r.URL, wiTenant)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestWorkloadIdentityUsesThePluginAuthorityWithoutAZURE_AUTHORITY_HOST(t *testing.T) {
	entra := newFakeEntra()
	defer entra.srv.Close()
	file := filepath.Join(t.TempDir(), "token")
	writeFile(t, file, serviceAccountJWT("s", time.Now().Add(time.Hour)))
	src, err := assertion.Parse("AzureWorkloadIdentity", entra.srv.URL, env(map[string]string{
		"AZURE_CLIENT_ID": wiClient, "AZURE_TENANT_ID": wiTenant, "AZURE_FEDERATED_TOKEN_FILE": file,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if entra.count() != 1 {
		t.Errorf("%d requests at the plugin's authority host, want 1", entra.count())
	}
}

func TestWorkloadIdentityRereadsTheRotatedTokenFile(t *testing.T) {
	entra := newFakeEntra()
	defer entra.srv.Close()
	w, file := newWorkloadIdentity(t, entra)
	for _, sub := range []string{"first", "second", "third"} {
		token := serviceAccountJWT(sub, time.Now().Add(time.Hour))
		writeFile(t, file, token+"\n") // kubelet may end the file with a newline
		if _, err := w.Fetch(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := entra.lastForm().Get("client_assertion"); got != token {
			t.Errorf("sent %q, want the rotated token %q", got, token)
		}
	}
}

func TestWorkloadIdentityReadsExpiryAsNumberOrString(t *testing.T) {
	tests := []struct {
		name      string
		expiresIn interface{}
	}{
		{"expires_in as a number, as Entra sends it", 3599},
		{"expires_in as a string", "3599"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entra := newFakeEntra()
			defer entra.srv.Close()
			entra.mu.Lock()
			entra.expiresIn = tt.expiresIn
			entra.mu.Unlock()
			w, _ := newWorkloadIdentity(t, entra)
			before := time.Now()
			tok, err := w.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d := tok.Expires.Sub(before); d < 3598*time.Second || d > 3600*time.Second {
				t.Errorf("expires in %v, want about 3599 s", d)
			}
		})
	}
}

func TestWorkloadIdentityExplainsEntraErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   []string
		codes  []int
	}{
		{
			name:   "no matching federated credential",
			status: 400,
			body: `{"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found for presented assertion. ` +
				`Assertion Issuer: 'https://oidc.prod-aks.azure.com/abc/'.\r\nTrace ID: 0f1c\r\nCorrelation ID: 9a8b\r\nTimestamp: 2025-01-20 22:54:42Z",` +
				`"error_codes":[70021],"timestamp":"2025-01-20 22:54:42Z","trace_id":"0f1c","correlation_id":"9a8b"}`,
			codes: []int{70021},
			want: []string{
				"assertion: workload identity: HTTP 400 invalid_client: AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: 'https://oidc.prod-aks.azure.com/abc/'. (trace ID 0f1c)",
				"identity " + wiClient + " has no federated credential matching the service account token in",
				`issuer "https://oidc.prod-aks.azure.com/abc/", subject "system:serviceaccount:traefik:traefik", audience "api://AzureADTokenExchange"`,
				"subject system:serviceaccount:<namespace>:<service account>",
			},
		},
		{
			name:   "an issuer mismatch",
			status: 400,
			body:   `{"error":"invalid_client","error_description":"AADSTS700211: No matching federated identity record found for presented assertion issuer.","error_codes":[700211],"trace_id":"t"}`,
			codes:  []int{700211},
			want:   []string{"AADSTS700211", "the cluster's OIDC issuer"},
		},
		{
			name:   "an expired service account token",
			status: 400,
			body:   `{"error":"invalid_client","error_description":"AADSTS700024: Client assertion is not within its valid time range.","error_codes":[700024]}`,
			codes:  []int{700024},
			want:   []string{"AADSTS700024", "is expired or not yet valid; is the kubelet rotating it"},
		},
		{
			name:   "an unknown client ID",
			status: 400,
			body:   `{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier '7777' was not found in the directory.","error_codes":[700016]}`,
			codes:  []int{700016},
			want:   []string{"is not an identity in tenant " + wiTenant},
		},
		{
			name:   "an Entra outage",
			status: 503,
			body:   `{"error":"temporarily_unavailable","error_description":"AADSTS90033: A transient error has occurred.","error_codes":[90033]}`,
			codes:  []int{90033},
			want:   []string{"HTTP 503 temporarily_unavailable", "it should pass"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entra := newFakeEntra()
			defer entra.srv.Close()
			entra.fail(tt.status, tt.body)
			w, _ := newWorkloadIdentity(t, entra)
			_, err := w.Fetch(context.Background())
			e, ok := assertion.AsError(err)
			if !ok {
				t.Fatalf("Fetch = %v, want an *assertion.Error", err)
			}
			if e.StatusCode != tt.status || !reflect.DeepEqual(e.ErrorCodes, tt.codes) {
				t.Errorf("status %d codes %v, want %d %v", e.StatusCode, e.ErrorCodes, tt.status, tt.codes)
			}
			if e.Temporary() != (tt.status >= 500) {
				t.Errorf("Temporary() = %v", e.Temporary())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestWorkloadIdentityFailures(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(t *testing.T, entra *fakeEntra, w *assertion.WorkloadIdentity, file string)
		want        string
		unavailable bool
	}{
		{name: "a missing token file", setup: func(t *testing.T, entra *fakeEntra, w *assertion.WorkloadIdentity, file string) {
			os.Remove(file)
		}, want: "reading AZURE_FEDERATED_TOKEN_FILE: open"},
		{name: "an empty token file", setup: func(t *testing.T, entra *fakeEntra, w *assertion.WorkloadIdentity, file string) {
			writeFile(t, file, "\n")
		}, want: "is empty; is the projected token volume mounted?"},
		{name: "an unreachable authority", setup: func(t *testing.T, entra *fakeEntra, w *assertion.WorkloadIdentity, file string) {
			entra.srv.Close()
		}, want: "check AZURE_AUTHORITY_HOST", unavailable: true},
		{name: "an answer that is not JSON", setup: func(t *testing.T, entra *fakeEntra, w *assertion.WorkloadIdentity, file string) {
			entra.fail(200, "<html>proxy login</html>")
		}, want: "reading the token response: not JSON", unavailable: true},
		{name: "an answer without access_token", setup: func(t *testing.T, entra *fakeEntra, w *assertion.WorkloadIdentity, file string) {
			entra.fail(200, `{"token_type":"Bearer"}`)
		}, want: "no access_token", unavailable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entra := newFakeEntra()
			defer entra.srv.Close()
			w, file := newWorkloadIdentity(t, entra)
			tt.setup(t, entra, w, file)
			_, err := w.Fetch(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Fetch = %v, want %q", err, tt.want)
			}
			if errors.Is(err, assertion.ErrUnavailable) != tt.unavailable {
				t.Errorf("errors.Is(err, ErrUnavailable) = %v, want %v", !tt.unavailable, tt.unavailable)
			}
		})
	}
}

func TestWorkloadIdentityThroughTheCache(t *testing.T) {
	entra := newFakeEntra()
	defer entra.srv.Close()
	w, file := newWorkloadIdentity(t, entra)
	clk := newClock()
	c := assertion.NewCache(w)
	c.Now = clk.Now
	ctx := context.Background()
	c.Assertion(ctx)
	c.Assertion(ctx)
	if entra.count() != 1 {
		t.Fatalf("%d token requests, want 1 (cached)", entra.count())
	}
	rotated := serviceAccountJWT("rotated", time.Now().Add(2*time.Hour))
	writeFile(t, file, rotated)
	clk.Add(55 * time.Minute) // the one-hour access token is due for refresh
	if _, err := c.Assertion(ctx); err != nil {
		t.Fatal(err)
	}
	if entra.count() != 2 || entra.lastForm().Get("client_assertion") != rotated {
		t.Errorf("the refresh did not send the rotated file")
	}
}

func TestWorkloadIdentityAgainstTheFakeTenant(t *testing.T) {
	tenant := entraidtest.NewTenant(entraidtest.Options{})
	defer tenant.Close()
	clusterKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const clusterIssuer = "https://oidc.prod-aks.azure.com/cluster/"
	tenant.TrustFederatedIssuer(clusterIssuer, jwt.KeySet{"k1": &clusterKey.PublicKey}, "system:serviceaccount:traefik:traefik")
	tests := []struct {
		name    string
		subject string
		wantErr string
	}{
		{name: "a trusted service account gets the assertion", subject: "system:serviceaccount:traefik:traefik"},
		{name: "another service account is refused with AADSTS70021", subject: "system:serviceaccount:default:default",
			wantErr: "AADSTS70021"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saToken, err := jwt.Sign(clusterKey, "k1", map[string]interface{}{
				"iss": clusterIssuer, "sub": tt.subject, "aud": []string{"api://AzureADTokenExchange"},
				"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
			})
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "azure-identity-token")
			writeFile(t, file, saToken)
			src, err := assertion.Parse("AzureWorkloadIdentity", "", env(map[string]string{
				"AZURE_CLIENT_ID": wiClient, "AZURE_TENANT_ID": tenant.TenantID,
				"AZURE_FEDERATED_TOKEN_FILE": file, "AZURE_AUTHORITY_HOST": tenant.URL,
			}))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := src.Fetch(context.Background())
			if tt.wantErr != "" {
				e, ok := assertion.AsError(err)
				if !ok || e.AADSTS() != tt.wantErr || !strings.Contains(err.Error(), `subject "`+tt.subject+`"`) {
					t.Errorf("Fetch = %v, want %s naming the subject", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			claims, err := jwt.Parse(tok.Value)
			if err != nil {
				t.Fatal(err)
			}
			if err := claims.VerifyRS256(tenantKeys(t, tenant)[claims.Header.Kid]); err != nil {
				t.Errorf("the assertion is not signed by the tenant: %v", err)
			}
			if claims.String("iss") != tenant.Issuer() || claims.String("sub") != wiClient ||
				!reflect.DeepEqual(claims.Strings("aud"), []string{"api://AzureADTokenExchange"}) {
				t.Errorf("assertion claims %v: want the tenant's token for %s with audience api://AzureADTokenExchange", claims.Claims, wiClient)
			}
			if d := time.Until(tok.Expires); d < 59*time.Minute || d > time.Hour {
				t.Errorf("expires in %v, want about an hour", d)
			}
			// The second hop: the tenant takes the assertion as the plugin
			// app's credential, once the app trusts the workload's identity.
			tenant.TrustFederatedIssuer(tenant.Issuer(), nil, wiClient)
			resp, err := http.PostForm(tenant.URL+"/"+tenant.TenantID+"/oauth2/v2.0/token", url.Values{
				"grant_type": {"client_credentials"}, "client_id": {tenant.ClientID},
				"scope":                 {"api://AzureADTokenExchange/.default"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {tok.Value},
			})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("the tenant refused the assertion for its app: %d", resp.StatusCode)
			}
		})
	}
}

// tenantKeys fetches the fake tenant's signing keys.
func tenantKeys(t *testing.T, tenant *entraidtest.Tenant) jwt.KeySet {
	t.Helper()
	resp, err := http.Get(tenant.URL + "/" + tenant.TenantID + "/discovery/v2.0/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	keys, err := jwt.ParseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
