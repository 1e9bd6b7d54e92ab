package assertion_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
)

// env returns a getenv over a map.
func env(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

var workloadEnv = map[string]string{
	"AZURE_CLIENT_ID":            "11111111-1111-1111-1111-111111111111",
	"AZURE_TENANT_ID":            "22222222-2222-2222-2222-222222222222",
	"AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token",
}

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		value     string
		authority string
		env       map[string]string
		want      string // describes the source, or "" when an error is expected
		wantErr   []string
	}{
		{name: "system-assigned managed identity uses IMDS", value: "AzureManagedIdentity",
			want: "managed identity (IMDS http://169.254.169.254/metadata/identity/oauth2/token, system-assigned, resource api://AzureADTokenExchange)"},
		{name: "names are matched case-insensitively", value: "azuremanagedidentity=33333333-3333-3333-3333-333333333333",
			want: "managed identity (IMDS http://169.254.169.254/metadata/identity/oauth2/token, client ID 33333333-3333-3333-3333-333333333333, resource api://AzureADTokenExchange)"},
		{name: "spaces around the value are ignored", value: "  AZUREMANAGEDIDENTITY = 33333333-3333-3333-3333-333333333333 ",
			want: "managed identity (IMDS http://169.254.169.254/metadata/identity/oauth2/token, client ID 33333333-3333-3333-3333-333333333333, resource api://AzureADTokenExchange)"},
		{name: "AZURE_POD_IDENTITY_AUTHORITY_HOST replaces the IMDS host", value: "AzureManagedIdentity",
			env:  map[string]string{"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9/"},
			want: "managed identity (IMDS http://127.0.0.1:9/metadata/identity/oauth2/token, system-assigned, resource api://AzureADTokenExchange)"},
		{name: "IDENTITY_ENDPOINT and IDENTITY_HEADER select App Service", value: "AzureManagedIdentity",
			env:  map[string]string{"IDENTITY_ENDPOINT": "http://169.254.129.2:8081/msi/token", "IDENTITY_HEADER": "secret"},
			want: "managed identity (App Service http://169.254.129.2:8081/msi/token, system-assigned, resource api://AzureADTokenExchange)"},
		{name: "IDENTITY_ENDPOINT and IMDS_ENDPOINT select Azure Arc", value: "AzureManagedIdentity",
			env:  map[string]string{"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token", "IMDS_ENDPOINT": "http://localhost:40342"},
			want: "managed identity (Azure Arc http://localhost:40342/metadata/identity/oauth2/token, system-assigned, resource api://AzureADTokenExchange)"},
		{name: "the US Government cloud has its own audience", value: "AzureManagedIdentity", authority: "https://login.microsoftonline.us/",
			want: "managed identity (IMDS http://169.254.169.254/metadata/identity/oauth2/token, system-assigned, resource api://AzureADTokenExchangeUSGov)"},
		{name: "the China cloud has its own audience", value: "tsiam=https://tsiam.example.ts.net/", authority: "https://login.partner.microsoftonline.cn",
			want: "tsiam (https://tsiam.example.ts.net, resource api://AzureADTokenExchangeChina)"},
		{name: "the legacy China host has the China audience", value: "tsiam=http://100.64.0.1:8080", authority: "https://LOGIN.CHINACLOUDAPI.CN",
			want: "tsiam (http://100.64.0.1:8080, resource api://AzureADTokenExchangeChina)"},
		{name: "workload identity reads the webhook's variables", value: "AzureWorkloadIdentity", env: workloadEnv,
			want: "workload identity (client ID 11111111-1111-1111-1111-111111111111, tenant 22222222-2222-2222-2222-222222222222, " +
				"token file /var/run/secrets/azure/tokens/azure-identity-token, authority https://login.microsoftonline.com, scope api://AzureADTokenExchange/.default)"},
		{name: "workload identity prefers AZURE_AUTHORITY_HOST", value: "azureWorkloadIdentity", authority: "https://login.microsoftonline.us",
			env:  map[string]string{"AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t", "AZURE_FEDERATED_TOKEN_FILE": "/f", "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us/"},
			want: "workload identity (client ID c, tenant t, token file /f, authority https://login.microsoftonline.us, scope api://AzureADTokenExchangeUSGov/.default)"},
		{name: "workload identity falls back to the plugin's authority host", value: "AzureWorkloadIdentity", authority: "http://127.0.0.1:8080/",
			env:  map[string]string{"AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t", "AZURE_FEDERATED_TOKEN_FILE": "/f"},
			want: "workload identity (client ID c, tenant t, token file /f, authority http://127.0.0.1:8080, scope api://AzureADTokenExchange/.default)"},
		{name: "the service account token has a default path", value: "KubernetesServiceAccountToken",
			want: "Kubernetes service account token (/var/run/secrets/kubernetes.io/serviceaccount/token)"},
		{name: "the service account token path can be given", value: "kubernetesserviceaccounttoken=/var/run/secrets/tokens/entra",
			want: "Kubernetes service account token (/var/run/secrets/tokens/entra)"},
		{name: "tsiam is case-insensitive too", value: "TSIAM=https://tsiam.example.ts.net",
			want: "tsiam (https://tsiam.example.ts.net, resource api://AzureADTokenExchange)"},

		{name: "an unknown source lists the valid ones", value: "AzureCLI",
			wantErr: []string{`assertion: unknown source "AzureCLI"`, "AzureManagedIdentity=<client-id>", "KubernetesServiceAccountToken=<path>", "tsiam=<endpoint>"}},
		{name: "an empty value lists the valid ones", value: " ",
			wantErr: []string{"assertion: no source given", "AzureWorkloadIdentity"}},
		{name: "AzureManagedIdentity= needs a client ID", value: "AzureManagedIdentity=",
			wantErr: []string{"assertion: AzureManagedIdentity= needs the client ID"}},
		{name: "AzureManagedIdentity takes a GUID", value: "AzureManagedIdentity=my-identity",
			wantErr: []string{`"my-identity" is not a client ID`, "az identity show"}},
		{name: "Azure Arc has no user-assigned identity", value: "AzureManagedIdentity=33333333-3333-3333-3333-333333333333",
			env:     map[string]string{"IDENTITY_ENDPOINT": "http://localhost:40342/metadata/identity/oauth2/token", "IMDS_ENDPOINT": "http://localhost:40342"},
			wantErr: []string{"Azure Arc", "only the system-assigned identity"}},
		{name: "Service Fabric is refused", value: "AzureManagedIdentity",
			env:     map[string]string{"IDENTITY_ENDPOINT": "https://10.0.0.4:2377/metadata/identity/oauth2/token", "IDENTITY_HEADER": "h", "IDENTITY_SERVER_THUMBPRINT": "ab"},
			wantErr: []string{"Service Fabric", "not supported"}},
		{name: "a bad IDENTITY_ENDPOINT is refused", value: "AzureManagedIdentity",
			env:     map[string]string{"IDENTITY_ENDPOINT": "localhost:8081", "IDENTITY_HEADER": "h"},
			wantErr: []string{"is not an http(s) URL", "IDENTITY_ENDPOINT"}},
		{name: "workload identity names every missing variable", value: "AzureWorkloadIdentity",
			wantErr: []string{"AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE not set", "azure.workload.identity/use"}},
		{name: "workload identity names the one missing variable", value: "AzureWorkloadIdentity",
			env:     map[string]string{"AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t"},
			wantErr: []string{"AzureWorkloadIdentity: AZURE_FEDERATED_TOKEN_FILE not set"}},
		{name: "workload identity refuses a bad AZURE_AUTHORITY_HOST", value: "AzureWorkloadIdentity",
			env:     map[string]string{"AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t", "AZURE_FEDERATED_TOKEN_FILE": "/f", "AZURE_AUTHORITY_HOST": "login.microsoftonline.com"},
			wantErr: []string{"AZURE_AUTHORITY_HOST", "not an http(s) URL"}},
		{name: "workload identity takes no value", value: "AzureWorkloadIdentity=abc",
			wantErr: []string{"AzureWorkloadIdentity takes no value"}},
		{name: "KubernetesServiceAccountToken= needs a path", value: "KubernetesServiceAccountToken=",
			wantErr: []string{"needs the path of a projected service account token"}},
		{name: "the service account token path must be absolute", value: "KubernetesServiceAccountToken=token",
			wantErr: []string{"the path must be absolute"}},
		{name: "tsiam needs an endpoint", value: "tsiam",
			wantErr: []string{"tsiam needs its endpoint"}},
		{name: "tsiam= needs an endpoint", value: "tsiam=",
			wantErr: []string{"tsiam needs its endpoint"}},
		{name: "tsiam needs an http(s) URL", value: "tsiam=tsiam.example.ts.net",
			wantErr: []string{"tsiam=tsiam.example.ts.net: the endpoint must be an http(s) URL"}},
		{name: "tsiam refuses a query", value: "tsiam=https://tsiam.example.ts.net/?resource=x",
			wantErr: []string{"the endpoint must be an http(s) URL without query"}},
		{name: "a bad authority host is refused", value: "AzureManagedIdentity", authority: "login.microsoftonline.com",
			wantErr: []string{`assertion: authority host "login.microsoftonline.com" is not an http(s) URL`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := assertion.Parse(tt.value, tt.authority, env(tt.env))
			if tt.want != "" {
				if err != nil {
					t.Fatalf("Parse(%q) = %v", tt.value, err)
				}
				if got := describe(src); got != tt.want {
					t.Errorf("Parse(%q) = %s\nwant %s", tt.value, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want an error", tt.value, describe(src))
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Parse(%q) error %q does not contain %q", tt.value, err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "assertion: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// describe calls String on the concrete sources: under Yaegi, fmt does not
// see the String method of an interpreted type held in an interface.
func describe(src assertion.Source) string {
	switch s := src.(type) {
	case *assertion.ManagedIdentity:
		return s.String()
	case *assertion.WorkloadIdentity:
		return s.String()
	case *assertion.ServiceAccountToken:
		return s.String()
	case *assertion.Tsiam:
		return s.String()
	}
	return fmt.Sprintf("%T", src)
}

func TestParseReadsNothing(t *testing.T) {
	// Parse must not do I/O: a token file that does not exist is only
	// noticed by Fetch.
	for _, v := range []string{"KubernetesServiceAccountToken=/nonexistent/token", "AzureWorkloadIdentity"} {
		if _, err := assertion.Parse(v, "", env(map[string]string{
			"AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t", "AZURE_FEDERATED_TOKEN_FILE": "/nonexistent/token",
		})); err != nil {
			t.Errorf("Parse(%q) = %v", v, err)
		}
	}
}

func TestAudience(t *testing.T) {
	tests := []struct{ host, want string }{
		{"", assertion.AudiencePublic},
		{"https://login.microsoftonline.com", assertion.AudiencePublic},
		{"https://login.microsoftonline.us/", assertion.AudienceUSGov},
		{"https://login.partner.microsoftonline.cn", assertion.AudienceChina},
		{"https://login.chinacloudapi.cn", assertion.AudienceChina},
		{"login.microsoftonline.us", assertion.AudienceUSGov},
		{"https://login.usgovcloudapi.net", assertion.AudienceUSGov},
		{"https://login.microsoft.com", assertion.AudiencePublic},
		{"http://127.0.0.1:8080", assertion.AudiencePublic},
	}
	for _, tt := range tests {
		if got := assertion.Audience(tt.host); got != tt.want {
			t.Errorf("Audience(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}

func TestError(t *testing.T) {
	tests := []struct {
		name      string
		err       *assertion.Error
		want      string
		temporary bool
		aadsts    string
	}{
		{
			name: "an Entra refusal names the code, the trace ID and the hint",
			err: &assertion.Error{Source: "workload identity", StatusCode: 400, Code: "invalid_client",
				Description: "AADSTS70021: No matching federated identity record found for presented assertion.",
				ErrorCodes:  []int{70021}, TraceID: "trace", Hint: "add a federated credential"},
			want:   "assertion: workload identity: HTTP 400 invalid_client: AADSTS70021: No matching federated identity record found for presented assertion. (trace ID trace); add a federated credential",
			aadsts: "AADSTS70021",
		},
		{
			name:      "a 503 is temporary",
			err:       &assertion.Error{Source: "tsiam", StatusCode: 503},
			want:      "assertion: tsiam: HTTP 503",
			temporary: true,
		},
		{
			name:      "a 429 is temporary",
			err:       &assertion.Error{Source: "managed identity (IMDS)", StatusCode: 429, Code: "too_many_requests"},
			want:      "assertion: managed identity (IMDS): HTTP 429 too_many_requests",
			temporary: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q\nwant %q", got, tt.want)
			}
			if got := tt.err.Temporary(); got != tt.temporary {
				t.Errorf("Temporary() = %v", got)
			}
			if got := tt.err.AADSTS(); got != tt.aadsts {
				t.Errorf("AADSTS() = %q, want %q", got, tt.aadsts)
			}
		})
	}
}

func TestAsErrorFindsAWrappedError(t *testing.T) {
	// Held as an error, as sources return it: under Yaegi a concrete
	// interpreted pointer passed to fmt.Errorf loses its Error method.
	var inner error = &assertion.Error{Source: "tsiam", StatusCode: 403}
	wrapped := fmt.Errorf("entraid: client assertion: %w", fmt.Errorf("again: %w", inner))
	if got, ok := assertion.AsError(wrapped); !ok || got.Source != "tsiam" || got.StatusCode != 403 {
		t.Errorf("AsError = %v, %v", got, ok)
	}
	if _, ok := assertion.AsError(errors.New("other")); ok {
		t.Error("AsError found an Error in a plain error")
	}
	if _, ok := assertion.AsError(nil); ok {
		t.Error("AsError found an Error in nil")
	}
}

func TestEverySourceBoundsItsRequestsWithRequestTimeout(t *testing.T) {
	// A service that takes far longer than the timeout, and less than the
	// 10 s default: only RequestTimeout can end the wait early. The bound
	// is under the whole Fetch's limit (three times the timeout), so that
	// it is the request's own deadline that ends it.
	const (
		timeout = time.Second
		hang    = 5 * time.Second
		bound   = 2500 * time.Millisecond // the timeout plus scheduling slack
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the form first: only then does the server notice the client
		// hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(hang):
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"late","expires_in":"3600"}`)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, serviceAccountJWT("system:serviceaccount:traefik:traefik", time.Now().Add(time.Hour)))

	tests := []struct {
		name string
		src  assertion.Source
	}{
		{"a managed identity", &assertion.ManagedIdentity{
			Platform: assertion.PlatformIMDS, Endpoint: srv.URL + "/metadata/identity/oauth2/token",
			Resource: assertion.AudiencePublic, RequestTimeout: timeout,
			Sleep: func(context.Context, time.Duration) error { return nil },
		}},
		{"workload identity", &assertion.WorkloadIdentity{
			AuthorityHost: srv.URL, TenantID: "22222222-2222-2222-2222-222222222222", ClientID: "11111111-1111-1111-1111-111111111111",
			TokenFile: tokenFile, Scope: assertion.AudiencePublic + "/.default", RequestTimeout: timeout,
		}},
		{"tsiam", &assertion.Tsiam{Endpoint: srv.URL, Resource: assertion.AudiencePublic, RequestTimeout: timeout}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := tt.src.Fetch(context.Background())
			took := time.Since(start)
			if !errors.Is(err, assertion.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Fetch = %v, want ErrUnavailable from a deadline", err)
			}
			if took > bound {
				t.Errorf("Fetch took %v with a request timeout of %v", took, timeout)
			}
		})
	}
}
