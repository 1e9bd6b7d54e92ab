package entraauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// guard builds a middleware from c (validConfig when nil) in front of an
// upstream that records the headers it receives, its trailers among them
// (as upstreams that merge trailers into headers would read them).
func guard(t *testing.T, change func(c *Config)) (*Middleware, *http.Header) {
	t.Helper()
	c := validConfig()
	if change != nil {
		change(c)
	}
	got := new(http.Header)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		for k, vs := range r.Trailer {
			h[k] = append(h[k], vs...)
		}
		*got = h
		w.WriteHeader(http.StatusOK)
	})
	h, err := New(context.Background(), next, c, "rules")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h.(*Middleware), got
}

// sessionCookie seals s the way a sign-in would: through the middleware's
// own writeSession, so that the cookie carries whatever binds a session to
// its middleware. An unset IssuedAt is now and an unset Expires an hour
// from now.
func sessionCookie(t *testing.T, m *Middleware, s *session.Session) string {
	t.Helper()
	if s.IssuedAt == 0 {
		s.IssuedAt = time.Now().Unix()
	}
	if s.Expires == 0 {
		s.Expires = time.Now().Add(time.Hour).Unix()
	}
	w := httptest.NewRecorder()
	if err := m.writeSession(w, nil, s, time.Now()); err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, c := range w.Result().Cookies() {
		// What a browser sends outside the portal's path: the portal
		// cookie stays behind; m remembers the session.
		if c.Path == "/" {
			pairs = append(pairs, c.Name+"="+c.Value)
		}
	}
	return strings.Join(pairs, "; ")
}

// oldSessionCookie seals s whole into m's session cookie, chunked, as
// the plugin did before the restore hop (see remembered): the cookies a
// browser still holds from then.
func oldSessionCookie(t testing.TB, m *Middleware, s *session.Session) string {
	t.Helper()
	if s.IssuedAt == 0 {
		s.IssuedAt = time.Now().Unix()
	}
	if s.Expires == 0 {
		s.Expires = time.Now().Add(time.Hour).Unix()
	}
	plain, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := m.sealer.Seal(plain, m.sessionAAD, time.Unix(s.Expires, 0))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if err := session.SetChunked(h, nil, m.cookie, sealed); err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for _, c := range (&http.Response{Header: h}).Cookies() {
		pairs = append(pairs, c.Name+"="+c.Value)
	}
	return strings.Join(pairs, "; ")
}

// serve sends a signed-in navigation for s through m.
func serve(t *testing.T, m *Middleware, s *session.Session, target string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", "https://app.example.com"+target, nil)
	r.Header.Set("Accept", "text/html")
	if s != nil {
		r.Header.Set("Cookie", sessionCookie(t, m, s))
	}
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	return w
}

func aliceSession() *session.Session {
	return &session.Session{
		OID:               alice.OID,
		TID:               testTenantID,
		Name:              alice.Name,
		PreferredUsername: alice.PreferredUsername,
		Email:             alice.Email,
		Groups:            alice.Groups,
		Roles:             alice.Roles,
	}
}

