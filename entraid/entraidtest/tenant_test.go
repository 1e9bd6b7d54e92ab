package entraidtest

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

func newTestTenant(t *testing.T, opts Options) *Tenant {
	t.Helper()
	ten := NewTenant(opts)
	t.Cleanup(ten.Close)
	return ten
}

// getJSON fetches a URL and decodes its JSON body.
func getJSON(t *testing.T, url string, header http.Header) (int, http.Header, map[string]interface{}) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range header {
		req.Header[name] = values
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]interface{}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("GET %s: %d %s: %v", url, resp.StatusCode, body, err)
	}
	return resp.StatusCode, resp.Header, doc
}

// checkEntraError checks the shape of an Entra ID error answer.
func checkEntraError(t *testing.T, doc map[string]interface{}, wantError, wantCode string) {
	t.Helper()
	if doc["error"] != wantError {
		t.Errorf("error = %v, want %s", doc["error"], wantError)
	}
	desc, _ := doc["error_description"].(string)
	if !strings.HasPrefix(desc, wantCode+": ") {
		t.Errorf("error_description %q does not start with %s", desc, wantCode)
	}
	if !strings.Contains(desc, "\r\nTrace ID: ") || !strings.Contains(desc, "\r\nCorrelation ID: ") || !strings.Contains(desc, "\r\nTimestamp: ") {
		t.Errorf("error_description %q lacks the trace, correlation and timestamp lines", desc)
	}
	codes, _ := doc["error_codes"].([]interface{})
	if len(codes) != 1 || "AADSTS"+jsonInt(codes[0]) != wantCode {
		t.Errorf("error_codes = %v, want [%s]", doc["error_codes"], strings.TrimPrefix(wantCode, "AADSTS"))
	}
	for _, name := range []string{"trace_id", "correlation_id", "timestamp", "error_uri"} {
		if s, _ := doc[name].(string); s == "" {
			t.Errorf("%s is missing", name)
		}
	}
}

func jsonInt(v interface{}) string {
	f, _ := v.(float64)
	b, _ := json.Marshal(int64(f))
	return string(b)
}

func TestNewTenantDefaults(t *testing.T) {
	ten := newTestTenant(t, Options{})
	for _, v := range []struct{ name, value string }{
		{"TenantID", ten.TenantID},
		{"ClientID", ten.ClientID},
	} {
		if len(v.value) != 36 || strings.Count(v.value, "-") != 4 {
			t.Errorf("%s %q is not a GUID", v.name, v.value)
		}
	}
	if ten.ClientSecret == "" || ten.Domain != "contoso.example" {
		t.Errorf("secret %q, domain %q", ten.ClientSecret, ten.Domain)
	}
	if len(ten.Users) != 2 || ten.Users[0].PreferredUsername != "alice@contoso.example" || ten.Users[1].PreferredUsername != "bob@contoso.example" {
		t.Errorf("users = %+v", ten.Users)
	}
	if !strings.HasPrefix(ten.URL, "http://127.0.0.1:") {
		t.Errorf("URL = %s", ten.URL)
	}
	if got, want := ten.Issuer(), ten.URL+"/"+ten.TenantID+"/v2.0"; got != want {
		t.Errorf("Issuer() = %s, want %s", got, want)
	}
	other := newTestTenant(t, Options{})
	if other.TenantID == ten.TenantID || other.ClientID == ten.ClientID {
		t.Error("two tenants share IDs")
	}
}

func TestNewTenantOptions(t *testing.T) {
	t.Run("users without OID get one", func(t *testing.T) {
		ten := newTestTenant(t, Options{Users: []User{{Name: "Carol", PreferredUsername: "carol@x.example"}}})
		if len(ten.Users) != 1 || len(ten.Users[0].OID) != 36 {
			t.Errorf("users = %+v", ten.Users)
		}
	})
	t.Run("Addr picks the listening address", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		ten := newTestTenant(t, Options{Addr: addr, Domain: "Fabrikam.Example"})
		if ten.URL != "http://"+addr {
			t.Errorf("URL = %s, want http://%s", ten.URL, addr)
		}
		if ten.Domain != "fabrikam.example" {
			t.Errorf("Domain = %s", ten.Domain)
		}
	})
}

