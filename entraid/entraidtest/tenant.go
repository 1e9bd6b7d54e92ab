// Package entraidtest runs a fake Microsoft Entra ID tenant for tests and
// local demos, in the style of net/http/httptest.
//
// The fake speaks the v2 endpoints the way Entra ID does, down to the JSON
// shapes, AADSTS codes, trace IDs and redirects: discovery, JWKS (with key
// rotation), authorize (with a clickable sign-in page), token
// (authorization code with PKCE, client secrets, certificate credentials
// (certificate.go), client assertions from federated issuers, and the
// client-credentials hop of workload identity)
// and logout. Faults can be injected per endpoint.
package entraidtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// TokenExchangeAudience is the audience Entra ID requires of federated
// client assertions (public cloud).
const TokenExchangeAudience = "api://AzureADTokenExchange"

// User is an account of the fake tenant.
type User struct {
	OID               string // object ID; a random GUID when empty
	Name              string
	PreferredUsername string // e.g. alice@contoso.example; selects the user
	Email             string
	Groups            []string // group object IDs; more than 200 gives a groups overage
	Roles             []string // app roles
}

// Options configures NewTenant. Every field is optional.
type Options struct {
	TenantID     string // default: a random GUID
	ClientID     string // the one registered app; default: a random GUID
	ClientSecret string // default: random
	// Users default to alice and bob of Domain.
	Users []User
	// SignIn auto-approves this user (by PreferredUsername) without showing
	// the sign-in page. Empty shows the page.
	SignIn string
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// RedirectURIs registered on the app. Empty accepts any http(s) URL at
	// sign-in, but sends nobody back after end-session (see AddRedirectURI).
	RedirectURIs []string
	// Domain is the tenant's verified domain, usable in place of the tenant
	// ID in endpoint paths; default "contoso.example".
	Domain string
	// Now is the clock for issued tokens and code lifetimes; default time.Now.
	Now func() time.Time
}

// Fault replaces an endpoint's behaviour: after Delay, answer Status with
// Body (if Status is not 0). The zero Fault clears it.
type Fault struct {
	Status int
	Body   string
	Delay  time.Duration
}

// Endpoint names for Hits and SetFault.
const (
	Discovery = "discovery"
	JWKS      = "jwks"
	Authorize = "authorize"
	Token     = "token"
	Logout    = "logout"
	// Graph is Microsoft Graph's /v1.0/me/transitiveMemberOf, which this
	// fake serves at its own URL (the plugin talks to it there for loopback
	// authority hosts).
	Graph = "graph"
)

// Tenant is a running fake tenant. Its exported fields must not be changed.
type Tenant struct {
	// URL is the authority host, e.g. http://127.0.0.1:41234.
	URL      string
	TenantID string
	ClientID string
	// ClientSecret is the app's first client secret; AddClientSecret adds
	// others and RemoveClientSecret removes any of them.
	ClientSecret string
	Domain       string
	Users        []User

	srv          *httptest.Server
	now          func() time.Time
	redirectURIs []string

	mu            sync.Mutex
	signIn        string
	keys          []*signingKey // published; the last one signs
	hits          map[string]int
	graphPageSize int
	faults        map[string]Fault
	hook          func(map[string]interface{})
	idTokenHook   func(map[string]interface{}) string
	federated     []federatedCredential
	issuerKeys    map[string]jwt.KeySet
	codes         map[string]*authCode
	secrets       []string // the app's client secrets, ClientSecret first
	secretExpired bool
	// apps are further app registrations (client ID to secret) besides
	// ClientID, e.g. two apps whose sessions must not open each other.
	apps map[string]string
	// refreshTokens, states and apis serve the refresh-token grant
	// (refresh.go).
	refreshTokens      map[string]*refreshGrant
	refreshTokenLength int
	refreshSerial      int
	states             map[string]*userState
	apis               []API

	// certificates are the apps' uploaded certificates, and usedJTIs the
	// jti of every certificate assertion until it expires (certificate.go).
	certificates []*uploadedCertificate
	usedJTIs     map[string]time.Time
}

type signingKey struct {
	kid  string
	key  *rsa.PrivateKey
	cert []byte // self-signed, DER; kid is its thumbprint, as in Entra ID
}

type federatedCredential struct {
	issuer, subject string
}

