package entraidtest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// signInOffline signs username in with offline_access and returns the
// refresh token.
func signInOffline(t *testing.T, ten *Tenant, username string) string {
	t.Helper()
	code := newCode(t, ten, username, url.Values{"scope": {"openid profile email offline_access"}})
	f := codeForm(ten, code)
	f.Set("scope", "openid profile email offline_access")
	a := postToken(t, ten, f, "", "")
	rt, _ := a.doc["refresh_token"].(string)
	if a.status != http.StatusOK || rt == "" {
		t.Fatalf("sign-in with offline_access: %d %v", a.status, a.doc)
	}
	return rt
}

func refreshForm(ten *Tenant, rt, scope string) url.Values {
	return url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {ten.ClientID},
		"client_secret": {ten.ClientSecret},
		"refresh_token": {rt},
		"scope":         {scope},
	}
}

func TestRefreshTokenGrant(t *testing.T) {
	clk := &clock{now: time.Now()}
	ten := newTestTenant(t, Options{Now: clk.Now})
	alice := ten.Users[0]
	bob := ten.Users[1]

	t.Run("rotates the refresh token and issues a new ID token with current claims", func(t *testing.T) {
		rt := signInOffline(t, ten, alice.PreferredUsername)
		if len(rt) < 1500 || !strings.HasPrefix(rt, "1.A") {
			t.Errorf("refresh token of %d characters, want Entra's 1.5 KB or more", len(rt))
		}
		ten.UpdateUser(alice.PreferredUsername, func(u *User) { u.Roles = []string{"Admin", "Auditor"} })
		clk.Advance(time.Hour)
		before := ten.Hits(Refresh)
		a := postToken(t, ten, refreshForm(ten, rt, "openid profile email offline_access"), "", "")
		if a.status != http.StatusOK {
			t.Fatalf("refresh: %d %v", a.status, a.doc)
		}
		next, _ := a.doc["refresh_token"].(string)
		if next == "" || next == rt {
			t.Error("the answer has no new refresh token")
		}
		if a.claims["oid"] != alice.OID || a.claims["aud"] != ten.ClientID || a.claims["iat"] != float64(clk.Now().Unix()) {
			t.Errorf("claims %v", a.claims)
		}
		if _, ok := a.claims["nonce"]; ok {
			t.Error("a refreshed ID token carries a nonce")
		}
		if roles, _ := a.claims["roles"].([]interface{}); len(roles) != 2 || roles[1] != "Auditor" {
			t.Errorf("roles %v, want the user's current ones", a.claims["roles"])
		}
		if ten.Hits(Refresh) != before+1 {
			t.Errorf("Hits(Refresh) went from %d to %d", before, ten.Hits(Refresh))
		}
		// The old token stays valid until it expires, as Entra ID's do, so
		// that replicas renewing at once all succeed.
		if again := postToken(t, ten, refreshForm(ten, rt, "openid"), "", ""); again.status != http.StatusOK {
			t.Errorf("the redeemed refresh token again: %d %v", again.status, again.doc)
		}
		ten.UpdateUser(alice.PreferredUsername, func(u *User) { u.Roles = alice.Roles })
	})

	refusals := []struct {
		name  string
		setup func(rt string) url.Values
		undo  func()
		err   string
		code  string
	}{
		{"a disabled user", func(rt string) url.Values {
			ten.SetUserDisabled(bob.PreferredUsername, true)
			return refreshForm(ten, rt, "openid")
		}, func() { ten.SetUserDisabled(bob.PreferredUsername, false) }, "invalid_grant", "AADSTS50057"},
		{"revoked sessions (a password reset)", func(rt string) url.Values {
			ten.RevokeSessions(bob.PreferredUsername)
			return refreshForm(ten, rt, "openid")
		}, func() {}, "invalid_grant", "AADSTS50173"},
		{"a policy that now requires MFA", func(rt string) url.Values {
			ten.SetMFARequired(bob.PreferredUsername, true)
			return refreshForm(ten, rt, "openid")
		}, func() { ten.SetMFARequired(bob.PreferredUsername, false) }, "invalid_grant", "AADSTS50076"},
		{"a token unused for 90 days", func(rt string) url.Values {
			clk.Advance(91 * 24 * time.Hour)
			return refreshForm(ten, rt, "openid")
		}, func() {}, "invalid_grant", "AADSTS700082"},
		{"an unknown token", func(rt string) url.Values { return refreshForm(ten, rt+"x", "openid") }, func() {}, "invalid_grant", "AADSTS9002313"},
		{"another app's token", func(rt string) url.Values {
			ten.AddApp("5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "secret-b")
			f := refreshForm(ten, rt, "openid")
			f.Set("client_id", "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b")
			f.Set("client_secret", "secret-b")
			return f
		}, func() {}, "invalid_grant", "AADSTS70000"},
		{"two resources in one request", func(rt string) url.Values {
			ten.AddAPI(API{IdentifierURI: "api://two", Scopes: []string{"Read"}})
			return refreshForm(ten, rt, "openid User.Read api://two/Read")
		}, func() {}, "invalid_scope", "AADSTS28000"},
		{"an unknown resource", func(rt string) url.Values { return refreshForm(ten, rt, "api://nowhere/.default") }, func() {}, "invalid_resource", "AADSTS500011"},
		{"an API without consent", func(rt string) url.Values {
			ten.AddAPI(API{IdentifierURI: "api://needs-consent", Scopes: []string{"Read"}, ConsentRequired: true})
			return refreshForm(ten, rt, "api://needs-consent/.default")
		}, func() { ten.Consent("api://needs-consent") }, "invalid_grant", "AADSTS65001"},
	}
	for _, tt := range refusals {
		tt := tt
		t.Run("refuses "+tt.name, func(t *testing.T) {
			rt := signInOffline(t, ten, bob.PreferredUsername)
			a := postToken(t, ten, tt.setup(rt), "", "")
			defer tt.undo()
			desc, _ := a.doc["error_description"].(string)
			if a.status != http.StatusBadRequest || a.doc["error"] != tt.err || !strings.HasPrefix(desc, tt.code+":") {
				t.Fatalf("got %d %v %q, want 400 %s %s", a.status, a.doc["error"], desc, tt.err, tt.code)
			}
		})
	}
	t.Run("after consent the API's token is issued", func(t *testing.T) {
		rt := signInOffline(t, ten, bob.PreferredUsername)
		if a := postToken(t, ten, refreshForm(ten, rt, "api://needs-consent/.default"), "", ""); a.status != http.StatusOK {
			t.Fatalf("%d %v", a.status, a.doc)
		}
	})
}

func TestRefreshIssuesAccessTokensPerResource(t *testing.T) {
	ten := newTestTenant(t, Options{})
	alice := ten.Users[0]
	v1 := ten.AddAPI(API{IdentifierURI: "api://orders", Scopes: []string{"Orders.Read", "Orders.Write"}})
	v2 := ten.AddAPI(API{IdentifierURI: "api://stock", Scopes: []string{"Stock.Read"}, TokenVersion: 2})
	rt := signInOffline(t, ten, alice.PreferredUsername)

	tests := []struct {
		scope, aud, iss, ver, scp, app string
	}{
		{"api://orders/.default", v1.IdentifierURI, "https://sts.windows.net/" + ten.TenantID + "/", "1.0", "Orders.Read Orders.Write", "appid"},
		{"api://orders/Orders.Read", v1.IdentifierURI, "https://sts.windows.net/" + ten.TenantID + "/", "1.0", "Orders.Read", "appid"},
		{"api://stock/.default", v2.ClientID, ten.Issuer(), "2.0", "Stock.Read", "azp"},
	}
	for _, tt := range tests {
		a := postToken(t, ten, refreshForm(ten, rt, tt.scope), "", "")
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d %v", tt.scope, a.status, a.doc)
		}
		if _, ok := a.doc["id_token"]; ok {
			t.Errorf("%s: an ID token without openid", tt.scope)
		}
		at, err := jwt.Parse(a.doc["access_token"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if at.String("aud") != tt.aud || at.String("iss") != tt.iss || at.String("ver") != tt.ver || at.String("scp") != tt.scp ||
			at.String(tt.app) != ten.ClientID || at.String("oid") != alice.OID || at.Header.Nonce {
			t.Errorf("%s: access token %v", tt.scope, at.Claims)
		}
		if key := ten.publicKeys()[at.Header.Kid]; key == nil || at.VerifyRS256(key) != nil {
			t.Errorf("%s: the access token does not verify with the tenant's keys", tt.scope)
		}
	}
}
