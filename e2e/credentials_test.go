package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

// Federated credentials (issue 4): the plugin authenticates its app
// registration with a client assertion from a workload identity, and no
// client secret is configured anywhere. The fake tenant refuses a token
// request that carries neither a secret nor an assertion (AADSTS7000218),
// so a sign-in that succeeds proves the assertion was used.

const (
	// managedIdentityClientID is the client ID of the user-assigned managed
	// identity attached to "the VM" (the fake IMDS).
	managedIdentityClientID = "3c9e1f5a-2b4d-4e6f-8a1b-7c2d3e4f5a6b"
	// clusterServiceAccount is Traefik's service account in the cluster, the
	// subject of its projected token.
	clusterServiceAccount = "system:serviceaccount:traefik:traefik"
	clusterKeyID          = "cluster-key-1"
)

// newFederatedEnv starts the usual stack with tenant, but the plugin has
// clientAssertion instead of clientSecret, and Traefik runs with environ
// added to its environment (what the Azure platform would inject).
func newFederatedEnv(t *testing.T, tenant *entraidtest.Tenant, clientAssertion string, environ map[string]string) *env {
	t.Helper()
	e := &env{t: t, tenant: tenant, upstream: newUpstream(t), certs: newCerts(t)}
	pc := pluginConfig(tenant, sessionSecret)
	entra := pc["microsoftEntraID"].(map[string]interface{})
	delete(entra, "clientSecret")
	entra["clientAssertion"] = clientAssertion
	e.cfg = dynamicConfig{
		routes:      []route{{name: "app", hosts: []string{appHost}, middlewares: []string{authMiddleware}}},
		middlewares: map[string]map[string]interface{}{authMiddleware: pc},
		upstream:    e.upstream.srv.URL,
	}
	e.traefik = newTraefik(t, e.certs)
	e.traefik.environ = environ
	e.traefik.start(e.cfg)
	e.client = newClient(t, e.certs)

	// No secret anywhere: not in the configuration Traefik reads, not in
	// its environment.
	dyn, err := os.ReadFile(e.traefik.dynFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(dyn), tenant.ClientSecret) || strings.Contains(string(dyn), "clientSecret") {
		t.Fatalf("the dynamic configuration holds a client secret:\n%s", dyn)
	}
	for k, v := range environ {
		if strings.Contains(v, tenant.ClientSecret) {
			t.Fatalf("Traefik's environment holds the client secret in %s", k)
		}
	}
	return e
}

func TestManagedIdentitySignsInWithoutAClientSecret(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	imds := assertiontest.NewIMDS()
	t.Cleanup(func() { imds.Close() })
	imds.AssignIdentities(managedIdentityClientID)
	principal := imds.PrincipalID(managedIdentityClientID)
	// IMDS hands out a token of the managed identity, issued by the tenant:
	// subject is the identity's principal (object) ID, not its client ID.
	imds.Mint = func(clientID string) (string, time.Time) {
		now := time.Now()
		exp := now.Add(time.Hour)
		return tenant.SignToken(map[string]interface{}{
			"iss":   tenant.Issuer(),
			"sub":   principal,
			"oid":   principal,
			"aud":   entraidtest.TokenExchangeAudience,
			"azp":   clientID,
			"appid": clientID,
			"tid":   tenant.TenantID,
			"idtyp": "app",
			"ver":   "2.0",
			"iat":   now.Unix(),
			"nbf":   now.Unix(),
			"exp":   exp.Unix(),
		}), exp
	}
	// The app registration's federated credential for the identity.
	tenant.TrustFederatedIssuer(tenant.Issuer(), nil, principal)

	e := newFederatedEnv(t, tenant, "AzureManagedIdentity="+managedIdentityClientID, imds.Env())
	echo := e.client.signIn(e.traefik.url(appHost, "/"))
	if got := echo.Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Errorf("X-Forwarded-User = %q, want alice's oid %q", got, alice.OID)
	}

	reqs := imds.Requests()
	if len(reqs) == 0 {
		t.Fatal("the sign-in succeeded without asking IMDS for an assertion")
	}
	for i, r := range reqs {
		q := r.Query
		switch {
		case r.Method != http.MethodGet || r.Path != assertiontest.IMDSTokenPath:
			t.Errorf("IMDS request %d: %s %s, want GET %s", i, r.Method, r.Path, assertiontest.IMDSTokenPath)
		case r.Header.Get("Metadata") != "true":
			t.Errorf("IMDS request %d: Metadata header %q, want true", i, r.Header.Get("Metadata"))
		case r.Header.Get("X-Forwarded-For") != "":
			t.Errorf("IMDS request %d carries X-Forwarded-For %q", i, r.Header.Get("X-Forwarded-For"))
		case q.Get("client_id") != managedIdentityClientID:
			t.Errorf("IMDS request %d: client_id %q, want the identity's client ID %s", i, q.Get("client_id"), managedIdentityClientID)
		case q.Get("resource") != entraidtest.TokenExchangeAudience:
			t.Errorf("IMDS request %d: resource %q, want %s", i, q.Get("resource"), entraidtest.TokenExchangeAudience)
		case q.Get("api-version") == "":
			t.Errorf("IMDS request %d has no api-version", i)
		case r.Status != http.StatusOK:
			t.Errorf("IMDS request %d answered %d, want 200", i, r.Status)
		}
	}

	// A second user signs in with the assertion Traefik has cached.
	tenant.SetSignIn(bob.PreferredUsername)
	other := newClient(t, e.certs)
	if got := other.signIn(e.traefik.url(appHost, "/")).Header.Get("X-Forwarded-User"); got != bob.OID {
		t.Errorf("second sign-in: X-Forwarded-User = %q, want bob's oid %q", got, bob.OID)
	}
	if n := imds.Hits(); n != len(reqs) {
		t.Errorf("IMDS asked %d times after a second sign-in, want %d: the assertion is cached until near its expiry", n, len(reqs))
	}
	if n := tenant.Hits(entraidtest.Token); n != 2 {
		t.Errorf("token endpoint hit %d times, want 2 (one code redemption per sign-in)", n)
	}
}

