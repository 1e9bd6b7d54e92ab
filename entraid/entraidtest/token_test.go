package entraidtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

type tokenAnswer struct {
	status int
	header http.Header
	doc    map[string]interface{}
	claims map[string]interface{} // of the id_token, when there is one
}

func postToken(t *testing.T, ten *Tenant, form url.Values, basicUser, basicPass string) tokenAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ten.URL+"/"+ten.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := tokenAnswer{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(b, &a.doc); err != nil {
		t.Fatalf("token endpoint: %d %s", resp.StatusCode, b)
	}
	if raw, _ := a.doc["id_token"].(string); raw != "" {
		tok, err := jwt.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		a.claims = tok.Claims
	}
	return a
}

// codeForm is a good authorization code redemption with the client secret.
func codeForm(ten *Tenant, code string) url.Values {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {ten.ClientID},
		"client_secret": {ten.ClientSecret},
		"code":          {code},
		"redirect_uri":  {"https://app.example/portals/main/oauth2/callback"},
		"code_verifier": {testVerifier},
		"scope":         {"openid profile email"},
	}
}

// redeem redeems code and fails the test unless it works.
func redeem(t *testing.T, ten *Tenant, code string) tokenAnswer {
	t.Helper()
	a := postToken(t, ten, codeForm(ten, code), "", "")
	if a.status != http.StatusOK {
		t.Fatalf("redeem: %d %v", a.status, a.doc)
	}
	return a
}