func TestRules(t *testing.T) {
	missing := func(change func(s *session.Session)) *session.Session {
		s := aliceSession()
		change(s)
		return s
	}
	tests := []struct {
		name    string
		config  func(c *Config)
		session *session.Session
		allow   bool
	}{
		{"no rules let any user of the tenant pass", nil, aliceSession(), true},
		{"no rules refuse a user of another tenant", nil, missing(func(s *session.Session) { s.TID = "00000000-1111-2222-3333-444444444444" }), false},

		{"allowedUsers matches the object ID", func(c *Config) { c.AllowedUsers = []string{strings.ToUpper(alice.OID)} }, aliceSession(), true},
		{"allowedUsers matches the user name, any case", func(c *Config) { c.AllowedUsers = []string{"ALICE@contoso.example"} }, aliceSession(), true},
		{"allowedUsers refuses someone else", func(c *Config) { c.AllowedUsers = []string{"bob@contoso.example"} }, aliceSession(), false},
		{"allowedUsers from a label string", func(c *Config) { c.AllowedUsers = []string{"bob@contoso.example,alice@contoso.example"} }, aliceSession(), true},
		{"an object ID in allowedUsers never matches a user name", func(c *Config) { c.AllowedUsers = []string{alice.OID} }, func() *session.Session {
			s := aliceSession()
			s.OID = "99999999-0000-4000-8000-000000000009"
			s.PreferredUsername = alice.OID
			return s
		}(), false},
		{"a user name in allowedUsers never matches an object ID", func(c *Config) { c.AllowedUsers = []string{"alice@contoso.example"} }, func() *session.Session {
			s := aliceSession()
			s.OID = "alice@contoso.example"
			s.PreferredUsername = "mallory@contoso.example"
			return s
		}(), false},

		{"allowedGroups matches one group", func(c *Config) { c.AllowedGroups = []string{strings.ToUpper(alice.Groups[1])} }, aliceSession(), true},
		{"allowedGroups refuses other groups", func(c *Config) { c.AllowedGroups = []string{"a1b2c3d4-0000-4000-8000-000000000009"} }, aliceSession(), false},
		{"allowedGroups refuses a user without groups", func(c *Config) { c.AllowedGroups = []string{alice.Groups[0]} }, missing(func(s *session.Session) { s.Groups = nil }), false},
		{"allowedGroups from a label string", func(c *Config) {
			c.AllowedGroups = []string{"a1b2c3d4-0000-4000-8000-000000000009," + alice.Groups[0]}
		}, aliceSession(), true},

		{"allowedRoles matches a role", func(c *Config) { c.AllowedRoles = []string{"Writer", "Reader"} }, aliceSession(), true},
		{"allowedRoles is case-sensitive, as app role values are", func(c *Config) { c.AllowedRoles = []string{"reader"} }, aliceSession(), false},
		{"allowedRoles refuses a user without roles", func(c *Config) { c.AllowedRoles = []string{"Reader"} }, missing(func(s *session.Session) { s.Roles = nil }), false},
		{"allowedRoles from a label string", func(c *Config) { c.AllowedRoles = []string{"Writer,Reader"} }, aliceSession(), true},

		{"allowedEmailDomains matches the email's domain", func(c *Config) { c.AllowedEmailDomains = []string{"@Contoso.Example"} }, aliceSession(), true},
		{"allowedEmailDomains refuses another domain", func(c *Config) { c.AllowedEmailDomains = []string{"fabrikam.example"} }, aliceSession(), false},
		{"allowedEmailDomains refuses a subdomain trick", func(c *Config) { c.AllowedEmailDomains = []string{"contoso.example"} },
			missing(func(s *session.Session) { s.Email = "mallory@contoso.example.evil.com" }), false},
		{"allowedEmailDomains refuses a user without email", func(c *Config) { c.AllowedEmailDomains = []string{"contoso.example"} },
			missing(func(s *session.Session) { s.Email = "" }), false},
		{"allowedEmailDomains from a label string", func(c *Config) { c.AllowedEmailDomains = []string{"fabrikam.example,contoso.example"} }, aliceSession(), true},

		{"every non-empty list must be satisfied", func(c *Config) {
			c.AllowedRoles = []string{"Reader"}
			c.AllowedGroups = []string{"a1b2c3d4-0000-4000-8000-000000000009"}
		}, aliceSession(), false},
		{"all lists satisfied", func(c *Config) {
			c.AllowedRoles = []string{"Reader"}
			c.AllowedGroups = []string{alice.Groups[0]}
			c.AllowedUsers = []string{alice.OID}
			c.AllowedEmailDomains = []string{"contoso.example"}
		}, aliceSession(), true},

		{"a multi-tenant app lets an allowed tenant pass", func(c *Config) {
			c.MicrosoftEntraID.TenantID = "organizations"
			c.MicrosoftEntraID.AllowedTenants = []string{"00000000-1111-2222-3333-444444444444," + testTenantID}
		}, aliceSession(), true},
		{"a multi-tenant app refuses a foreign tenant", func(c *Config) {
			c.MicrosoftEntraID.TenantID = "organizations"
			c.MicrosoftEntraID.AllowedTenants = []string{"00000000-1111-2222-3333-444444444444"}
		}, aliceSession(), false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			m, _ := guard(t, tt.config)
			w := serve(t, m, tt.session, "/")
			switch {
			case tt.allow && w.Code != http.StatusOK:
				t.Fatalf("status %d, want the user to pass", w.Code)
			case !tt.allow && w.Code != http.StatusForbidden:
				t.Fatalf("status %d, want 403", w.Code)
			}
		})
	}
}

