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

// The API the tokens are for: its application ID URI and client ID, and
// the token version its manifest asks for. A v2.0 token names the API by
// its client ID only; a v1.0 token by whatever the client asked for.
const (
	apiURI      = "api://entraauth-tests"
	apiClientID = "4d3c2b1a-0000-4000-8000-00000000a91d"
	daemonID    = "1b7a0a62-0000-4000-8000-000000000001"
)

var (
	apiV2       = entraidtest.API{ClientID: apiClientID, IdentifierURI: apiURI, TokenVersion: 2}
	apiV1       = entraidtest.API{ClientID: apiClientID, IdentifierURI: apiURI}
	apiV1ByGUID = entraidtest.API{ClientID: apiClientID, TokenVersion: 1}
)

func TestVerifyAccessToken(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	alice := f.tenant.Users[0]
	token := func(api entraidtest.API, change func(c map[string]interface{})) string {
		c := f.tenant.APIAccessTokenClaims(alice, api, "Items.Read Items.Write")
		if change != nil {
			change(c)
		}
		return f.tenant.SignToken(c)
	}
	delegated := func(change func(c map[string]interface{})) string { return token(apiV2, change) }
	// both is what the readme recommends: both names of the API, both
	// token versions.
	both := AccessPolicy{Audiences: []string{apiURI, apiClientID}, AllowV1: true}
	v2Only := AccessPolicy{Audiences: []string{apiClientID}}
	uriOnly := AccessPolicy{Audiences: []string{apiURI}, AllowV1: true}

	tests := []struct {
		name   string
		token  string
		policy AccessPolicy
		reason string // "" means accepted
	}{
		{"a delegated v2.0 token", delegated(nil), both, ""},
		{"a delegated v2.0 token when only v2.0 is accepted", delegated(nil), v2Only, ""},
		{"a delegated v1.0 token asked for by URI", token(apiV1, nil), both, ""},
		{"a delegated v1.0 token asked for by client ID", token(apiV1ByGUID, nil), both, ""},
		{"a v1.0 token whose URI audience ends in a slash", token(apiV1, func(c map[string]interface{}) { c["aud"] = apiURI + "/" }), both, ""},
		{"an app-only v2.0 token", f.tenant.SignToken(f.tenant.AppAccessTokenClaims(daemonID, apiV2, []string{"Items.Sync"})), both, ""},
		{"an app-only v1.0 token", f.tenant.SignToken(f.tenant.AppAccessTokenClaims(daemonID, apiV1, []string{"Items.Sync"})), both, ""},
		{"a v1.0 token when only v2.0 is accepted", token(apiV1ByGUID, nil), v2Only, "issuer"},
		{"a v2.0 token when the policy names the API by URI only, with a hint", delegated(nil), uriOnly, "a v2.0 token names the API by its client ID"},
		{"a v1.0 token asked for by URI when the policy names the client ID only", token(apiV1, nil), AccessPolicy{Audiences: []string{apiClientID}, AllowV1: true}, "audience"},
		{"a v1.0 issuer naming another tenant", token(apiV1, func(c map[string]interface{}) {
			c["iss"] = "https://sts.windows.net/00000000-1111-2222-3333-444444444444/"
		}), both, "issuer"},
		{"a URI audience with another path", token(apiV1, func(c map[string]interface{}) { c["aud"] = apiURI + "/other" }), both, "audience"},
		{"another audience", delegated(func(c map[string]interface{}) { c["aud"] = "api://other" }), both, "audience"},
		{"several audiences", delegated(func(c map[string]interface{}) { c["aud"] = []string{apiClientID, "api://other"} }), both, "audience"},
		{"another tenant", delegated(func(c map[string]interface{}) { c["tid"] = "00000000-1111-2222-3333-444444444444" }), both, "tenant"},
		{"another issuer", delegated(func(c map[string]interface{}) {
			c["iss"] = "https://login.microsoftonline.com/" + f.tenant.TenantID + "/v2.0"
		}), both, "issuer"},
		{"an expired token", delegated(func(c map[string]interface{}) { c["exp"] = f.clock.Now().Add(-time.Hour).Unix() }), both, "expired"},
		{"a token not yet valid", delegated(func(c map[string]interface{}) { c["nbf"] = f.clock.Now().Add(time.Hour).Unix() }), both, "not valid now"},
		{"no oid", delegated(func(c map[string]interface{}) { delete(c, "oid") }), both, "oid"},
		{"alg none", unsignedToken(map[string]interface{}{"alg": "none", "typ": "JWT"}, f.tenant.APIAccessTokenClaims(alice, apiV2, "x")), both, "alg"},
		{"HS256 keyed with the public key", hs256WithPublicKey(t, f, f.tenant.APIAccessTokenClaims(alice, apiV2, "x")), both, "alg"},
		{"an unknown kid", f.tenant.SignTokenWithHeader(map[string]interface{}{"alg": "RS256", "typ": "JWT", "kid": "injected"},
			f.tenant.APIAccessTokenClaims(alice, apiV2, "x")), both, "signing key"},
		{"a Microsoft Graph token", f.tenant.GraphAccessToken(alice.PreferredUsername), both, "Microsoft Graph"},
		{"garbage", "a.b.c", both, "not a JWT"},
		{"a tampered payload", tamper(delegated(nil)), both, "signature"},
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
	policy := AccessPolicy{Audiences: []string{apiURI, apiClientID}, AllowV1: true}
	for _, v := range []struct {
		name string
		api  entraidtest.API
	}{{"v2.0", apiV2}, {"v1.0", apiV1}} {
		api := v.api
		t.Run(v.name, func(t *testing.T) {
			claims := f.tenant.APIAccessTokenClaims(alice, api, "Items.Read Items.Write")
			ac, err := f.client.VerifyAccessToken(context.Background(), f.tenant.SignToken(claims), policy)
			if err != nil {
				t.Fatal(err)
			}
			client, _ := claims["azp"].(string)
			if client == "" {
				client, _ = claims["appid"].(string)
			}
			if ac.AppOnly || ac.OID != alice.OID || strings.Join(ac.Scopes, " ") != "Items.Read Items.Write" || ac.PreferredUsername != alice.PreferredUsername || ac.AppID != client || client == "" {
				t.Fatalf("delegated claims %+v", ac)
			}
			app, err := f.client.VerifyAccessToken(context.Background(), f.tenant.SignToken(f.tenant.AppAccessTokenClaims(daemonID, api, []string{"Items.Sync"})), policy)
			if err != nil {
				t.Fatal(err)
			}
			if !app.AppOnly || app.AppID != daemonID || strings.Join(app.Roles, ",") != "Items.Sync" {
				t.Fatalf("app claims %+v", app)
			}
		})
	}
	t.Run("without idtyp, only a token without scp whose sub is its oid is app-only", func(t *testing.T) {
		user := f.tenant.APIAccessTokenClaims(alice, apiV2, "")
		delete(user, "scp")
		app := f.tenant.AppAccessTokenClaims(daemonID, apiV2, []string{"Items.Sync"})
		appWithScp := f.tenant.AppAccessTokenClaims(daemonID, apiV2, nil)
		appWithScp["scp"] = "Items.Read"
		for _, tt := range []struct {
			name    string
			claims  map[string]interface{}
			appOnly bool
		}{
			{"a user's token without scp (pairwise sub)", user, false},
			{"an application's token (sub is oid)", app, true},
			{"a token with scp whose sub is its oid", appWithScp, false},
		} {
			ac, err := f.client.VerifyAccessToken(context.Background(), f.tenant.SignToken(tt.claims), policy)
			if err != nil || ac.AppOnly != tt.appOnly {
				t.Errorf("%s: %+v, %v; want AppOnly %v", tt.name, ac, err, tt.appOnly)
			}
		}
	})
	t.Run("idtyp app makes a token app-only, idtyp user delegated", func(t *testing.T) {
		for idtyp, appOnly := range map[string]bool{"app": true, "user": false} {
			c := f.tenant.AppAccessTokenClaims(daemonID, apiV2, []string{"Items.Sync"})
			c["idtyp"] = idtyp
			ac, err := f.client.VerifyAccessToken(context.Background(), f.tenant.SignToken(c), policy)
			if err != nil || ac.AppOnly != appOnly {
				t.Errorf("idtyp %s: %+v, %v; want AppOnly %v", idtyp, ac, err, appOnly)
			}
		}
	})
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