func TestDiscovery(t *testing.T) {
	ten := newTestTenant(t, Options{})
	tests := []struct {
		name       string
		segment    string
		wantBase   string
		wantIssuer string
	}{
		{"by tenant ID", ten.TenantID, ten.URL + "/" + ten.TenantID, ten.Issuer()},
		{"by upper-case tenant ID", strings.ToUpper(ten.TenantID), ten.URL + "/" + ten.TenantID, ten.Issuer()},
		{"by verified domain, with endpoints by tenant ID", "contoso.example", ten.URL + "/" + ten.TenantID, ten.Issuer()},
		{"organizations announces the issuer template", "organizations", ten.URL + "/organizations", ten.URL + "/{tenantid}/v2.0"},
		{"common announces the issuer template", "common", ten.URL + "/common", ten.URL + "/{tenantid}/v2.0"},
		{"consumers announces the personal accounts' fixed issuer", "consumers", ten.URL + "/consumers", ten.URL + "/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"},
	}
	for _, tt := range tests {
		status, header, doc := getJSON(t, ten.URL+"/"+tt.segment+"/v2.0/.well-known/openid-configuration", nil)
		if status != http.StatusOK || !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s", tt.name, status, header.Get("Content-Type"))
		}
		want := map[string]string{
			"issuer":                 tt.wantIssuer,
			"authorization_endpoint": tt.wantBase + "/oauth2/v2.0/authorize",
			"token_endpoint":         tt.wantBase + "/oauth2/v2.0/token",
			"jwks_uri":               tt.wantBase + "/discovery/v2.0/keys",
			"end_session_endpoint":   tt.wantBase + "/oauth2/v2.0/logout",
			"userinfo_endpoint":      "https://graph.microsoft.com/oidc/userinfo",
		}
		for name, v := range want {
			if doc[name] != v {
				t.Errorf("%s: %s = %v, want %s", tt.name, name, doc[name], v)
			}
		}
		algs, _ := doc["id_token_signing_alg_values_supported"].([]interface{})
		if len(algs) != 1 || algs[0] != "RS256" {
			t.Errorf("%s: algs = %v", tt.name, algs)
		}
	}
	if got := ten.Hits(Discovery); got != len(tests) {
		t.Errorf("Hits(Discovery) = %d, want %d", got, len(tests))
	}
}

func TestUnknownTenant(t *testing.T) {
	ten := newTestTenant(t, Options{})
	status, header, doc := getJSON(t, ten.URL+"/fabrikam.example/v2.0/.well-known/openid-configuration", http.Header{"Client-Request-Id": {"7b4ad7a4-0d5e-4c9f-8a3b-1a2b3c4d5e6f"}})
	if status != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", status)
	}
	checkEntraError(t, doc, "invalid_tenant", "AADSTS90002")
	if doc["correlation_id"] != "7b4ad7a4-0d5e-4c9f-8a3b-1a2b3c4d5e6f" {
		t.Errorf("correlation_id %v does not echo client-request-id", doc["correlation_id"])
	}
	if header.Get("x-ms-request-id") != doc["trace_id"] {
		t.Errorf("x-ms-request-id %q, trace_id %v", header.Get("x-ms-request-id"), doc["trace_id"])
	}
}