// NewTenant starts a fake tenant. Close it when done.
func NewTenant(opts Options) *Tenant {
	t := &Tenant{
		TenantID:     strings.ToLower(opts.TenantID),
		ClientID:     opts.ClientID,
		ClientSecret: opts.ClientSecret,
		Domain:       strings.ToLower(opts.Domain),
		now:          opts.Now,
		redirectURIs: opts.RedirectURIs,
		signIn:       opts.SignIn,
		hits:         map[string]int{},
		faults:       map[string]Fault{},
		issuerKeys:   map[string]jwt.KeySet{},
		codes:        map[string]*authCode{},
		apps:         map[string]string{},
		usedJTIs:     map[string]time.Time{},

		refreshTokens: map[string]*refreshGrant{},
		states:        map[string]*userState{},
	}
	if t.TenantID == "" {
		t.TenantID = newGUID()
	}
	if t.ClientID == "" {
		t.ClientID = newGUID()
	}
	if t.ClientSecret == "" {
		t.ClientSecret = newClientSecret()
	}
	t.secrets = []string{t.ClientSecret}
	if t.Domain == "" {
		t.Domain = "contoso.example"
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.Users = opts.Users
	if len(t.Users) == 0 {
		t.Users = defaultUsers(t.Domain)
	}
	for i := range t.Users {
		if t.Users[i].OID == "" {
			t.Users[i].OID = newGUID()
		}
	}
	t.keys = []*signingKey{newSigningKey()}

	t.srv = httptest.NewUnstartedServer(t.Handler())
	if opts.Addr != "" {
		l, err := net.Listen("tcp", opts.Addr)
		if err != nil {
			panic(fmt.Sprintf("entraidtest: listen on %s: %v", opts.Addr, err))
		}
		t.srv.Listener.Close()
		t.srv.Listener = l
	}
	t.srv.Start()
	t.URL = t.srv.URL
	return t
}

// Default group IDs of the default users.
const (
	GroupAdmins = "5b3f0f4e-6c1a-4f0e-9d55-0a1c2b3d4e51"
	GroupStaff  = "8e2d6c4b-1a3f-4b5c-8d7e-9f0a1b2c3d42"
)

func defaultUsers(domain string) []User {
	return []User{
		{
			OID:               "0f4b2a6e-3c1d-4e8f-a5b7-1c2d3e4f5a61",
			Name:              "Alice Smith",
			PreferredUsername: "alice@" + domain,
			Email:             "alice@" + domain,
			Groups:            []string{GroupAdmins, GroupStaff},
			Roles:             []string{"Admin"},
		},
		{
			OID:               "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c72",
			Name:              "Bob Jones",
			PreferredUsername: "bob@" + domain,
			Email:             "bob@" + domain,
			Groups:            []string{GroupStaff},
			Roles:             []string{"Reader"},
		},
	}
}

// Close shuts the server down.
func (t *Tenant) Close() {
	t.srv.Close()
}

// Issuer returns the issuer of the tenant's tokens: URL/TenantID/v2.0.
func (t *Tenant) Issuer() string {
	return t.URL + "/" + t.TenantID + "/v2.0"
}

// Hits returns how many requests an endpoint (Discovery, JWKS, Authorize,
// Token, Logout) has received, faulted ones included.
func (t *Tenant) Hits(endpoint string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hits[endpoint]
}

// SetFault makes an endpoint misbehave until cleared with a zero Fault.
func (t *Tenant) SetFault(endpoint string, f Fault) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f == (Fault{}) {
		delete(t.faults, endpoint)
		return
	}
	t.faults[endpoint] = f
}

// SetSignIn changes the auto-approved user ("" shows the sign-in page).
func (t *Tenant) SetSignIn(username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.signIn = username
}

// AddApp registers another application in the tenant, with its own client
// ID and secret: it signs users in like ClientID, and its ID tokens carry
// its own client ID as aud.
func (t *Tenant) AddApp(clientID, secret string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.apps[clientID] = secret
}

