package entraid

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

// forgeHMAC signs claims with HS256 keyed with secret: the key-confusion
// attack, where secret is the verifier's RSA public key in some encoding.
func forgeHMAC(kid string, secret []byte, claims map[string]interface{}) string {
	enc := func(v interface{}) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(map[string]interface{}{"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + enc(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func str(s string) *string { return &s }

func TestVerifyIDToken(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	ctx := context.Background()
	ten := f.tenant
	kid := ten.KeyID()
	md, err := f.client.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := f.client.signingKey(ctx, md.JWKSURI, kid, false)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pub)
	pkix, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other := entraidtest.NewTenant(entraidtest.Options{ClientID: ten.ClientID, TenantID: ten.TenantID, Now: f.clock.Now})
	defer other.Close()

	now := f.clock.Now()
	alice := ten.Users[0]
	genuine := func(c map[string]interface{}) string { return ten.SignToken(c) }
	withHeader := func(h map[string]interface{}) func(map[string]interface{}) string {
		return func(c map[string]interface{}) string { return ten.SignTokenWithHeader(h, c) }
	}
	set := func(name string, v interface{}) func(map[string]interface{}) {
		return func(c map[string]interface{}) {
			if v == nil {
				delete(c, name)
			} else {
				c[name] = v
			}
		}
	}
	tests := []struct {
		name   string
		change func(c map[string]interface{})
		sign   func(c map[string]interface{}) string
		raw    *string // instead of change and sign
		nonce  *string // expected nonce; default "nonce-1"
		want   string  // "" for valid, else the check named in the error
	}{
		{name: "a genuine token verifies"},
		{name: "exp within the 5 minute skew verifies", change: set("exp", now.Add(-4*time.Minute).Unix())},
		{name: "nbf within the 5 minute skew verifies", change: set("nbf", now.Add(4*time.Minute).Unix())},
		{name: "several audiences with azp = client verify", change: func(c map[string]interface{}) {
			c["aud"] = []string{ten.ClientID, "api://other"}
			c["azp"] = ten.ClientID
		}},
		{name: "an aud array of one verifies", change: set("aud", []string{ten.ClientID})},
		{name: "a token without nbf verifies", change: set("nbf", nil)},

		{name: "alg none without signature is refused", sign: func(c map[string]interface{}) string {
			s, _ := jwt.SignWithHeader(nil, map[string]interface{}{"alg": "none", "kid": kid, "typ": "JWT"}, c)
			return s
		}, want: "alg:"},
		{name: "alg none with a valid signature is refused", sign: withHeader(map[string]interface{}{"alg": "none", "kid": kid, "typ": "JWT"}), want: "alg:"},
		{name: "HS256 keyed with the PKCS#1 public key is refused", sign: func(c map[string]interface{}) string { return forgeHMAC(kid, pkcs1, c) }, want: "alg:"},
		{name: "HS256 keyed with the PKIX public key is refused", sign: func(c map[string]interface{}) string { return forgeHMAC(kid, pkix, c) }, want: "alg:"},
		{name: "HS256 keyed with the PEM public key is refused", sign: func(c map[string]interface{}) string { return forgeHMAC(kid, pemKey, c) }, want: "alg:"},
		{name: "RS384 is refused", sign: withHeader(map[string]interface{}{"alg": "RS384", "kid": kid, "typ": "JWT"}), want: "alg:"},
		{name: "PS256 is refused", sign: withHeader(map[string]interface{}{"alg": "PS256", "kid": kid, "typ": "JWT"}), want: "alg:"},
		{name: "an access token with a nonce header is refused", sign: withHeader(map[string]interface{}{"alg": "RS256", "kid": kid, "typ": "JWT", "nonce": "abc"}), want: "header:"},
		{name: "typ at+jwt is refused", sign: withHeader(map[string]interface{}{"alg": "RS256", "kid": kid, "typ": "at+jwt"}), want: "typ:"},
		{name: "a token without kid is refused", sign: withHeader(map[string]interface{}{"alg": "RS256", "typ": "JWT"}), want: "kid:"},
		{name: "an unknown kid is refused", sign: withHeader(map[string]interface{}{"alg": "RS256", "kid": "unknown-kid", "typ": "JWT"}), want: "unknown signing key"},
		{name: "a signature by another key under the tenant's kid is refused", sign: func(c map[string]interface{}) string {
			s, _ := jwt.Sign(otherKey, kid, c)
			return s
		}, want: "signature:"},
		{name: "a token of another tenant with the same IDs is refused", sign: func(c map[string]interface{}) string { return other.SignToken(c) }, want: "unknown signing key"},
		{name: "a tampered payload is refused", sign: func(c map[string]interface{}) string {
			parts := strings.Split(ten.SignToken(c), ".")
			c["roles"] = []string{"Admin", "Owner"}
			b, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		}, want: "signature:"},
		{name: "another issuer is refused", change: set("iss", "https://login.microsoftonline.com/"+ten.TenantID+"/v2.0"), want: "iss:"},
		{name: "the v1 issuer is refused", change: set("iss", "https://sts.windows.net/"+ten.TenantID+"/"), want: "iss:"},
		{name: "a missing issuer is refused", change: set("iss", nil), want: "iss:"},
		{name: "another audience is refused", change: set("aud", "api://other"), want: "aud:"},
		{name: "a missing audience is refused", change: set("aud", nil), want: "aud:"},
		{name: "several audiences without azp are refused", change: set("aud", []string{ten.ClientID, "api://other"}), want: "azp:"},
		{name: "several audiences without the client are refused", change: func(c map[string]interface{}) {
			c["aud"] = []string{"api://a", "api://b"}
			c["azp"] = ten.ClientID
		}, want: "aud:"},
		{name: "azp naming another client is refused", change: set("azp", "22222222-2222-4222-8222-222222222222"), want: "azp:"},
		{name: "another tenant's tid is refused", change: set("tid", "99999999-9999-4999-8999-999999999999"), want: "tid:"},
		{name: "a tid that is not a GUID is refused", change: set("tid", "contoso.example"), want: "tid:"},
		{name: "a missing tid is refused", change: set("tid", nil), want: "tid:"},
		{name: "another nonce is refused", change: set("nonce", "nonce-2"), want: "nonce:"},
		{name: "a missing nonce claim is refused", change: set("nonce", nil), want: "nonce:"},
		{name: "an empty nonce claim is refused", change: set("nonce", ""), nonce: str("x"), want: "nonce:"},
		{name: "an empty expected nonce is refused", change: set("nonce", ""), nonce: str(""), want: "nonce:"},
		{name: "a token expired beyond the skew is refused", change: set("exp", now.Add(-6*time.Minute).Unix()), want: "exp:"},
		{name: "a token without exp is refused", change: set("exp", nil), want: "exp:"},
		{name: "an exp that is a string is refused", change: set("exp", "2099-01-01"), want: "exp:"},
		{name: "nbf in the future is refused", change: set("nbf", now.Add(6*time.Minute).Unix()), want: "nbf:"},
		{name: "an nbf that is a string is refused", change: set("nbf", "soon"), want: "nbf:"},
		{name: "iat in the future is refused", change: set("iat", now.Add(6*time.Minute).Unix()), want: "iat:"},
		{name: "a token without iat is refused", change: set("iat", nil), want: "iat:"},
		{name: "a v1.0 token is refused", change: set("ver", "1.0"), want: "ver:"},
		{name: "a token without oid is refused", change: set("oid", nil), want: "oid:"},
		{name: "garbage is refused", raw: str("not a token"), want: "malformed"},
		{name: "an empty token is refused", raw: str(""), want: "malformed"},
		{name: "a JWE-shaped token is refused", raw: str("a.b.c.d.e"), want: "malformed"},
		{name: "an oversized token is refused", raw: str(strings.Repeat("a", jwt.MaxSize+1)), want: "malformed"},
	}
	for _, tt := range tests {
		var raw string
		if tt.raw != nil {
			raw = *tt.raw
		} else {
			c := ten.IDTokenClaims(alice, "nonce-1")
			if tt.change != nil {
				tt.change(c)
			}
			sign := tt.sign
			if sign == nil {
				sign = genuine
			}
			raw = sign(c)
		}
		nonce := "nonce-1"
		if tt.nonce != nil {
			nonce = *tt.nonce
		}
		claims, err := f.client.VerifyIDToken(ctx, raw, nonce)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if claims.OID != alice.OID {
				t.Errorf("%s: oid %s", tt.name, claims.OID)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrInvalidToken naming %q", tt.name, err, tt.want)
		}
		if claims != nil {
			t.Errorf("%s: claims returned with an error", tt.name)
		}
	}
}

func TestVerifyIDTokenClaims(t *testing.T) {
	many := make([]string, 201)
	for i := range many {
		many[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	f := newFixture(t, entraidtest.Options{Users: []entraidtest.User{
		{Name: "Alice Smith", PreferredUsername: "alice@contoso.example", Email: "alice@contoso.example", Roles: []string{"Admin"}, Groups: []string{"g1", "g2"}},
		{Name: "Olga Overage", PreferredUsername: "olga@contoso.example", Groups: many},
	}}, nil)
	ctx := context.Background()

	t.Run("claims are carried over", func(t *testing.T) {
		tok := f.signIn(t, "n1")
		c, err := f.client.VerifyIDToken(ctx, tok.IDToken, "n1")
		if err != nil {
			t.Fatal(err)
		}
		u := f.tenant.Users[0]
		if c.OID != u.OID || c.TID != f.tenant.TenantID || c.Name != u.Name || c.PreferredUsername != u.PreferredUsername || c.Email != u.Email || c.Subject == "" {
			t.Errorf("claims %+v", c)
		}
		if strings.Join(c.Roles, ",") != "Admin" || strings.Join(c.Groups, ",") != "g1,g2" || c.GroupsOverage {
			t.Errorf("roles %v groups %v overage %v", c.Roles, c.Groups, c.GroupsOverage)
		}
		if c.Expiry.Sub(c.IssuedAt) != time.Hour || c.Raw["ver"] != "2.0" {
			t.Errorf("iat %s exp %s raw %v", c.IssuedAt, c.Expiry, c.Raw["ver"])
		}
	})
	t.Run("a groups overage is reported", func(t *testing.T) {
		f.tenant.SetSignIn("olga@contoso.example")
		tok := f.signIn(t, "n2")
		c, err := f.client.VerifyIDToken(ctx, tok.IDToken, "n2")
		if err != nil {
			t.Fatal(err)
		}
		if !c.GroupsOverage || len(c.Groups) != 0 {
			t.Errorf("overage %v, groups %d", c.GroupsOverage, len(c.Groups))
		}
	})
	t.Run("hasgroups is an overage too", func(t *testing.T) {
		claims := f.tenant.IDTokenClaims(f.tenant.Users[0], "n3")
		delete(claims, "groups")
		claims["hasgroups"] = true
		c, err := f.client.VerifyIDToken(ctx, f.tenant.SignToken(claims), "n3")
		if err != nil {
			t.Fatal(err)
		}
		if !c.GroupsOverage {
			t.Error("hasgroups not reported as an overage")
		}
	})
}

func TestVerifyIDTokenTenants(t *testing.T) {
	const stranger = "99999999-9999-4999-8999-999999999999"
	tests := []struct {
		name    string
		tenant  func(ten *entraidtest.Tenant) string
		allowed func(ten *entraidtest.Tenant) []string
		change  func(ten *entraidtest.Tenant, c map[string]interface{})
		want    string
	}{
		{"a domain tenant takes the tenant ID from the issuer", func(ten *entraidtest.Tenant) string { return "contoso.example" }, nil, nil, ""},
		{"a domain tenant refuses another tid", func(ten *entraidtest.Tenant) string { return "contoso.example" }, nil,
			func(ten *entraidtest.Tenant, c map[string]interface{}) { c["tid"] = stranger }, "tid:"},
		{"organizations accepts an allowed tenant", func(ten *entraidtest.Tenant) string { return "organizations" },
			func(ten *entraidtest.Tenant) []string { return []string{stranger, ten.TenantID} }, nil, ""},
		{"common accepts an allowed tenant", func(ten *entraidtest.Tenant) string { return "common" },
			func(ten *entraidtest.Tenant) []string { return []string{ten.TenantID} }, nil, ""},
		{"organizations refuses a tenant not allowed", func(ten *entraidtest.Tenant) string { return "organizations" },
			func(ten *entraidtest.Tenant) []string { return []string{stranger} }, nil, "tid:"},
		{"organizations refuses an issuer of another tenant", func(ten *entraidtest.Tenant) string { return "organizations" },
			func(ten *entraidtest.Tenant) []string { return []string{ten.TenantID, stranger} },
			func(ten *entraidtest.Tenant, c map[string]interface{}) { c["iss"] = ten.URL + "/" + stranger + "/v2.0" }, "iss:"},
		{"organizations refuses the unfilled template", func(ten *entraidtest.Tenant) string { return "organizations" },
			func(ten *entraidtest.Tenant) []string { return []string{ten.TenantID} },
			func(ten *entraidtest.Tenant, c map[string]interface{}) { c["iss"] = ten.URL + "/{tenantid}/v2.0" }, "iss:"},
	}
	for _, tt := range tests {
		f := newFixture(t, entraidtest.Options{}, nil)
		cfg := Config{AuthorityHost: f.tenant.URL, Tenant: tt.tenant(f.tenant), ClientID: f.tenant.ClientID, Credential: ClientSecret(f.tenant.ClientSecret), Now: f.clock.Now}
		if tt.allowed != nil {
			cfg.AllowedTenants = tt.allowed(f.tenant)
		}
		c, err := NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		claims := f.tenant.IDTokenClaims(f.tenant.Users[0], "n")
		if tt.change != nil {
			tt.change(f.tenant, claims)
		}
		_, err = c.VerifyIDToken(context.Background(), f.tenant.SignToken(claims), "n")
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want ErrInvalidToken naming %q", tt.name, err, tt.want)
		}
	}
}

func TestVerifyIDTokenUnavailable(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	f.tenant.SetFault(entraidtest.Discovery, entraidtest.Fault{Status: 503})
	raw := f.tenant.SignToken(f.tenant.IDTokenClaims(f.tenant.Users[0], "n"))
	_, err := f.client.VerifyIDToken(context.Background(), raw, "n")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Errorf("error %v, want ErrUnavailable only", err)
	}
	t.Run("a token that cannot pass costs no request", func(t *testing.T) {
		g := newFixture(t, entraidtest.Options{}, nil)
		for _, raw := range []string{"garbage", forgeHMAC("k", []byte("k"), map[string]interface{}{})} {
			g.client.VerifyIDToken(context.Background(), raw, "n")
		}
		if n := g.tenant.Hits(entraidtest.Discovery) + g.tenant.Hits(entraidtest.JWKS); n != 0 {
			t.Errorf("%d requests", n)
		}
	})
}