func TestUnknownPathIsNotFound(t *testing.T) {
	ten := newTestTenant(t, Options{})
	for _, path := range []string{"/", "/x", "/" + ten.TenantID + "/oauth2/authorize", "/" + ten.TenantID + "/v2.0/.well-known/other"} {
		resp, err := http.Get(ten.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}

func fetchJWKS(t *testing.T, ten *Tenant) []interface{} {
	t.Helper()
	_, _, doc := getJSON(t, ten.URL+"/"+ten.TenantID+"/discovery/v2.0/keys", nil)
	keys, _ := doc["keys"].([]interface{})
	return keys
}

func TestJWKS(t *testing.T) {
	ten := newTestTenant(t, Options{})
	keys := fetchJWKS(t, ten)
	if len(keys) != 1 {
		t.Fatalf("%d keys, want 1", len(keys))
	}
	k := keys[0].(map[string]interface{})
	for _, name := range []string{"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"} {
		if _, ok := k[name]; !ok {
			t.Errorf("key has no %s", name)
		}
	}
	if _, ok := k["alg"]; ok {
		t.Error("key has an alg; Entra ID's keys have none")
	}
	if k["issuer"] != ten.Issuer() {
		t.Errorf("issuer = %v", k["issuer"])
	}
	x5c, _ := k["x5c"].([]interface{})
	der, err := base64.StdEncoding.DecodeString(x5c[0].(string))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(der)
	if thumb := base64.RawURLEncoding.EncodeToString(sum[:]); k["kid"] != thumb || k["x5t"] != thumb {
		t.Errorf("kid %v and x5t %v should be the certificate thumbprint %s", k["kid"], k["x5t"], thumb)
	}

	t.Run("SignToken verifies with the published key", func(t *testing.T) {
		raw, err := json.Marshal(map[string]interface{}{"keys": keys})
		if err != nil {
			t.Fatal(err)
		}
		ks, err := jwt.ParseJWKS(raw)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Parse(ten.SignToken(map[string]interface{}{"sub": "x"}))
		if err != nil {
			t.Fatal(err)
		}
		if tok.Header.Typ != "JWT" || tok.Header.Kid != k["kid"] {
			t.Errorf("header = %+v", tok.Header)
		}
		if err := tok.VerifyRS256(ks[tok.Header.Kid]); err != nil {
			t.Error(err)
		}
	})
}

func TestRotateKey(t *testing.T) {
	kids := func(ten *Tenant) []string {
		var out []string
		for _, k := range fetchJWKS(t, ten) {
			out = append(out, k.(map[string]interface{})["kid"].(string))
		}
		return out
	}
	tests := []struct {
		name     string
		keepOld  bool
		wantKeys int
	}{
		{"keeping old keys publishes both", true, 2},
		{"dropping old keys publishes only the new one", false, 1},
	}
	for _, tt := range tests {
		ten := newTestTenant(t, Options{})
		before, _ := jwt.Parse(ten.SignToken(map[string]interface{}{}))
		ten.RotateKey(tt.keepOld)
		after, _ := jwt.Parse(ten.SignToken(map[string]interface{}{}))
		if before.Header.Kid == after.Header.Kid {
			t.Errorf("%s: kid did not change", tt.name)
		}
		got := kids(ten)
		if len(got) != tt.wantKeys || !containsString(got, after.Header.Kid) {
			t.Errorf("%s: JWKS kids %v, want %d including %s", tt.name, got, tt.wantKeys, after.Header.Kid)
		}
		if containsString(got, before.Header.Kid) != tt.keepOld {
			t.Errorf("%s: old kid published = %v", tt.name, !tt.keepOld)
		}
	}
}

func TestSetFault(t *testing.T) {
	ten := newTestTenant(t, Options{})
	url := ten.URL + "/" + ten.TenantID + "/discovery/v2.0/keys"
	get := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	tests := []struct {
		name       string
		fault      Fault
		wantStatus int
		wantBody   string
		minDelay   time.Duration
	}{
		{"a status and body replace the answer", Fault{Status: 503, Body: "<h1>down</h1>"}, 503, "<h1>down</h1>", 0},
		{"a JSON body is served as JSON", Fault{Status: 500, Body: `{"error":"server_error"}`}, 500, `{"error":"server_error"}`, 0},
		{"a delay alone slows the real answer", Fault{Delay: 150 * time.Millisecond}, 200, `"keys"`, 150 * time.Millisecond},
		{"the zero Fault clears it", Fault{}, 200, `"keys"`, 0},
	}
	for _, tt := range tests {
		ten.SetFault(JWKS, tt.fault)
		status, body, took := get()
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) || took < tt.minDelay {
			t.Errorf("%s: %d %q after %s", tt.name, status, body, took)
		}
	}
	if got := ten.Hits(JWKS); got != len(tests) {
		t.Errorf("Hits(JWKS) = %d, want %d (faulted requests count)", got, len(tests))
	}
	if got := ten.Hits(Token); got != 0 {
		t.Errorf("Hits(Token) = %d, want 0", got)
	}
}

func TestIDTokenClaims(t *testing.T) {
	now := time.Unix(1700000000, 0)
	ten := newTestTenant(t, Options{Now: func() time.Time { return now }})
	alice := ten.Users[0]
	c := ten.IDTokenClaims(alice, "n-123")
	for _, name := range []string{"aud", "iss", "iat", "nbf", "exp", "nonce", "oid", "sub", "tid", "preferred_username", "name", "email", "roles", "groups", "ver", "idp", "sid", "uti", "aio", "rh"} {
		if _, ok := c[name]; !ok {
			t.Errorf("claim %s missing", name)
		}
	}
	want := map[string]interface{}{
		"aud": ten.ClientID, "iss": ten.Issuer(), "tid": ten.TenantID, "oid": alice.OID, "nonce": "n-123",
		"ver": "2.0", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"preferred_username": alice.PreferredUsername, "name": alice.Name, "email": alice.Email,
	}
	for name, v := range want {
		if c[name] != v {
			t.Errorf("%s = %v, want %v", name, c[name], v)
		}
	}
	if c["sub"] == alice.OID {
		t.Error("sub should be pairwise, not the object ID")
	}

	t.Run("absent values are left out", func(t *testing.T) {
		c := ten.IDTokenClaims(User{OID: "x", Name: "N", PreferredUsername: "n@x"}, "")
		for _, name := range []string{"nonce", "email", "roles", "groups"} {
			if _, ok := c[name]; ok {
				t.Errorf("claim %s present", name)
			}
		}
	})
	t.Run("more than 200 groups is an overage", func(t *testing.T) {
		u := alice
		u.Groups = make([]string, 201)
		for i := range u.Groups {
			u.Groups[i] = newGUID()
		}
		c := ten.IDTokenClaims(u, "n")
		if _, ok := c["groups"]; ok {
			t.Error("groups claim present despite overage")
		}
		names, _ := c["_claim_names"].(map[string]interface{})
		if names["groups"] != "src1" {
			t.Errorf("_claim_names = %v", c["_claim_names"])
		}
		if _, ok := c["_claim_sources"]; !ok {
			t.Error("_claim_sources missing")
		}
	})
}