// appSecret returns the secret of a registered app and whether it is one.
func (t *Tenant) appSecret(clientID string) (string, bool) {
	if clientID == t.ClientID {
		return t.ClientSecret, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	secret, ok := t.apps[clientID]
	return secret, ok
}

// AddRedirectURI registers another redirect URI on the app (Authentication
// > Web > Redirect URIs), e.g. once a test knows its port. With any
// registered, redirect_uri at sign-in must be one of them; end-session
// sends users back only to one of them, exactly.
func (t *Tenant) AddRedirectURI(uri string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.redirectURIs = append(t.redirectURIs, uri)
}

// AddClientSecret adds a new client secret to the app and returns its value,
// as Entra ID does on Certificates & secrets: the secrets the app had stay
// valid, so that a secret can be rotated without downtime.
func (t *Tenant) AddClientSecret() string {
	secret := newClientSecret()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.secrets = append(t.secrets, secret)
	return secret
}

// RemoveClientSecret deletes one of the app's client secrets, ending its
// validity at once (an unknown one is ignored).
func (t *Tenant) RemoveClientSecret(secret string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := t.secrets[:0]
	for _, s := range t.secrets {
		if s != secret {
			kept = append(kept, s)
		}
	}
	t.secrets = kept
}

// clientSecretValid reports whether secret is one of the app's.
func (t *Tenant) clientSecretValid(secret string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	valid := false
	for _, s := range t.secrets {
		// Every one compared, in constant time: which secret matched
		// must not show in the timing.
		if subtle.ConstantTimeCompare([]byte(secret), []byte(s)) == 1 {
			valid = true
		}
	}
	return valid
}

func newClientSecret() string {
	return "fake~" + randomString(30)
}

// SetClientSecretExpired makes the token endpoint refuse the client secret
// as expired (AADSTS7000222), as Entra ID does once a secret's end date has
// passed.
func (t *Tenant) SetClientSecretExpired(expired bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.secretExpired = expired
}

// SetClaimsHook installs f to mutate the claims of every ID token issued
// from now on; nil removes it.
func (t *Tenant) SetClaimsHook(f func(claims map[string]interface{})) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hook = f
}

// SetIDTokenHook installs f to issue the ID token itself: the token
// endpoint calls it with the claims it would sign (after the claims hook)
// and sends what it returns as id_token, so that tests can deliver forged
// headers (alg none, HS256, jku, a foreign key) or a replayed token through
// a real sign-in. nil restores normal signing.
func (t *Tenant) SetIDTokenHook(f func(claims map[string]interface{}) string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.idTokenHook = f
}

// TrustFederatedIssuer registers a federated identity credential on the
// app: client assertions from issuer with subject are accepted, verified
// with keys (nil keeps the keys registered before for that issuer).
func (t *Tenant) TrustFederatedIssuer(issuer string, keys jwt.KeySet, subject string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if keys != nil {
		t.issuerKeys[issuer] = keys
	}
	t.federated = append(t.federated, federatedCredential{issuer: issuer, subject: subject})
}

// RotateKey creates a new signing key with a new kid and signs with it from
// now on. keepOld keeps the previous keys published in the JWKS, as Entra
// ID does during a rollover; otherwise they disappear.
func (t *Tenant) RotateKey(keepOld bool) {
	k := newSigningKey()
	t.mu.Lock()
	defer t.mu.Unlock()
	if keepOld {
		t.keys = append(t.keys, k)
	} else {
		t.keys = []*signingKey{k}
	}
}

// SignToken signs claims with the tenant's current key (header alg RS256,
// typ JWT, kid; and x5t, equal to kid, for v1.0 claims, as Entra ID adds
// it there), e.g. to forge ID tokens in tests.
func (t *Tenant) SignToken(claims map[string]interface{}) string {
	k := t.currentKey()
	header := map[string]interface{}{"typ": "JWT", "alg": "RS256", "kid": k.kid}
	if claims["ver"] == "1.0" {
		header["x5t"] = k.kid
	}
	s, err := jwt.SignWithHeader(k.key, header, claims)
	if err != nil {
		panic("entraidtest: " + err.Error())
	}
	return s
}

// SignTokenWithHeader signs claims with the tenant's current key under
// exactly the header given (alg and kid included, so they can lie), to forge
// tokens a verifier must refuse. KeyID returns the kid to use for a
// genuine-looking one.
func (t *Tenant) SignTokenWithHeader(header, claims map[string]interface{}) string {
	s, err := jwt.SignWithHeader(t.currentKey().key, header, claims)
	if err != nil {
		panic("entraidtest: " + err.Error())
	}
	return s
}

// KeyID returns the kid of the tenant's current signing key.
func (t *Tenant) KeyID() string {
	return t.currentKey().kid
}

func (t *Tenant) currentKey() *signingKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys[len(t.keys)-1]
}

// publicKeys returns the published keys by kid.
func (t *Tenant) publicKeys() jwt.KeySet {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks := jwt.KeySet{}
	for _, k := range t.keys {
		ks[k.kid] = &k.key.PublicKey
	}
	return ks
}

// IDTokenClaims returns the claims of an ID token for u, as Entra ID's v2
// endpoint issues them, for tests to mutate and sign with SignToken.
func (t *Tenant) IDTokenClaims(u User, nonce string) map[string]interface{} {
	return t.idTokenClaims(u, t.ClientID, nonce)
}

