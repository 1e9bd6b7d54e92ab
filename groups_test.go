package entraauth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

// carol is in 250 groups: more than a token holds, a groups overage.
var carol = func() entraidtest.User {
	u := entraidtest.User{
		OID:               "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a",
		Name:              "Carol Many-Groups",
		PreferredUsername: "carol@contoso.example",
		Email:             "carol@contoso.example",
	}
	for i := 0; i < 250; i++ {
		u.Groups = append(u.Groups, fmt.Sprintf("c0c0c0c0-0000-4000-8000-%012d", i))
	}
	return u
}()

func TestGroupsOverageIsResolvedWithMicrosoftGraph(t *testing.T) {
	wanted := carol.Groups[237]
	st := newStackFor(t, carol, func(c *Config) { c.AllowedGroups = []string{wanted} })
	st.tenant.SetGraphPageSize(100)
	c := st.browser()
	resp, body := navigate(t, c, st.server.URL+"/start")
	if resp.StatusCode != http.StatusOK || body != "upstream /start" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if hits := st.tenant.Hits(entraidtest.Graph); hits != 3 {
		t.Errorf("%d Graph requests, want 3 pages", hits)
	}
	// Only the groups some rule names stay in the session (this one, and
	// those other tests' middlewares named: the registry is per process):
	// the cookie stays small and the header carries them.
	got := strings.Split(st.lastUpstream().Get("X-Forwarded-Groups"), ",")
	if !contains(got, wanted) || len(got) > 5 {
		t.Errorf("X-Forwarded-Groups = %q, want %q and no more than the few that rules name", got, wanted)
	}
	loc, _ := http.NewRequest("GET", st.server.URL, nil)
	for _, ck := range c.Jar.Cookies(loc.URL) {
		if session.IsChunkName("__Host-entraauth_main", ck.Name) && ck.Name != "__Host-entraauth_main" {
			t.Errorf("the session needed chunk %s", ck.Name)
		}
	}
	// The scope for Graph was asked for.
	if !strings.Contains(strings.Join(st.mw.client.Scopes(), " "), "User.Read") {
		t.Errorf("scopes %q lack User.Read", st.mw.client.Scopes())
	}
}

func TestGroupsOverageWithoutTheGroupIsRefused(t *testing.T) {
	st := newStackFor(t, carol, func(c *Config) { c.AllowedGroups = []string{"d0d0d0d0-0000-4000-8000-000000000001"} })
	resp, body := navigate(t, st.browser(), st.server.URL+"/")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, carol.PreferredUsername) {
		t.Fatalf("got %d, want the 403 page", resp.StatusCode)
	}
}

func TestAGraphFailureIsAnErrorPageNotNoGroups(t *testing.T) {
	st := newStackFor(t, carol, func(c *Config) { c.AllowedGroups = []string{carol.Groups[0]} })
	st.tenant.SetFault(entraidtest.Graph, entraidtest.Fault{Status: http.StatusForbidden, Body: `{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"request-id":"5e1f0000-aaaa-bbbb-cccc-000000000001"}}}`})
	resp, body := navigate(t, st.browser(), st.server.URL+"/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "Authorization_RequestDenied") || !strings.Contains(body, "User.Read") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestAGraphOutageKeepsGraphsCodeAndRequestID(t *testing.T) {
	st := newStackFor(t, carol, func(c *Config) { c.AllowedGroups = []string{carol.Groups[0]} })
	st.tenant.SetFault(entraidtest.Graph, entraidtest.Fault{Status: http.StatusServiceUnavailable, Body: `{"error":{"code":"serviceNotAvailable","message":"The service is temporarily unavailable.","innerError":{"date":"2026-12-01T05:00:00","request-id":"5e1f0000-aaaa-bbbb-cccc-000000000503"}}}`})
	resp, body := navigate(t, st.browser(), st.server.URL+"/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "serviceNotAvailable") || !strings.Contains(body, "5e1f0000-aaaa-bbbb-cccc-000000000503") {
		t.Fatalf("got %d %q, want 502 with Graph's code and request ID", resp.StatusCode, body)
	}
	// Without Graph's error body there is nothing to keep.
	st.tenant.SetFault(entraidtest.Graph, entraidtest.Fault{Status: http.StatusBadGateway, Body: "<html>Bad gateway</html>"})
	resp, body = navigate(t, st.browser(), st.server.URL+"/")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "groups_unavailable") {
		t.Fatalf("got %d %q, want 502 groups_unavailable", resp.StatusCode, body)
	}
}