// clusterIdentity is a Kubernetes cluster's service account issuer as the
// workload identity webhook sets a pod up for it: the projected token
// file, and the environment naming the managed identity to exchange it for.
type clusterIdentity struct {
	issuer    string
	key       *rsa.PrivateKey
	tokenFile string
}

func newClusterIdentity(t *testing.T) *clusterIdentity {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &clusterIdentity{
		// AKS issuer URLs end with a slash; the federated credential must
		// repeat it exactly.
		issuer:    "https://oidc.aks.example.test/6b1d2c3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e/",
		key:       key,
		tokenFile: filepath.Join(t.TempDir(), "azure-identity-token"),
	}
}

// writeToken projects a service account token for subject, as the kubelet
// does: audience api://AzureADTokenExchange, an hour long.
func (c *clusterIdentity) writeToken(t *testing.T, subject string) {
	t.Helper()
	now := time.Now()
	tok, err := jwt.Sign(c.key, clusterKeyID, map[string]interface{}{
		"iss": c.issuer,
		"sub": subject,
		"aud": []string{entraidtest.TokenExchangeAudience},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]interface{}{
			"namespace":      "traefik",
			"serviceaccount": map[string]interface{}{"name": "traefik", "uid": "2e4f6a8c-0b1d-4e3f-8a5b-7c9d1e3f5a7b"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, c.tokenFile, []byte(tok))
}

// environ is what the workload identity webhook injects into Traefik's pod.
func (c *clusterIdentity) environ(tenant *entraidtest.Tenant) map[string]string {
	return map[string]string{
		"AZURE_CLIENT_ID":            managedIdentityClientID,
		"AZURE_TENANT_ID":            tenant.TenantID,
		"AZURE_FEDERATED_TOKEN_FILE": c.tokenFile,
		"AZURE_AUTHORITY_HOST":       tenant.URL,
	}
}

func TestWorkloadIdentitySignsInThroughTwoTokenExchanges(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	cluster := newClusterIdentity(t)
	cluster.writeToken(t, clusterServiceAccount)
	// Hop 1: the managed identity trusts the cluster's service account.
	tenant.TrustFederatedIssuer(cluster.issuer, jwt.KeySet{clusterKeyID: &cluster.key.PublicKey}, clusterServiceAccount)
	// Hop 2: the app registration trusts the managed identity (whose
	// tokens the fake tenant issues with sub = its client ID).
	tenant.TrustFederatedIssuer(tenant.Issuer(), nil, managedIdentityClientID)

	e := newFederatedEnv(t, tenant, "AzureWorkloadIdentity", cluster.environ(tenant))
	echo := e.client.signIn(e.traefik.url(appHost, "/"))
	if got := echo.Header.Get("X-Forwarded-User"); got != alice.OID {
		t.Errorf("X-Forwarded-User = %q, want alice's oid %q", got, alice.OID)
	}
	// One client-credentials exchange of the service account token, one
	// code redemption with the resulting assertion.
	if n := tenant.Hits(entraidtest.Token); n != 2 {
		t.Errorf("token endpoint hit %d times, want 2 (the workload identity hop, then the code redemption)", n)
	}
}

func TestWorkloadIdentityWithAnUntrustedSubjectShowsAnErrorPageNamingTheAADSTSCode(t *testing.T) {
	tenant := newTenant(t, alice.PreferredUsername)
	cluster := newClusterIdentity(t)
	cluster.writeToken(t, clusterServiceAccount)
	// The credential names another service account than Traefik's.
	tenant.TrustFederatedIssuer(cluster.issuer, jwt.KeySet{clusterKeyID: &cluster.key.PublicKey}, "system:serviceaccount:default:default")
	tenant.TrustFederatedIssuer(tenant.Issuer(), nil, managedIdentityClientID)

	e := newFederatedEnv(t, tenant, "AzureWorkloadIdentity", cluster.environ(tenant))
	app := e.traefik.url(appHost, "/")
	final, hops := e.client.navigate(app)
	if final.StatusCode != http.StatusBadGateway {
		t.Fatalf("sign-in with a refused assertion ended with %s, want 502: %v: %.500s", final.Status, hopURLs(hops), final.body)
	}
	if !strings.HasPrefix(final.Request.URL.Path, "/portals/main/oauth2/callback") {
		t.Errorf("the error came from %s, want the callback", final.Request.URL)
	}
	if ct := final.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("error page Content-Type %q, want text/html", ct)
	}
	body := string(final.body)
	for _, want := range []string{
		"AADSTS70021",
		// What the plugin presented, for the operator to copy into the
		// federated credential.
		cluster.issuer,
		clusterServiceAccount,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("error page does not name %q:\n%.2000s", want, body)
		}
	}
	for _, leak := range []string{"goroutine ", "panic", "runtime error", ".go:", cluster.tokenFileContents(t)} {
		if strings.Contains(body, leak) {
			t.Errorf("error page shows %.40q", leak)
		}
	}
	if _, err := e.client.cookie(app, sessionCookieName); err == nil {
		t.Error("a session cookie was set although the sign-in failed")
	}
	if signedIn(t, e.client, app) {
		t.Error("signed in although the assertion was refused")
	}
}

// tokenFileContents is the projected token, which an error page must never
// show.
func (c *clusterIdentity) tokenFileContents(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(c.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