// idTokenClaims are the claims of an ID token for u issued to clientID.
func (t *Tenant) idTokenClaims(u User, clientID, nonce string) map[string]interface{} {
	now := t.now()
	c := map[string]interface{}{
		"aud":                clientID,
		"iss":                t.Issuer(),
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(time.Hour).Unix(),
		"aio":                randomString(64),
		"idp":                "https://sts.windows.net/" + t.TenantID + "/",
		"name":               u.Name,
		"oid":                u.OID,
		"preferred_username": u.PreferredUsername,
		"rh":                 "0.A" + randomString(60) + ".",
		"sid":                newGUID(),
		"sub":                pairwiseSubject(u.OID, clientID),
		"tid":                t.TenantID,
		"uti":                randomString(22),
		"ver":                "2.0",
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	if u.Email != "" {
		c["email"] = u.Email
	}
	if len(u.Roles) > 0 {
		c["roles"] = append([]string(nil), u.Roles...)
	}
	// Entra ID puts at most 200 groups in a JWT; beyond that it points to
	// Microsoft Graph instead (the "groups overage").
	if len(u.Groups) > 200 {
		c["_claim_names"] = map[string]interface{}{"groups": "src1"}
		c["_claim_sources"] = map[string]interface{}{
			"src1": map[string]interface{}{"endpoint": "https://graph.microsoft.com/v1.0/users/" + u.OID + "/getMemberObjects"},
		}
	} else if len(u.Groups) > 0 {
		c["groups"] = append([]string(nil), u.Groups...)
	}
	return c
}

// pairwiseSubject derives sub from the user and the app, as Entra ID's
// pairwise subjects differ per app.
func pairwiseSubject(oid, clientID string) string {
	sum := sha256.Sum256([]byte(oid + "|" + clientID))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:43]
}

// user finds a user by PreferredUsername; UpdateUser may change users
// meanwhile, hence the lock.
func (t *Tenant) user(username string) (User, bool) {
	t.mu.Lock()
	all := append([]User(nil), t.Users...)
	t.mu.Unlock()
	for _, u := range all {
		if strings.EqualFold(u.PreferredUsername, username) {
			return u, true
		}
	}
	return User{}, false
}

// Handler returns the tenant's HTTP handler, to mount it elsewhere.
func (t *Tenant) Handler() http.Handler {
	return http.HandlerFunc(t.serveHTTP)
}

// routes maps the path after /{tenant} to an endpoint name.
var routes = map[string]string{
	"/v2.0/.well-known/openid-configuration": Discovery,
	"/discovery/v2.0/keys":                   JWKS,
	"/oauth2/v2.0/authorize":                 Authorize,
	"/oauth2/v2.0/token":                     Token,
	"/oauth2/v2.0/logout":                    Logout,
}

func (t *Tenant) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var segment, endpoint string
	if r.URL.Path == GraphMemberOfPath {
		endpoint = Graph
	} else {
		path := strings.TrimPrefix(r.URL.Path, "/")
		i := strings.Index(path, "/")
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		segment = path[:i]
		endpoint = routes[path[i:]]
		if endpoint == "" {
			http.NotFound(w, r)
			return
		}
	}

	t.mu.Lock()
	t.hits[endpoint]++
	f := t.faults[endpoint]
	t.mu.Unlock()
	if f.Delay > 0 {
		timer := time.NewTimer(f.Delay)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			return
		}
	}
	if f.Status != 0 {
		ct := "text/html; charset=utf-8"
		if strings.HasPrefix(strings.TrimSpace(f.Body), "{") {
			ct = "application/json; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
		return
	}

	if endpoint == Graph {
		t.serveGraph(w, r)
		return
	}
	tenant, ok := t.resolveTenant(segment)
	if !ok {
		e := stsErr(http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", segment))
		if endpoint == Authorize || endpoint == Logout {
			t.writeErrorPage(w, r, e)
		} else {
			t.writeError(w, r, e)
		}
		return
	}
	switch endpoint {
	case Discovery:
		t.serveDiscovery(w, r, tenant)
	case JWKS:
		t.serveJWKS(w, r)
	case Authorize:
		t.serveAuthorize(w, r)
	case Token:
		t.serveToken(w, r)
	case Logout:
		t.serveLogout(w, r)
	}
}

// resolveTenant maps a path segment to the segment endpoints use: the
// tenant ID for the ID or the verified domain, or organizations/common/
// consumers as given.
func (t *Tenant) resolveTenant(segment string) (string, bool) {
	s := strings.ToLower(segment)
	// Not "case t.TenantID, t.Domain:": Yaegi v0.16.1 matches only the first
	// of several non-constant case values.
	if s == t.TenantID || s == t.Domain {
		return t.TenantID, true
	}
	switch s {
	case "organizations", "common", "consumers":
		return s, true
	}
	return "", false
}

// ConsumersTenantID is the tenant of personal Microsoft accounts: the tid
// of their tokens, and the fixed issuer of the consumers endpoints.
const ConsumersTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"

func (t *Tenant) serveDiscovery(w http.ResponseWriter, r *http.Request, tenant string) {
	base := t.URL + "/" + tenant
	// As Entra ID: the tenant's own issuer, the {tenantid} template for
	// organizations and common, whose tokens come from many tenants, and
	// the personal accounts' tenant for consumers, whose tokens come from
	// that one only.
	issuer := t.Issuer()
	switch tenant {
	case "organizations", "common":
		issuer = t.URL + "/{tenantid}/v2.0"
	case "consumers":
		issuer = t.URL + "/" + ConsumersTenantID + "/v2.0"
	}
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                issuer,
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"kerberos_endpoint":                     base + "/kerberos",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
		"rbac_url":                              "https://pas.windows.net",
	})
}