func TestForbiddenPageNamesTheUserAndOffersSignOut(t *testing.T) {
	m, _ := guard(t, func(c *Config) { c.AllowedRoles = []string{"Admin"} })
	w := serve(t, m, aliceSession(), "/admin")
	body := w.Body.String()
	if w.Code != http.StatusForbidden || w.Header().Get("Location") != "" {
		t.Fatalf("status %d, Location %q: want a 403 and no redirect", w.Code, w.Header().Get("Location"))
	}
	if !strings.Contains(body, alice.PreferredUsername) || !strings.Contains(body, `action="/portals/main/logout"`) {
		t.Fatalf("page %q lacks the user or the sign-out form", body)
	}
}

func TestExclusions(t *testing.T) {
	m, got := guard(t, func(c *Config) {
		c.ExcludedPaths = []string{"/health", "/public/*"}
		c.ExcludedMethods = []string{"options"}
	})
	tests := []struct {
		method, target string
		pass           bool
	}{
		{"GET", "/health", true},
		{"GET", "/health/deep", false},
		{"GET", "/healthz", false},
		{"GET", "/public/app.css", true},
		{"GET", "/public", false},
		{"GET", "/public/../admin", false},
		{"GET", "/public/%2e%2e/admin", false},
		{"GET", "/public/./x", false},
		{"GET", "/public/..;/admin", false},
		{"GET", "/public/..;jsessionid=x/admin", false},
		{"GET", "/public/%2e%2e;/admin", false},
		{"GET", "/public/..%3b/admin", false},
		{"GET", "/public/app.css;jsessionid=x", false},
		{"GET", "/public/%252e%252e/admin", false},
		{"GET", "/public/%252e%252e%252fadmin", false},
		{"GET", "/public/%2e/admin", false},
		{"GET", "/public/%c0%ae%c0%ae/admin", false},
		{"GET", "/public/..%00/admin", false},
		{"GET", "/public/caf%C3%A9.png", true},
		{"GET", "/public/v1.2/app..min.js", true},
		{"GET", "/public/dir/", true},
		{"GET", "/health;x", false},
		{"GET", "/health%3b", false},
		{"OPTIONS", "/api/items", true},
		{"POST", "/health/../api", false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://app.example.com"+tt.target, nil)
			r.Header.Set("X-Forwarded-User", "mallory")
			r.Header.Set("Cookie", "other=1; __Host-entraauth_main=x; entraauth_main=y")
			*got = nil
			w := httptest.NewRecorder()
			m.ServeHTTP(w, r)
			if tt.pass {
				if w.Code != http.StatusOK {
					t.Fatalf("status %d, want it to pass unauthenticated", w.Code)
				}
				if got.Get("X-Forwarded-User") != "" || got.Get("Cookie") != "other=1" {
					t.Fatalf("upstream got X-Forwarded-User %q, Cookie %q", got.Get("X-Forwarded-User"), got.Get("Cookie"))
				}
			} else if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
		})
	}
}

func TestPlainPath(t *testing.T) {
	tests := []struct {
		target string
		plain  bool
	}{
		{"/public/app.css", true},
		{"/public/", true},
		{"/public/a/b/c.js", true},
		{"/public/caf%C3%A9", true},
		{"/public/...", true},
		{"/public/.well-known/x", true},
		{"/public/../admin", false},
		{"/public/./admin", false},
		{"/public//admin", false},
		{"/public/%2e%2e/admin", false},
		{"/public/%2E/admin", false},
		{"/public/..;/admin", false},
		{"/public/;/admin", false},
		{"/public/x;y", false},
		{"/public/..%3B/admin", false},
		{"/public/%252e%252e/admin", false},
		{"/public/%25", false},
		{"/public/..%5Cadmin", false},
		{"/public/..\\admin", false},
		{"/public/a%2Fb", false},
		{"/public/a%2fb", false},
		{"/public/%c0%ae%c0%ae/admin", false},
		{"/public/a%00b", false},
		{"/public/a%0Ab", false},
		{"/public/a%7Fb", false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.target, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://app.example.com"+tt.target, nil)
			if got := plainPath(r.URL); got != tt.plain {
				t.Fatalf("plainPath(%q) = %v, want %v (Path %q, RawPath %q)", tt.target, got, tt.plain, r.URL.Path, r.URL.RawPath)
			}
		})
	}
}
