package e2e

import (
	"net/http"
	"net/url"
	"testing"
)

// TestOneAllowRouterServesAnAnonymousAndASignedInRequest: on a router with
// unauthenticated: allow, a visitor without a session reaches the upstream
// without identity (spoofed headers removed), signs in through the
// portal's sign-in endpoint, returns to rd, and then reaches it with the
// identity headers; bob, whom the rules refuse, stays anonymous.
func TestOneAllowRouterServesAnAnonymousAndASignedInRequest(t *testing.T) {
	e := newEnv(t, alice.PreferredUsername, func(pc map[string]interface{}) {
		pc["unauthenticated"] = "allow"
		pc["allowedUsers"] = []string{alice.OID}
	})
	home := e.traefik.url(appHost, "/home")

	h := navigationHeader()
	h["X-Forwarded-User"] = []string{"mallory"}
	h["X_Forwarded_Email"] = []string{"mallory@evil.example"}
	anonymous := e.client.echoed(e.client.do(e.client.request(http.MethodGet, home, h)))
	for _, name := range []string{"X-Forwarded-User", "X-Forwarded-Email", "X_forwarded_email"} {
		if v := anonymous.Header.Values(name); len(v) != 0 {
			t.Errorf("anonymous request: %s = %q reached the upstream", name, v)
		}
	}

	signIn := e.traefik.url(appHost, "/portals/main/sign-in?rd="+url.QueryEscape("/home?tab=mine"))
	signedIn := e.client.signIn(signIn)
	if signedIn.Path != "/home" || signedIn.RawQuery != "tab=mine" {
		t.Errorf("the sign-in returned to %s?%s, want /home?tab=mine", signedIn.Path, signedIn.RawQuery)
	}
	for i := 0; i < 2; i++ { // the second from the session cache
		echo := e.client.echoed(e.client.do(e.client.request(http.MethodGet, home, h)))
		if got := echo.Header.Values("X-Forwarded-User"); len(got) != 1 || got[0] != alice.OID {
			t.Errorf("signed-in request %d: X-Forwarded-User = %q, want %s", i, got, alice.OID)
		}
	}

	e.tenant.SetSignIn(bob.PreferredUsername)
	other := newClient(t, e.certs)
	refused := other.signIn(signIn)
	if got := refused.Header.Values("X-Forwarded-User"); len(got) != 0 {
		t.Errorf("bob, whom the rules refuse, reached the upstream as %q", got)
	}
}
