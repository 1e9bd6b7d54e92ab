package entraidtest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tfa-plugin/entraauth/jwt"
)

// The shapes below are Microsoft's access token claims reference: a v2.0
// token's aud is always the API's client ID and its issuer the v2.0 one; a
// v1.0 token's aud is what the client asked for, its issuer
// https://sts.windows.net/{tid}/, with appid, upn and unique_name instead
// of azp and preferred_username.
func TestAPIAccessTokenShapes(t *testing.T) {
	ten := newTestTenant(t, Options{})
	alice := ten.Users[0]
	const (
		apiClientID = "4d3c2b1a-0000-4000-8000-00000000a91d"
		apiURI      = "api://contoso-items"
		daemon      = "9a8b7c6d-0000-4000-8000-0000000da3e0"
	)
	v2 := API{ClientID: apiClientID, IdentifierURI: apiURI, TokenVersion: 2}
	v1 := API{ClientID: apiClientID, IdentifierURI: apiURI}
	v1ByClientID := API{ClientID: apiClientID, TokenVersion: 1}

	tests := []struct {
		name    string
		claims  map[string]interface{}
		want    map[string]interface{}
		absent  []string
		x5t     bool
		present []string
	}{
		{"a v2.0 delegated token names the API by its client ID, even when it has a URI",
			ten.APIAccessTokenClaims(alice, v2, "Items.Read"),
			map[string]interface{}{"aud": apiClientID, "iss": ten.Issuer(), "ver": "2.0", "scp": "Items.Read", "oid": alice.OID, "preferred_username": alice.PreferredUsername, "tid": ten.TenantID},
			[]string{"appid", "upn", "unique_name", "idtyp"}, false, []string{"azp", "azpacr", "roles", "groups"}},
		{"a v1.0 delegated token asked for by URI names the URI",
			ten.APIAccessTokenClaims(alice, v1, "Items.Read"),
			map[string]interface{}{"aud": apiURI, "iss": ten.V1Issuer(), "ver": "1.0", "scp": "Items.Read", "oid": alice.OID, "upn": alice.PreferredUsername, "unique_name": alice.PreferredUsername},
			[]string{"azp", "azpacr", "preferred_username", "idtyp"}, true, []string{"appid", "appidacr", "amr", "roles"}},
		{"a v1.0 delegated token asked for by client ID names the client ID",
			ten.APIAccessTokenClaims(alice, v1ByClientID, "Items.Read"),
			map[string]interface{}{"aud": apiClientID, "iss": ten.V1Issuer(), "ver": "1.0"},
			[]string{"azp"}, true, []string{"appid"}},
		{"a v2.0 app-only token has azp, roles and no scope",
			ten.AppAccessTokenClaims(daemon, v2, []string{"Items.Sync"}),
			map[string]interface{}{"aud": apiClientID, "iss": ten.Issuer(), "ver": "2.0", "azp": daemon},
			[]string{"scp", "appid", "name", "preferred_username", "idtyp"}, false, []string{"roles", "oid", "sub"}},
		{"a v1.0 app-only token has appid, roles and no scope",
			ten.AppAccessTokenClaims(daemon, v1, []string{"Items.Sync"}),
			map[string]interface{}{"aud": apiURI, "iss": ten.V1Issuer(), "ver": "1.0", "appid": daemon, "idp": ten.V1Issuer()},
			[]string{"scp", "azp", "upn", "unique_name", "idtyp"}, true, []string{"roles", "oid"}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			for name, v := range tt.want {
				if tt.claims[name] != v {
					t.Errorf("%s = %v, want %v", name, tt.claims[name], v)
				}
			}
			for _, name := range tt.absent {
				if _, ok := tt.claims[name]; ok {
					t.Errorf("claim %s present: %v", name, tt.claims[name])
				}
			}
			for _, name := range tt.present {
				if _, ok := tt.claims[name]; !ok {
					t.Errorf("claim %s missing", name)
				}
			}
			raw := ten.SignToken(tt.claims)
			tok, err := jwt.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := tok.VerifyRS256(ten.publicKeys()[tok.Header.Kid]); err != nil {
				t.Fatalf("signature: %v", err)
			}
			var header map[string]interface{}
			b, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
			if err := json.Unmarshal(b, &header); err != nil {
				t.Fatal(err)
			}
			if x5t, ok := header["x5t"]; ok != tt.x5t || ok && x5t != tok.Header.Kid {
				t.Errorf("header %v: want x5t (equal to kid) %v", header, tt.x5t)
			}
		})
	}
	if sub1, sub2 := ten.AppAccessTokenClaims(daemon, v2, nil)["sub"], ten.APIAccessTokenClaims(alice, v2, "x")["sub"]; sub1 == sub2 || sub2 == alice.OID {
		t.Errorf("sub %v, %v: an app's is its object ID, a user's is pairwise", sub1, sub2)
	}
}