// jwksDoc lets the fake add Entra ID's x5c and issuer to MarshalJWKS's keys.
type jwksDoc struct {
	Keys []map[string]interface{} `json:"keys"`
}

func (t *Tenant) serveJWKS(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	keys := append([]*signingKey(nil), t.keys...)
	t.mu.Unlock()
	ks := jwt.KeySet{}
	certs := map[string]string{}
	for _, k := range keys {
		ks[k.kid] = &k.key.PublicKey
		certs[k.kid] = base64.StdEncoding.EncodeToString(k.cert)
	}
	var doc jwksDoc
	if err := json.Unmarshal(jwt.MarshalJWKS(ks), &doc); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, k := range doc.Keys {
		kid, _ := k["kid"].(string)
		k["x5c"] = []string{certs[kid]}
		k["issuer"] = t.Issuer()
	}
	writeJSON(w, http.StatusOK, doc)
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(b)
}

// stsError is an error as Entra ID's security token service reports it.
type stsError struct {
	status int
	code   string // OAuth error
	aadsts int
	msg    string
	// claims is a claims challenge (JSON), which Entra ID adds to a
	// refusal that an interactive sign-in can resolve.
	claims string
}

func stsErr(status int, code string, aadsts int, msg string) *stsError {
	return &stsError{status: status, code: code, aadsts: aadsts, msg: msg}
}

// details returns the trace ID, correlation ID (the client's
// client-request-id when sent, as Entra ID does) and timestamp of an error.
func (t *Tenant) details(r *http.Request) (trace, correlation, timestamp string) {
	correlation = r.Header.Get("client-request-id")
	if correlation == "" {
		correlation = newGUID()
	}
	return newGUID(), correlation, t.now().UTC().Format("2006-01-02 15:04:05Z")
}

// description is error_description: the message, then trace, correlation
// and timestamp on their own lines.
func (e *stsError) description(trace, correlation, timestamp string) string {
	return fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", e.aadsts, e.msg, trace, correlation, timestamp)
}

// writeError answers with Entra ID's error JSON.
func (t *Tenant) writeError(w http.ResponseWriter, r *http.Request, e *stsError) {
	trace, corr, ts := t.details(r)
	w.Header().Set("x-ms-request-id", trace)
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="login.microsoftonline.com"`)
	}
	body := map[string]interface{}{
		"error":             e.code,
		"error_description": e.description(trace, corr, ts),
		"error_codes":       []int{e.aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("%s/error?code=%d", t.URL, e.aadsts),
	}
	if e.claims != "" {
		body["claims"] = e.claims
		body["suberror"] = "basic_action"
	}
	writeJSON(w, e.status, body)
}

func newSigningKey() *signingKey {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("entraidtest: " + err.Error())
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic("entraidtest: " + err.Error())
	}
	sum := sha1.Sum(der)
	return &signingKey{kid: base64.RawURLEncoding.EncodeToString(sum[:]), key: key, cert: der}
}

// newGUID returns a random (version 4) GUID.
func newGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("entraidtest: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomString returns n random base64url characters.
func randomString(n int) string {
	b := make([]byte, (n*3+3)/4)
	if _, err := rand.Read(b); err != nil {
		panic("entraidtest: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
