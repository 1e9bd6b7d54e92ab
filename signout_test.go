package entraauth

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

// signOut posts the portal's sign-out from the browser rs.user, from the
// same origin, and returns the response (not followed).
func (rs *renewalStack) signOut(t *testing.T) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, rs.server.URL+"/portals/main/logout", nil)
	req.Header.Set("Origin", rs.server.URL)
	c := *rs.user
	resp, err := noRedirects(&c).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out answered %d, want 303", resp.StatusCode)
	}
	return resp
}

func TestASignedOutSessionIsRefusedFromEveryCopy(t *testing.T) {
	for _, tc := range []struct {
		name string
		// use returns the status a copy of the cookie taken before the
		// sign-out gets afterwards.
		use func(t *testing.T, rs *renewalStack, copied []*http.Cookie) int
	}{
		{"on the fast path, where the copy was used before", func(t *testing.T, rs *renewalStack, copied []*http.Cookie) int {
			return rs.sendWith(t, copied, "/after", apiCall()).StatusCode
		}},
		{"by another router of the same app, which never saw it", func(t *testing.T, rs *renewalStack, copied []*http.Cookie) int {
			return serveBy(rs.sibling(t, func(c *Config) {}), copied, "/after", apiCall()).StatusCode
		}},
		{"at renewal, past the lifetime", func(t *testing.T, rs *renewalStack, copied []*http.Cookie) int {
			refreshes := rs.tenant.Hits(entraidtest.Refresh)
			rs.advance(time.Hour + time.Minute)
			status := rs.sendWith(t, copied, "/after", apiCall()).StatusCode
			if got := rs.tenant.Hits(entraidtest.Refresh) - refreshes; got != 0 {
				t.Errorf("the signed-out session was renewed (%d refresh-token requests)", got)
			}
			return status
		}},
		{"by a navigation, which must sign in again", func(t *testing.T, rs *renewalStack, copied []*http.Cookie) int {
			return rs.sendWith(t, copied, "/after", browserNavigation()).StatusCode
		}},
	} {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			rs := newRenewalStack(t, alice, nil)
			copied := rs.cookies()
			if resp := rs.sendWith(t, copied, "/before", apiCall()); resp.StatusCode != http.StatusOK {
				t.Fatalf("the copy before the sign-out: %d", resp.StatusCode)
			}
			rs.signOut(t)
			got := tc.use(t, rs, copied)
			if got == http.StatusOK {
				t.Fatal("a copy of the session taken before the sign-out still opens the site")
			}
			if got != http.StatusUnauthorized && got != http.StatusFound {
				t.Errorf("status %d, want 401 (API) or 302 (sign in again)", got)
			}
		})
	}
}

func TestASessionSignedOutAfterARenewalIsRefusedInEveryVersion(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	old := rs.cookies()
	rs.advance(time.Hour + time.Minute)
	if resp, _ := rs.send(t, http.MethodGet, "/renew", apiCall()); resp.StatusCode != http.StatusOK || findSetCookie(resp, rs.mw.cookie.Name+"=") == "" {
		t.Fatalf("renewal: %d", resp.StatusCode)
	}
	rs.signOut(t)
	if got := rs.sendWith(t, old, "/after", apiCall()).StatusCode; got == http.StatusOK {
		t.Fatal("the cookie from before the renewal opens the site after the renewed session signed out")
	}
}

func TestSigningOutEndsOnlyThatSignIn(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	other := rs.browser()
	rs.stack.signIn(other)
	rs.signOut(t)
	u, _ := url.Parse(rs.server.URL)
	if got := rs.sendWith(t, other.Jar.Cookies(u), "/mine", apiCall()).StatusCode; got != http.StatusOK {
		t.Fatalf("the same user's sign-in in another browser got %d after this one signed out: want 200", got)
	}
}

func TestTheSignedOutPageSaysWhatHappened(t *testing.T) {
	rs := newRenewalStack(t, alice, nil)
	rs.tenant.AddRedirectURI(rs.server.URL + "/portals/main/oauth2/callback")
	rs.tenant.AddRedirectURI(rs.server.URL + "/portals/main/signed-out")
	resp := rs.signOut(t)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	page, body := navigate(t, rs.user, loc.String())
	if page.StatusCode != http.StatusOK || page.Request.URL.Path != "/portals/main/signed-out" {
		t.Fatalf("after end-session: %d at %s", page.StatusCode, page.Request.URL)
	}
	host := strings.TrimPrefix(rs.server.URL, "https://")
	for _, want := range []string{"signed out of " + host, "copies of it", "Microsoft Entra ID", "Other sites"} {
		if !strings.Contains(body, want) {
			t.Errorf("the signed-out page does not say %q: %.800q", want, body)
		}
	}
	if strings.Contains(body, "of this site and of Microsoft Entra ID") {
		t.Errorf("the page still claims more than happened: %.800q", body)
	}
	// Opened again later, without a sign-out behind it, it does not claim
	// one.
	_, body = navigate(t, rs.stack.browser(), rs.server.URL+"/portals/main/signed-out")
	if strings.Contains(body, "You signed out") || !strings.Contains(body, "not signed in") {
		t.Errorf("the page without a sign-out: %.600q", body)
	}
}
func TestTheSignedOutListIsBoundedAndFailsClosed(t *testing.T) {
	list := newSignedOutList(3)
	now := time.Unix(1_800_000_000, 0)
	later := now.Add(2 * time.Hour)
	s := func(i int, ends time.Time) *session.Session {
		return &session.Session{OID: fmt.Sprintf("user-%d", i), TID: testTenantID, AuthTime: now.Unix() - 60, ID: fmt.Sprintf("id-%d", i), Expires: ends.Unix()}
	}
	for i := 0; i < 3; i++ {
		list.add("app", s(i, now.Add(time.Hour)), now)
	}
	if !list.ended("app", s(0, now)) || list.ended("app", s(7, now)) || list.ended("other app", s(0, now)) {
		t.Fatal("the list does not tell its own sessions")
	}
	// Sessions that ended anyway make room first.
	list.add("app", s(3, later.Add(time.Hour)), later)
	if list.len() != 1 || !list.ended("app", s(3, now)) {
		t.Fatalf("after expiry: %d entries, want 1", list.len())
	}
	// Full of live entries: every session signed in until now ends here,
	// rather than forgetting a sign-out.
	for i := 4; i < 7; i++ {
		list.add("app", s(i, later.Add(time.Hour)), later)
	}
	if list.len() > 3 {
		t.Fatalf("%d entries, bound 3", list.len())
	}
	for i := 0; i < 8; i++ {
		if !list.ended("app", s(i, now)) {
			t.Errorf("session %d, signed in before the list overflowed, still opens", i)
		}
	}
	fresh := s(9, later.Add(time.Hour))
	fresh.AuthTime = later.Unix() + 1
	if list.ended("app", fresh) {
		t.Error("a sign-in after the overflow is refused")
	}
}