// newCode signs username in through the sign-in form and returns the code.
func newCode(t *testing.T, ten *Tenant, username string, change url.Values) string {
	t.Helper()
	p := authParams(ten)
	for name, v := range change {
		p[name] = v
	}
	p.Set("login", username)
	a := authorize(t, ten, http.MethodPost, p)
	if a.location == nil || a.location.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %v", a.status, a.location)
	}
	return a.location.Query().Get("code")
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRedeemCode(t *testing.T) {
	clk := &clock{now: time.Now()}
	ten := newTestTenant(t, Options{Now: clk.Now})
	alice := ten.Users[0]

	t.Run("a code gives Entra-shaped tokens", func(t *testing.T) {
		a := redeem(t, ten, newCode(t, ten, alice.PreferredUsername, nil))
		if a.doc["token_type"] != "Bearer" || a.doc["expires_in"] != float64(3599) || a.doc["ext_expires_in"] != float64(3599) {
			t.Errorf("answer %v", a.doc)
		}
		if a.doc["scope"] != "email openid profile https://graph.microsoft.com/User.Read" {
			t.Errorf("scope %v", a.doc["scope"])
		}
		if _, ok := a.doc["refresh_token"]; ok {
			t.Error("refresh_token without offline_access")
		}
		if a.claims["nonce"] != "nonce-1" || a.claims["oid"] != alice.OID || a.claims["aud"] != ten.ClientID || a.claims["iat"] != float64(clk.Now().Unix()) {
			t.Errorf("claims %v", a.claims)
		}
		at, err := jwt.Parse(a.doc["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if !at.Header.Nonce || at.String("aud") != graphAppID {
			t.Errorf("access token header %+v, aud %s: want Graph's shape with a nonce header", at.Header, at.String("aud"))
		}
		if a.header.Get("Cache-Control") != "no-store, no-cache" {
			t.Errorf("Cache-Control %q", a.header.Get("Cache-Control"))
		}
	})
	t.Run("offline_access adds a refresh token", func(t *testing.T) {
		a := redeem(t, ten, newCode(t, ten, alice.PreferredUsername, url.Values{"scope": {"openid offline_access"}}))
		if s, _ := a.doc["refresh_token"].(string); s == "" {
			t.Errorf("answer %v", a.doc)
		}
	})
	t.Run("the claims hook changes issued ID tokens", func(t *testing.T) {
		ten.SetClaimsHook(func(c map[string]interface{}) { c["roles"] = []string{"Hooked"} })
		defer ten.SetClaimsHook(nil)
		a := redeem(t, ten, newCode(t, ten, alice.PreferredUsername, nil))
		if roles, _ := a.claims["roles"].([]interface{}); len(roles) != 1 || roles[0] != "Hooked" {
			t.Errorf("roles %v", a.claims["roles"])
		}
	})
	t.Run("client_secret_basic works, form-encoded", func(t *testing.T) {
		secretTen := newTestTenant(t, Options{ClientSecret: "a+b/c=d e~"})
		f := codeForm(secretTen, newCode(t, secretTen, alice.PreferredUsername, nil))
		f.Del("client_secret")
		f.Del("client_id")
		a := postToken(t, secretTen, f, url.QueryEscape(secretTen.ClientID), url.QueryEscape("a+b/c=d e~"))
		if a.status != http.StatusOK {
			t.Errorf("%d %v", a.status, a.doc)
		}
	})

	tests := []struct {
		name       string
		prepare    func(f url.Values) // changes a fresh, good redemption
		wantStatus int
		wantError  string
		wantCode   string
	}{
		{"GET is refused", nil, 400, "invalid_request", "AADSTS900561"},
		{"a missing client_id is refused", func(f url.Values) { f.Del("client_id") }, 400, "invalid_request", "AADSTS900144"},
		{"an unknown client is refused", func(f url.Values) { f.Set("client_id", "22222222-2222-2222-2222-222222222222") }, 400, "unauthorized_client", "AADSTS700016"},
		{"a wrong secret is refused", func(f url.Values) { f.Set("client_secret", "nope") }, 401, "invalid_client", "AADSTS7000215"},
		{"no credential is refused", func(f url.Values) { f.Del("client_secret") }, 401, "invalid_client", "AADSTS7000218"},
		{"both secret and assertion are refused", func(f url.Values) {
			f.Set("client_assertion", "x.y.z")
			f.Set("client_assertion_type", clientAssertionType)
		}, 400, "invalid_request", "AADSTS90023"},
		{"a missing grant_type is refused", func(f url.Values) { f.Del("grant_type") }, 400, "invalid_request", "AADSTS900144"},
		{"an unsupported grant type", func(f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type", "AADSTS70003"},
		{"a missing code is refused", func(f url.Values) { f.Del("code") }, 400, "invalid_request", "AADSTS900144"},
		{"an unknown code is refused", func(f url.Values) { f.Set("code", "1.Anope") }, 400, "invalid_grant", "AADSTS9002313"},
		{"another redirect_uri is refused", func(f url.Values) { f.Set("redirect_uri", "https://app.example/other") }, 400, "invalid_grant", "AADSTS500112"},
		{"a wrong code_verifier is refused", func(f url.Values) { f.Set("code_verifier", testVerifier+"x") }, 400, "invalid_grant", "AADSTS501481"},
		{"a missing code_verifier is refused", func(f url.Values) { f.Del("code_verifier") }, 400, "invalid_grant", "AADSTS501481"},
	}
	for _, tt := range tests {
		f := codeForm(ten, newCode(t, ten, alice.PreferredUsername, nil))
		var a tokenAnswer
		if tt.prepare == nil {
			resp, err := http.Get(ten.URL + "/" + ten.TenantID + "/oauth2/v2.0/token")
			if err != nil {
				t.Fatal(err)
			}
			a.status = resp.StatusCode
			json.NewDecoder(resp.Body).Decode(&a.doc)
			resp.Body.Close()
		} else {
			tt.prepare(f)
			a = postToken(t, ten, f, "", "")
		}
		if a.status != tt.wantStatus {
			t.Errorf("%s: status %d, want %d", tt.name, a.status, tt.wantStatus)
		}
		checkEntraError(t, a.doc, tt.wantError, tt.wantCode)
		if tt.wantStatus == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
		}
	}

	t.Run("a code is single use", func(t *testing.T) {
		code := newCode(t, ten, alice.PreferredUsername, nil)
		redeem(t, ten, code)
		a := postToken(t, ten, codeForm(ten, code), "", "")
		checkEntraError(t, a.doc, "invalid_grant", "AADSTS54005")
	})
	t.Run("a failed redemption does not use the code up", func(t *testing.T) {
		code := newCode(t, ten, alice.PreferredUsername, nil)
		f := codeForm(ten, code)
		f.Set("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier")
		postToken(t, ten, f, "", "")
		redeem(t, ten, code)
	})
	t.Run("a code expires after 10 minutes", func(t *testing.T) {
		code := newCode(t, ten, alice.PreferredUsername, nil)
		clk.Advance(10*time.Minute + time.Second)
		a := postToken(t, ten, codeForm(ten, code), "", "")
		checkEntraError(t, a.doc, "invalid_grant", "AADSTS70008")
	})
	t.Run("an expired secret is refused", func(t *testing.T) {
		ten.SetClientSecretExpired(true)
		defer ten.SetClientSecretExpired(false)
		a := postToken(t, ten, codeForm(ten, newCode(t, ten, alice.PreferredUsername, nil)), "", "")
		checkEntraError(t, a.doc, "invalid_client", "AADSTS7000222")
	})
	t.Run("a secret rotates: the added one works alongside the old until that is removed", func(t *testing.T) {
		rot := newTestTenant(t, Options{})
		added := rot.AddClientSecret()
		if added == "" || added == rot.ClientSecret {
			t.Fatalf("AddClientSecret returned %q", added)
		}
		redeemWith := func(secret string) tokenAnswer {
			f := codeForm(rot, newCode(t, rot, alice.PreferredUsername, nil))
			f.Set("client_secret", secret)
			return postToken(t, rot, f, "", "")
		}
		for _, secret := range []string{rot.ClientSecret, added} {
			if a := redeemWith(secret); a.status != http.StatusOK {
				t.Errorf("during the rotation a secret was refused: %d %v", a.status, a.doc)
			}
		}
		rot.RemoveClientSecret(rot.ClientSecret)
		checkEntraError(t, redeemWith(rot.ClientSecret).doc, "invalid_client", "AADSTS7000215")
		if a := redeemWith(added); a.status != http.StatusOK {
			t.Errorf("the new secret was refused after the old one's removal: %d %v", a.status, a.doc)
		}
		checkEntraError(t, redeemWith(added+"\n").doc, "invalid_client", "AADSTS7000215")
	})
	t.Run("an unregistered redirect_uri is refused with AADSTS50011", func(t *testing.T) {
		reg := newTestTenant(t, Options{RedirectURIs: []string{"https://app.example/portals/main/oauth2/callback"}})
		f := codeForm(reg, newCode(t, reg, alice.PreferredUsername, nil))
		f.Set("redirect_uri", "https://other.example/cb")
		checkEntraError(t, postToken(t, reg, f, "", "").doc, "invalid_request", "AADSTS50011")
	})
}

// federation is an external issuer (a Kubernetes cluster, say) the tenant
// trusts through a federated identity credential.
type federation struct {
	issuer string
	key    *rsa.PrivateKey
}

func newFederation(t *testing.T) *federation {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &federation{issuer: "https://oidc.cluster.example/abc", key: k}
}

func (f *federation) keys() jwt.KeySet {
	return jwt.KeySet{"k8s": &f.key.PublicKey}
}

func (f *federation) token(t *testing.T, change map[string]interface{}) string {
	t.Helper()
	now := time.Now()
	c := map[string]interface{}{
		"iss": f.issuer,
		"sub": "system:serviceaccount:web:traefik",
		"aud": []string{TokenExchangeAudience},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for name, v := range change {
		c[name] = v
	}
	s, err := jwt.Sign(f.key, "k8s", c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertionForm(ten *Tenant, code, assertion string) url.Values {
	f := codeForm(ten, code)
	f.Del("client_secret")
	f.Set("client_assertion_type", clientAssertionType)
	f.Set("client_assertion", assertion)
	return f
}

func TestClientAssertion(t *testing.T) {
	ten := newTestTenant(t, Options{})
	fed := newFederation(t)
	ten.TrustFederatedIssuer(fed.issuer, fed.keys(), "system:serviceaccount:web:traefik")
	alice := ten.Users[0].PreferredUsername

	t.Run("a matching assertion authenticates the app", func(t *testing.T) {
		a := postToken(t, ten, assertionForm(ten, newCode(t, ten, alice, nil), fed.token(t, nil)), "", "")
		if a.status != http.StatusOK {
			t.Errorf("%d %v", a.status, a.doc)
		}
	})

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	badSig, _ := jwt.Sign(other, "k8s", map[string]interface{}{"iss": fed.issuer, "sub": "system:serviceaccount:web:traefik", "aud": TokenExchangeAudience, "exp": time.Now().Add(time.Hour).Unix()})
	tests := []struct {
		name       string
		assertion  string
		typ        string
		wantStatus int
		wantError  string
		wantCode   string
	}{
		{"an unknown issuer is refused", fed.token(t, map[string]interface{}{"iss": "https://oidc.cluster.example/abc/"}), clientAssertionType, 401, "invalid_client", "AADSTS700211"},
		{"the API server audience is refused", fed.token(t, map[string]interface{}{"aud": []string{"https://kubernetes.default.svc"}}), clientAssertionType, 401, "invalid_client", "AADSTS700212"},
		{"another subject is refused", fed.token(t, map[string]interface{}{"sub": "system:serviceaccount:web:default"}), clientAssertionType, 400, "invalid_request", "AADSTS70021"},
		{"an expired assertion is refused", fed.token(t, map[string]interface{}{"exp": time.Now().Add(-time.Minute).Unix()}), clientAssertionType, 401, "invalid_client", "AADSTS700024"},
		{"a bad signature is refused", badSig, clientAssertionType, 401, "invalid_client", "AADSTS700027"},
		{"garbage is refused", "not-a-jwt", clientAssertionType, 400, "invalid_request", "AADSTS50027"},
		{"a wrong client_assertion_type is refused", fed.token(t, nil), "jwt", 400, "invalid_request", "AADSTS900144"},
	}
	for _, tt := range tests {
		f := assertionForm(ten, newCode(t, ten, alice, nil), tt.assertion)
		f.Set("client_assertion_type", tt.typ)
		a := postToken(t, ten, f, "", "")
		if a.status != tt.wantStatus {
			t.Errorf("%s: status %d, want %d", tt.name, a.status, tt.wantStatus)
		}
		checkEntraError(t, a.doc, tt.wantError, tt.wantCode)
	}
	if !strings.Contains(postToken(t, ten, assertionForm(ten, "x", fed.token(t, map[string]interface{}{"sub": "s2"})), "", "").doc["error_description"].(string), "Assertion Subject: 's2'") {
		t.Error("AADSTS70021 does not name the subject")
	}
}

func TestWorkloadIdentityHops(t *testing.T) {
	ten := newTestTenant(t, Options{})
	fed := newFederation(t)
	ten.TrustFederatedIssuer(fed.issuer, fed.keys(), "system:serviceaccount:web:traefik")
	workloadClient := "33333333-3333-3333-3333-333333333333"

	hop1 := func(scope string) tokenAnswer {
		return postToken(t, ten, url.Values{
			"grant_type":            {"client_credentials"},
			"client_id":             {workloadClient},
			"scope":                 {scope},
			"client_assertion_type": {clientAssertionType},
			"client_assertion":      {fed.token(t, nil)},
		}, "", "")
	}
	a := hop1(TokenExchangeAudience + "/.default")
	if a.status != http.StatusOK || a.doc["token_type"] != "Bearer" {
		t.Fatalf("hop 1: %d %v", a.status, a.doc)
	}
	at, err := jwt.Parse(a.doc["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if at.String("iss") != ten.Issuer() || at.String("aud") != TokenExchangeAudience || at.String("sub") != workloadClient || at.Header.Nonce {
		t.Errorf("hop 1 token: header %+v claims %v", at.Header, at.Claims)
	}

	t.Run("the hop 1 token without a credential for its subject is refused", func(t *testing.T) {
		code := newCode(t, ten, ten.Users[0].PreferredUsername, nil)
		b := postToken(t, ten, assertionForm(ten, code, a.doc["access_token"].(string)), "", "")
		if b.status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(b.doc["error_codes"]), "70021") {
			t.Errorf("hop 2 without a federated credential: %d %v, want AADSTS70021", b.status, b.doc)
		}
	})

	// The app registration trusts the workload's identity, as Entra ID
	// requires of tokens from its own issuer too.
	ten.TrustFederatedIssuer(ten.Issuer(), nil, workloadClient)
	t.Run("the hop 1 token authenticates the app in hop 2", func(t *testing.T) {
		code := newCode(t, ten, ten.Users[0].PreferredUsername, nil)
		b := postToken(t, ten, assertionForm(ten, code, a.doc["access_token"].(string)), "", "")
		if b.status != http.StatusOK {
			t.Errorf("hop 2: %d %v", b.status, b.doc)
		}
	})
	t.Run("hop 1 refuses other scopes", func(t *testing.T) {
		checkEntraError(t, hop1("https://graph.microsoft.com/.default").doc, "invalid_scope", "AADSTS70011")
	})
	t.Run("the tenant's ID tokens are not assertions", func(t *testing.T) {
		idToken := ten.SignToken(ten.IDTokenClaims(ten.Users[0], "n"))
		b := postToken(t, ten, assertionForm(ten, "x", idToken), "", "")
		checkEntraError(t, b.doc, "invalid_client", "AADSTS700212")
	})
	t.Run("an unknown client needs an assertion", func(t *testing.T) {
		b := postToken(t, ten, url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {workloadClient},
			"client_secret": {ten.ClientSecret},
			"scope":         {TokenExchangeAudience + "/.default"},
		}, "", "")
		checkEntraError(t, b.doc, "unauthorized_client", "AADSTS700016")
	})
}

func TestAnotherAppSignsInWithItsOwnClientIDAndSecret(t *testing.T) {
	ten := newTestTenant(t, Options{})
	const appB, secretB = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "secret-of-app-b"
	p := authParams(ten)
	p.Set("client_id", appB)
	p.Set("login", "alice@contoso.example")
	if a := authorize(t, ten, http.MethodPost, p); a.status != http.StatusBadRequest || a.location != nil {
		t.Fatalf("an unregistered app at authorize: %d %v, want the AADSTS700016 page", a.status, a.location)
	}
	ten.AddApp(appB, secretB)
	code := newCode(t, ten, "alice@contoso.example", url.Values{"client_id": {appB}})
	form := codeForm(ten, code)
	form.Set("client_id", appB)
	form.Set("client_secret", ten.ClientSecret) // the first app's secret
	if a := postToken(t, ten, form, "", ""); a.status != http.StatusUnauthorized || a.doc["error"] != "invalid_client" {
		t.Fatalf("app B with app A's secret: %d %v, want invalid_client", a.status, a.doc)
	}
	form.Set("client_secret", secretB)
	a := postToken(t, ten, form, "", "")
	if a.status != http.StatusOK || a.claims["aud"] != appB {
		t.Fatalf("app B's sign-in: %d, aud %v, want 200 and aud %s", a.status, a.claims["aud"], appB)
	}
	if a.claims["sub"] == pairwiseSubject(ten.Users[0].OID, ten.ClientID) {
		t.Error("app B's subject is app A's: subjects are pairwise per app")
	}
}
