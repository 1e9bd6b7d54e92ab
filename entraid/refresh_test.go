package entraid

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
)

// offlineFixture is a fixture whose sign-ins ask for offline_access.
func offlineFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixture(t, entraidtest.Options{}, func(c *Config) { c.Scopes = []string{"openid", "profile", "email", "offline_access"} })
}

func TestRefreshRenewsWithTheSignInScopes(t *testing.T) {
	f := offlineFixture(t)
	first := f.signIn(t, "n1")
	if first.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	signedIn, err := f.client.VerifyIDToken(context.Background(), first.IDToken, "n1")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.client.Refresh(context.Background(), first.RefreshToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" || tok.RefreshToken == first.RefreshToken || tok.IDToken == "" || tok.ExpiresIn <= 0 {
		t.Fatalf("refresh answer: new refresh token %v, ID token %v, expires_in %d", tok.RefreshToken != first.RefreshToken, tok.IDToken != "", tok.ExpiresIn)
	}
	claims, err := f.client.VerifyRefreshedIDToken(context.Background(), tok.IDToken, signedIn.OID, signedIn.TID)
	if err != nil {
		t.Fatalf("the refreshed ID token: %v", err)
	}
	if claims.OID != signedIn.OID || claims.Name != signedIn.Name {
		t.Errorf("claims %+v", claims)
	}
}

func TestRefreshForAnAPIReturnsItsAccessToken(t *testing.T) {
	f := offlineFixture(t)
	api := f.tenant.AddAPI(entraidtest.API{IdentifierURI: "api://orders", Scopes: []string{"Orders.Read"}, TokenVersion: 2})
	first := f.signIn(t, "n1")
	tok, err := f.client.Refresh(context.Background(), first.RefreshToken, "api://orders/.default")
	if err != nil {
		t.Fatal(err)
	}
	if tok.IDToken != "" {
		t.Error("an ID token for an API scope")
	}
	at, err := jwt.Parse(tok.AccessToken)
	if err != nil || at.String("aud") != api.ClientID {
		t.Fatalf("access token aud %q (%v), want the API's client ID", at.String("aud"), err)
	}
}

func TestRefreshRefusalsAreEntrasErrors(t *testing.T) {
	f := offlineFixture(t)
	first := f.signIn(t, "n1")
	f.tenant.SetUserDisabled("alice@contoso.example", true)
	_, err := f.client.Refresh(context.Background(), first.RefreshToken, "")
	e, ok := err.(*Error)
	if !ok || e.Code != "invalid_grant" || e.AADSTS() != "AADSTS50057" || e.TraceID == "" {
		t.Fatalf("err = %#v, want invalid_grant AADSTS50057 with a trace ID", err)
	}
	if strings.Contains(err.Error(), first.RefreshToken) {
		t.Error("the error shows the refresh token")
	}
	if _, err := f.client.Refresh(context.Background(), "", ""); err == nil {
		t.Error("an empty refresh token was sent")
	}
	f.tenant.SetFault(entraidtest.Token, entraidtest.Fault{Status: 503})
	if _, err := f.client.Refresh(context.Background(), first.RefreshToken, ""); !errors.Is(err, ErrUnavailable) {
		t.Errorf("an outage: %v, want ErrUnavailable", err)
	}
}

func TestVerifyRefreshedIDToken(t *testing.T) {
	f := newFixture(t, entraidtest.Options{}, nil)
	alice := f.tenant.Users[0]
	sign := func(change func(c map[string]interface{})) string {
		c := f.tenant.IDTokenClaims(alice, "")
		if change != nil {
			change(c)
		}
		return f.tenant.SignToken(c)
	}
	tests := []struct {
		name     string
		raw      string
		oid, tid string
		wantErr  string
	}{
		{"a refreshed token of the same user passes without a nonce", sign(nil), alice.OID, f.tenant.TenantID, ""},
		{"another user's token is refused", sign(nil), "99999999-0000-4000-8000-000000000001", f.tenant.TenantID, "oid:"},
		{"a token whose oid changed is refused", sign(func(c map[string]interface{}) { c["oid"] = "99999999-0000-4000-8000-000000000002" }), alice.OID, f.tenant.TenantID, "oid:"},
		{"another tenant's session is refused", sign(nil), alice.OID, "99999999-0000-4000-8000-000000000003", "tid:"},
		{"another audience is refused", sign(func(c map[string]interface{}) { c["aud"] = "someone-else" }), alice.OID, f.tenant.TenantID, "aud:"},
		{"an expired token is refused", sign(func(c map[string]interface{}) { c["exp"] = float64(1) }), alice.OID, f.tenant.TenantID, "exp:"},
		{"no session to compare with is refused", sign(nil), "", "", "no user"},
	}
	for _, tt := range tests {
		_, err := f.client.VerifyRefreshedIDToken(context.Background(), tt.raw, tt.oid, tt.tid)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (!errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: %v, want ErrInvalidToken naming %q", tt.name, err, tt.wantErr)
		}
	}
	// A sign-in's check still needs the nonce.
	if _, err := f.client.VerifyIDToken(context.Background(), sign(nil), "n"); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("a token without a nonce at sign-in: %v", err)
	}
}
