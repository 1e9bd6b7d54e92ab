package entraauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tfa-plugin/entraauth/session"
)

func TestDefaultIdentityHeaders(t *testing.T) {
	m, got := guard(t, nil)
	if w := serve(t, m, aliceSession(), "/"); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	want := map[string]string{
		"X-Forwarded-User":               alice.OID,
		"X-Forwarded-Email":              alice.Email,
		"X-Forwarded-Name":               alice.Name,
		"X-Forwarded-Preferred-Username": alice.PreferredUsername,
		"X-Forwarded-Groups":             strings.Join(alice.Groups, ","),
		"X-Forwarded-Roles":              "Reader",
	}
	for k, v := range want {
		if got.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, got.Get(k), v)
		}
	}
}

func TestConfiguredHeadersReplaceTheDefaults(t *testing.T) {
	m, got := guard(t, func(c *Config) {
		c.Headers = map[string]string{"x-user-id": "oid", "X-Tenant": "tid", "X-Department": "department", "X-Roles": "roles"}
	})
	s := aliceSession()
	s.Claims = map[string]string{"department": "Research"}
	r := httptest.NewRequest("GET", "https://app.example.com/", nil)
	r.Header.Set("Cookie", sessionCookie(t, m, s))
	r.Header.Set("X-Department", "Spoofed")
	r.Header.Set("X-Forwarded-User", "mallory")
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	want := map[string]string{"X-User-Id": alice.OID, "X-Tenant": testTenantID, "X-Department": "Research", "X-Roles": "Reader", "X-Forwarded-User": ""}
	for k, v := range want {
		if vals := got.Values(k); (v == "" && len(vals) != 0) || (v != "" && (len(vals) != 1 || vals[0] != v)) {
			t.Errorf("%s = %q, want %q", k, vals, v)
		}
	}
}

func TestHeaderValuesAreSanitized(t *testing.T) {
	m, got := guard(t, nil)
	s := aliceSession()
	s.Name = "Alice\r\nX-Admin: true\x00"
	s.Email = strings.Repeat("a", maxHeaderValue) + "@contoso.example"
	if w := serve(t, m, s, "/"); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if v := got.Get("X-Forwarded-Name"); v != "AliceX-Admin: true" {
		t.Errorf("X-Forwarded-Name = %q, want control characters removed", v)
	}
	if got.Get("X-Admin") != "" {
		t.Error("a header was smuggled through a claim")
	}
	if v := got.Get("X-Forwarded-Email"); v != "" {
		t.Errorf("an over-long email was sent (%d bytes)", len(v))
	}
	if got.Get("X-Forwarded-User") != alice.OID {
		t.Error("dropping one header dropped the others")
	}
}

func TestSpoofedHeadersAreRemovedWhateverTheirCasing(t *testing.T) {
	m, got := guard(t, nil)
	r := httptest.NewRequest("GET", "https://app.example.com/", nil)
	r.Header.Set("Cookie", sessionCookie(t, m, &session.Session{OID: "6c1e3d5a-7b8f-4a2e-9d1c-0b2a3c4d5e6f", TID: testTenantID}))
	r.Header["x-forwarded-user"] = []string{"mallory"}
	r.Header["X-FORWARDED-GROUPS"] = []string{"admins"}
	r.Header.Add("X-Forwarded-Roles", "Admin")
	r.Header.Add("X-Forwarded-Roles", "Owner")
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	for k, v := range *got {
		lower := strings.ToLower(k)
		if strings.HasPrefix(lower, "x-forwarded-") && lower != "x-forwarded-user" {
			t.Errorf("%s = %q reached the upstream", k, v)
		}
		if lower == "x-forwarded-user" && (len(v) != 1 || v[0] != "6c1e3d5a-7b8f-4a2e-9d1c-0b2a3c4d5e6f") {
			t.Errorf("%s = %q", k, v)
		}
	}
}

func TestFoldHeaderNameReadsEverySeparatorAsADash(t *testing.T) {
	tests := []struct{ name, folded string }{
		{"X-Forwarded-User", "x-forwarded-user"},
		{"X_FORWARDED_USER", "x-forwarded-user"},
		{"X.Forwarded.User", "x-forwarded-user"},
		{"x~forwarded!user", "x-forwarded-user"},
		{"X#Forwarded$User", "x-forwarded-user"},
		{"X%Forwarded&User", "x-forwarded-user"},
		{"X'Forwarded*User", "x-forwarded-user"},
		{"X+Forwarded^User", "x-forwarded-user"},
		{"X`Forwarded|User", "x-forwarded-user"},
		{"X--Forwarded-User", "x--forwarded-user"},
		{"XForwardedUser", "xforwardeduser"},
	}
	for _, tt := range tests {
		if got := foldHeaderName(tt.name); got != tt.folded {
			t.Errorf("foldHeaderName(%q) = %q, want %q", tt.name, got, tt.folded)
		}
	}
}

func TestIdentityHeadersAreRemovedFromTrailersToo(t *testing.T) {
	m, got := guard(t, func(c *Config) { c.ExcludedPaths = []string{"/public/*"} })
	r := httptest.NewRequest("POST", "https://app.example.com/public/upload", strings.NewReader("x"))
	r.Trailer = http.Header{"X-Forwarded-User": {"mallory"}, "X.Forwarded.Groups": {"admins"}, "X-Checksum": {"1"}}
	w := httptest.NewRecorder()
	m.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if len(r.Trailer) != 1 || r.Trailer.Get("X-Checksum") != "1" {
		t.Fatalf("trailers %v, want X-Checksum alone", r.Trailer)
	}
	if got.Get("X-Forwarded-User") != "" {
		t.Fatalf("upstream got X-Forwarded-User %q", got.Get("X-Forwarded-User"))
	}
}