func TestAPendingOverageIsResolvedByTheRouterThatNeedsGroups(t *testing.T) {
	// Two routers share the session: "open" has no group rules, "admin"
	// does, and comes later (a configuration reloaded after the sign-in).
	// A sign-in through "open" while no router of the app names a group
	// leaves the groups pending. (A cookie name of its own: the registry of
	// group rules is per process.)
	name := func(c *Config) { c.Session.CookieName = "pending_overage" }
	st := newStackFor(t, carol, name)
	c := st.browser()
	st.signIn(c)
	if st.tenant.Hits(entraidtest.Graph) != 0 {
		t.Fatal("a router without group rules asked Graph")
	}
	cfg := validConfig()
	name(cfg)
	cfg.MicrosoftEntraID.AuthorityHost = st.tenant.URL
	cfg.MicrosoftEntraID.ClientSecret = st.tenant.ClientSecret
	cfg.AllowedGroups = []string{carol.Groups[5]}
	admin, err := New(context.Background(), st.mw.next, cfg, "admin")
	if err != nil {
		t.Fatal(err)
	}
	st.server.Config.Handler = admin
	resp, body := navigate(t, c, st.server.URL+"/admin")
	if resp.StatusCode != http.StatusOK || body != "upstream /admin" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if st.tenant.Hits(entraidtest.Graph) == 0 || st.tenant.Hits("authorize") != 2 {
		t.Fatalf("graph hits %d, authorize hits %d: want a second sign-in that asked Graph", st.tenant.Hits(entraidtest.Graph), st.tenant.Hits("authorize"))
	}
}

// Routers of one app, one without group rules and one with allowedGroups:
// however the session of a user in a groups overage is signed in or
// renewed, by either router, the one with group rules lets the member in.
// (A router without group rules resolves the groups when a router of the
// app names some, with a Graph token of its own when it did not ask for
// User.Read.)
func TestAGroupsOverageStaysResolvedWhicheverRouterRenewsTheSession(t *testing.T) {
	for _, tc := range []struct {
		name          string
		signIn, renew string
	}{
		{"signed in by the router with group rules, renewed by the other", "admin", "open"},
		{"signed in and renewed by the router without group rules", "open", "open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cookie := "overage_" + tc.signIn + "_" + tc.renew
			st := newStackFor(t, carol, func(c *Config) { c.Session.CookieName = cookie })
			cfg := validConfig()
			cfg.Session.CookieName = cookie
			cfg.MicrosoftEntraID.AuthorityHost = st.tenant.URL
			cfg.MicrosoftEntraID.ClientSecret = st.tenant.ClientSecret
			cfg.AllowedGroups = []string{carol.Groups[5]}
			h, err := New(context.Background(), st.mw.next, cfg, "admin")
			if err != nil {
				t.Fatal(err)
			}
			routers := map[string]*Middleware{"open": st.mw, "admin": h.(*Middleware)}
			var mu sync.Mutex
			offset := time.Duration(0)
			for _, m := range routers {
				setClock(m, func() time.Time {
					mu.Lock()
					defer mu.Unlock()
					return time.Now().Add(offset)
				})
			}
			c := st.browser()
			st.server.Config.Handler = routers[tc.signIn]
			st.signIn(c)

			mu.Lock()
			offset = time.Hour + time.Minute
			mu.Unlock()
			st.server.Config.Handler = routers[tc.renew]
			refreshes := st.tenant.Hits(entraidtest.Refresh)
			if resp, body := navigate(t, c, st.server.URL+"/renewed"); resp.StatusCode != http.StatusOK || body != "upstream /renewed" {
				t.Fatalf("the renewing request: %d %.200q", resp.StatusCode, body)
			}
			st.lastUpstream()
			if st.tenant.Hits(entraidtest.Refresh) == refreshes {
				t.Fatal("the session was not renewed")
			}

			st.server.Config.Handler = routers["admin"]
			authorizes := st.tenant.Hits(entraidtest.Authorize)
			resp, body := navigate(t, c, st.server.URL+"/admin")
			if resp.StatusCode != http.StatusOK || body != "upstream /admin" {
				t.Fatalf("the router with group rules after the renewal: %d %.200q, want the member let in", resp.StatusCode, body)
			}
			if st.tenant.Hits(entraidtest.Authorize) != authorizes {
				t.Error("the router with group rules had to sign the member in again")
			}
			if got := st.lastUpstream().Get("X-Forwarded-Groups"); !strings.Contains(got, carol.Groups[5]) {
				t.Errorf("X-Forwarded-Groups = %q, want %s", got, carol.Groups[5])
			}
		})
	}
}
