package entraauth

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// cacheableUpstream answers like a static file server that lets every cache
// keep its answers for a day.
func cacheableUpstream(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=86400, immutable")
	h.Set("Surrogate-Control", "max-age=86400")
	h.Set("CDN-Cache-Control", "max-age=86400")
	h.Set("X-Accel-Expires", "86400")
	h.Set("Content-Type", "application/javascript")
	io.WriteString(w, "console.log('bundle')")
}

// checkPrivate fails unless resp cannot be kept by a shared cache: one
// Cache-Control, private and no-store, and none of the headers by which
// CDNs and nginx override it.
func checkPrivate(t *testing.T, what string, h http.Header) {
	t.Helper()
	if got := h.Values("Cache-Control"); len(got) != 1 || got[0] != "private, no-store" {
		t.Errorf("%s: Cache-Control %q, want exactly \"private, no-store\"", what, got)
	}
	for _, name := range []string{"Surrogate-Control", "Cdn-Cache-Control", "X-Accel-Expires"} {
		if v := h.Values(name); len(v) > 0 {
			t.Errorf("%s: %s %q left in place: a CDN or nginx would cache the cookie", what, name, v)
		}
	}
}

func TestARenewedSessionCookieIsNeverStoredByASharedCache(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"a script", http.Header{"Accept": {"*/*"}, "Sec-Fetch-Mode": {"no-cors"}}},
		{"a navigation", browserNavigation()},
		{"an API call", apiCall()},
	} {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			rs := newRenewalStack(t, alice, nil)
			rs.mw.next = http.HandlerFunc(cacheableUpstream)
			rs.advance(time.Hour + time.Minute)
			resp, body := rs.send(t, http.MethodGet, "/static/app.js", tc.header)
			if resp.StatusCode != http.StatusOK || body != "console.log('bundle')" {
				t.Fatalf("%d %.200q", resp.StatusCode, body)
			}
			if findSetCookie(resp, rs.mw.cookie.Name+"=") == "" {
				t.Fatal("the request did not renew the session")
			}
			checkPrivate(t, "the renewing response", resp.Header)
			// Responses without a cookie keep what the upstream said.
			resp, _ = rs.send(t, http.MethodGet, "/static/app.js", tc.header)
			if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Cache-Control") != "public, max-age=86400, immutable" {
				t.Errorf("a signed-in response without a cookie: Cache-Control %q, Set-Cookie %q: want the upstream's own",
					resp.Header.Values("Cache-Control"), resp.Header.Values("Set-Cookie"))
			}
		})
	}
}

func TestEveryResponseThatSetsOrDeletesASessionCookieIsPrivate(t *testing.T) {
	t.Run("the start of a sign-in", func(t *testing.T) {
		st := newStack(t, nil)
		resp, _ := navigate(t, noRedirects(st.browser()), st.server.URL+"/x")
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Set-Cookie") == "" {
			t.Fatalf("%d", resp.StatusCode)
		}
		checkPrivate(t, "the redirect to Entra ID", resp.Header)
	})
	t.Run("the callback", func(t *testing.T) {
		st := newStack(t, nil)
		c := noRedirects(st.browser())
		callback := st.startLogin(c, "/x")
		resp, _ := navigate(t, noRedirects(c), callback)
		if findSetCookie(resp, st.mw.cookie.Name+"=") == "" {
			t.Fatalf("the callback set no session: %d", resp.StatusCode)
		}
		checkPrivate(t, "the callback", resp.Header)
	})
	t.Run("a renewal Entra ID refuses", func(t *testing.T) {
		rs := newRenewalStack(t, alice, nil)
		rs.mw.next = http.HandlerFunc(cacheableUpstream)
		rs.tenant.RevokeSessions(alice.PreferredUsername)
		rs.advance(time.Hour + time.Minute)
		resp, _ := rs.send(t, http.MethodGet, "/static/app.js", apiCall())
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("%d, Set-Cookie %q", resp.StatusCode, resp.Header.Values("Set-Cookie"))
		}
		checkPrivate(t, "the refusal", resp.Header)
	})
	t.Run("the sign-out", func(t *testing.T) {
		rs := newRenewalStack(t, alice, nil)
		checkPrivate(t, "the sign-out", rs.signOut(t).Header)
	})
	t.Run("an upstream token Entra ID refuses for good", func(t *testing.T) {
		rs, _ := upstreamStack(t, entraidtest.API{IdentifierURI: "api://files", Scopes: []string{"Files.Read"}}, "")
		rs.tenant.RevokeSessions(alice.PreferredUsername)
		rs.advance(56 * time.Minute)
		resp, _ := rs.send(t, http.MethodGet, "/files", apiCall())
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%d", resp.StatusCode)
		}
		checkPrivate(t, "the refusal", resp.Header)
	})
}
