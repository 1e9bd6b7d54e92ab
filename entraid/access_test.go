package entraid

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

const apiAudience = "api://entraauth-tests"

func TestVerifyAccessToken(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	alice := f.tenant.Users[0]
	delegated := func(change func(c map[string]interface{})) string {
		c := f.tenant.APIAccessTokenClaims(alice, apiAudience, "Items.Read Items.Write")
		if change != nil {
			change(c)
		}
		return f.tenant.SignToken(c)
	}
	v1 := func(c map[string]interface{}) {
		c["iss"] = "https://sts.windows.net/" + f.tenant.TenantID + "/"
		c["ver"] = "1.0"
	}
	strict := AccessPolicy{Audiences: []string{apiAudience}}
	withV1 := AccessPolicy{Audiences: []string{apiAudience}, AllowV1: true}

	tests := []struct {
		name   string
		token  string
		policy AccessPolicy
		reason string // "" means accepted
	}{
		{"a delegated v2 token", delegated(nil), strict, ""},
		{"a token for the client ID as audience", delegated(func(c map[string]interface{}) { c["aud"] = f.tenant.ClientID }),
			AccessPolicy{Audiences: []string{apiAudience, f.tenant.ClientID}}, ""},
		{"an app-only token", f.tenant.SignToken(f.tenant.AppAccessTokenClaims("1b7a0a62-0000-4000-8000-000000000001", apiAudience, []string{"Items.Sync"})), strict, ""},
		{"a v1 token when allowed", delegated(v1), withV1, ""},
		{"a v1 token when not allowed", delegated(v1), strict, "issuer"},
		{"another audience", delegated(func(c map[string]interface{}) { c["aud"] = "api://other" }), strict, "audience"},
		{"several audiences", delegated(func(c map[string]interface{}) { c["aud"] = []string{apiAudience, "api://other"} }), strict, "audience"},
		{"another tenant", delegated(func(c map[string]interface{}) { c["tid"] = "00000000-1111-2222-3333-444444444444" }), strict, "tenant"},
		{"another issuer", delegated(func(c map[string]interface{}) {
			c["iss"] = "https://login.microsoftonline.com/" + f.tenant.TenantID + "/v2.0"
		}), strict, "issuer"},
		{"an expired token", delegated(func(c map[string]interface{}) { c["exp"] = f.clock.Now().Add(-time.Hour).Unix() }), strict, "expired"},
		{"a token not yet valid", delegated(func(c map[string]interface{}) { c["nbf"] = f.clock.Now().Add(time.Hour).Unix() }), strict, "not valid now"},
		{"no oid", delegated(func(c map[string]interface{}) { delete(c, "oid") }), strict, "oid"},
		{"alg none", unsignedToken(map[string]interface{}{"alg": "none", "typ": "JWT"}, f.tenant.APIAccessTokenClaims(alice, apiAudience, "x")), strict, "alg"},
		{"HS256 keyed with the public key", hs256WithPublicKey(t, f, f.tenant.APIAccessTokenClaims(alice, apiAudience, "x")), strict, "alg"},
		{"an unknown kid", f.tenant.SignTokenWithHeader(map[string]interface{}{"alg": "RS256", "typ": "JWT", "kid": "injected"},
			f.tenant.APIAccessTokenClaims(alice, apiAudience, "x")), strict, "signing key"},
		{"a Microsoft Graph token", f.tenant.GraphAccessToken(alice.PreferredUsername), withV1, "Microsoft Graph"},
		{"garbage", "a.b.c", strict, "not a JWT"},
		{"a tampered payload", tamper(delegated(nil)), strict, "signature"},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			ac, err := f.client.VerifyAccessToken(context.Background(), tt.token, tt.policy)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if ac.OID == "" || ac.TID != f.tenant.TenantID {
					t.Fatalf("claims %+v", ac)
				}
				return
			}
			if !errors.Is(err, ErrInvalidAccessToken) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err = %v, want ErrInvalidAccessToken naming %q", err, tt.reason)
			}
		})
	}
}

func TestVerifyAccessTokenClaims(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	alice := f.tenant.Users[0]
	ac, err := f.client.VerifyAccessToken(context.Background(), f.tenant.SignToken(f.tenant.APIAccessTokenClaims(alice, apiAudience, "Items.Read Items.Write")), AccessPolicy{Audiences: []string{apiAudience}})
	if err != nil {
		t.Fatal(err)
	}
	if ac.AppOnly || ac.OID != alice.OID || strings.Join(ac.Scopes, " ") != "Items.Read Items.Write" || ac.PreferredUsername != alice.PreferredUsername {
		t.Fatalf("delegated claims %+v", ac)
	}
	app, err := f.client.VerifyAccessToken(context.Background(), f.tenant.SignToken(f.tenant.AppAccessTokenClaims("1b7a0a62-0000-4000-8000-000000000001", apiAudience, []string{"Items.Sync"})), AccessPolicy{Audiences: []string{apiAudience}})
	if err != nil {
		t.Fatal(err)
	}
	if !app.AppOnly || app.AppID != "1b7a0a62-0000-4000-8000-000000000001" || strings.Join(app.Roles, ",") != "Items.Sync" {
		t.Fatalf("app claims %+v", app)
	}
}

func unsignedToken(header, claims map[string]interface{}) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// hs256WithPublicKey forges the classic algorithm-confusion token: HMAC
// keyed with the RSA public key the verifier holds.
func hs256WithPublicKey(t *testing.T, f *fixture, claims map[string]interface{}) string {
	t.Helper()
	keys, err := jwt.ParseJWKS(mustGet(t, f.tenant.URL+"/"+f.tenant.TenantID+"/discovery/v2.0/keys"))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(keys[f.tenant.KeyID()])
	if err != nil {
		t.Fatal(err)
	}
	h, _ := json.Marshal(map[string]interface{}{"alg": "HS256", "typ": "JWT", "kid": f.tenant.KeyID()})
	c, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// tamper widens the token's scopes, keeping the signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]interface{}
	json.Unmarshal(payload, &claims)
	claims["scp"] = "Items.Admin"
	payload, _ = json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

func mustGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
