package assertion

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// WorkloadIdentity gets an assertion with Azure Workload Identity for
// Kubernetes, in two hops: the projected service account token in TokenFile
// is exchanged at Entra ID for an access token of the identity ClientID (a
// user-assigned managed identity whose federated credential trusts the
// cluster), and that access token, audience Scope without "/.default", is the
// assertion. The plugin's app registration trusts that identity.
type WorkloadIdentity struct {
	AuthorityHost string // AZURE_AUTHORITY_HOST, else the plugin's authority host, without trailing slash
	TenantID      string // AZURE_TENANT_ID
	ClientID      string // AZURE_CLIENT_ID
	// TokenFile is AZURE_FEDERATED_TOKEN_FILE. It is re-read on every Fetch
	// because the kubelet rotates it; its location is not fixed.
	TokenFile  string
	Scope      string       // e.g. api://AzureADTokenExchange/.default
	HTTPClient *http.Client // nil: a shared client (honours HTTPS_PROXY)
	// RequestTimeout bounds each request (zero: DefaultRequestTimeout).
	RequestTimeout time.Duration
}

// workloadIdentityFromEnv reads the variables the workload identity webhook
// injects, naming every missing one.
func workloadIdentityFromEnv(authority, audience string, getenv func(string) string) (*WorkloadIdentity, error) {
	w := &WorkloadIdentity{
		TenantID:  strings.TrimSpace(getenv("AZURE_TENANT_ID")),
		ClientID:  strings.TrimSpace(getenv("AZURE_CLIENT_ID")),
		TokenFile: strings.TrimSpace(getenv("AZURE_FEDERATED_TOKEN_FILE")),
		Scope:     audience + "/.default",
	}
	var missing []string
	if w.ClientID == "" {
		missing = append(missing, "AZURE_CLIENT_ID")
	}
	if w.TenantID == "" {
		missing = append(missing, "AZURE_TENANT_ID")
	}
	if w.TokenFile == "" {
		missing = append(missing, "AZURE_FEDERATED_TOKEN_FILE")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("assertion: AzureWorkloadIdentity: %s not set; label the pod azure.workload.identity/use: \"true\" "+
			"and annotate its service account with azure.workload.identity/client-id so the webhook sets them", strings.Join(missing, ", "))
	}
	if env := getenv("AZURE_AUTHORITY_HOST"); strings.TrimSpace(env) != "" {
		a, err := normalizeAuthority(env)
		if err != nil {
			return nil, fmt.Errorf("assertion: AzureWorkloadIdentity: AZURE_AUTHORITY_HOST: %v", err)
		}
		authority = a
	}
	w.AuthorityHost = authority
	return w, nil
}

// String describes the source for logs.
func (w *WorkloadIdentity) String() string {
	return fmt.Sprintf("workload identity (client ID %s, tenant %s, token file %s, authority %s, scope %s)",
		w.ClientID, w.TenantID, w.TokenFile, w.AuthorityHost, w.Scope)
}

// Fetch reads the token file and exchanges it at Entra ID.
func (w *WorkloadIdentity) Fetch(ctx context.Context) (Token, error) {
	const source = "workload identity"
	federated, err := readTokenFile(w.TokenFile)
	if err != nil {
		return Token{}, fmt.Errorf("assertion: %s: reading AZURE_FEDERATED_TOKEN_FILE: %v; is the projected token volume mounted?", source, err)
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout(w.RequestTimeout))
	defer cancel()
	form := url.Values{}
	form.Set("grant_type", "client_credentials")
	form.Set("client_id", w.ClientID)
	form.Set("scope", w.Scope)
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", federated)
	endpoint := w.AuthorityHost + "/" + url.PathEscape(w.TenantID) + "/oauth2/v2.0/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, fmt.Errorf("assertion: %s: %v", source, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	r, err := send(clientOr(w.HTTPClient, proxyClient), req, w.RequestTimeout)
	if err != nil {
		return Token{}, unavailable(source, "requesting a token from "+endpoint, "check AZURE_AUTHORITY_HOST and outbound access to Entra ID", err)
	}
	if r.status != http.StatusOK {
		e := serviceError(source, r, "")
		e.Hint = w.hint(e, federated)
		return Token{}, e
	}
	return tokenFromJSON(source, r.body, time.Now())
}

// hint explains Entra ID's usual refusals of the first hop.
func (w *WorkloadIdentity) hint(e *Error, federated string) string {
	code := 0
	if len(e.ErrorCodes) > 0 {
		code = e.ErrorCodes[0]
	}
	switch code {
	case 70021, 700211, 700212, 700213, 7002138:
		return fmt.Sprintf("identity %s has no federated credential matching the service account token in %s (%s); "+
			"add one with the cluster's OIDC issuer, subject system:serviceaccount:<namespace>:<service account> and audience %s",
			w.ClientID, w.TokenFile, describeAssertion(federated), strings.TrimSuffix(w.Scope, "/.default"))
	case 700024:
		return "the service account token in " + w.TokenFile + " is expired or not yet valid; is the kubelet rotating it, and is the clock right?"
	case 700016:
		return "AZURE_CLIENT_ID " + w.ClientID + " is not an identity in tenant " + w.TenantID + "; check AZURE_CLIENT_ID and AZURE_TENANT_ID"
	case 90002:
		return "tenant " + w.TenantID + " does not exist here; check AZURE_TENANT_ID and AZURE_AUTHORITY_HOST"
	}
	if e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests {
		return "Entra ID is failing or throttling; it should pass"
	}
	return "check AZURE_CLIENT_ID, AZURE_TENANT_ID and the identity's federated credentials"
}
