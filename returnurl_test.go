package entraauth

import (
	"net/http/httptest"
	"testing"
)

func TestSafeReturnURL(t *testing.T) {
	own := &Middleware{}
	authHost := &Middleware{authHost: "auth.example.com", cookieDomain: "example.com"}

	tests := []struct {
		name  string
		m     *Middleware
		raw   string
		allow bool
	}{
		{"a local path is allowed", own, "/reports?year=2026#top", true},
		{"the root is allowed", own, "/", true},
		{"the request's own host is allowed", own, "https://app.example.com/page?x=1", true},
		{"the own host with another case is allowed", own, "https://APP.example.com/page", true},
		{"an app under the cookie domain is allowed in auth-host mode", authHost, "https://app2.example.com:8443/x", true},
		{"the cookie domain itself is allowed in auth-host mode", authHost, "https://example.com/", true},

		{"an empty target is refused", own, "", false},
		{"a protocol-relative URL is refused", own, "//evil.com", false},
		{"a protocol-relative URL with a path is refused", own, "//evil.com/app.example.com", false},
		{"a backslash after the slash is refused", own, `/\evil.com`, false},
		{"a backslash anywhere is refused", own, `/ok\..\evil`, false},
		{"an encoded slash after the slash is refused", own, "/%2F%2Fevil.com", false},
		{"an encoded lower-case slash is refused", own, "/%2fevil.com", false},
		{"an encoded backslash is refused", own, "/%5Cevil.com", false},
		{"another host is refused", own, "https://evil.com/", false},
		{"a look-alike suffix host is refused", own, "https://app.example.com.evil.com/", false},
		{"user info pointing elsewhere is refused", own, "https://app.example.com@evil.com/", false},
		{"user info on the own host is refused", own, "https://user:pw@app.example.com/", false},
		{"a fragment hiding the host is refused", own, "https://evil.com#@app.example.com", false},
		{"a javascript URL is refused", own, "javascript:alert(1)", false},
		{"a data URL is refused", own, "data:text/html,<script>alert(1)</script>", false},
		{"an opaque https URL is refused", own, "https:evil.com", false},
		{"a single-slash https URL is refused", own, "https:/evil.com", false},
		{"an upper-case scheme is refused", own, "HTTPS://evil.com", false},
		{"a triple-slash URL is refused", own, "https:///evil.com", false},
		{"a leading space is refused", own, " //evil.com", false},
		{"a tab inside is refused", own, "/\t/evil.com", false},
		{"a CR LF is refused", own, "/page\r\nSet-Cookie: x=y", false},
		{"a non-ASCII character is refused", own, "/ｅvil", false},
		{"a relative path without a slash is refused", own, "evil.com", false},
		{"an own-host URL whose path starts with two slashes is refused", own, "https://app.example.com//evil.com", false},
		{"a host outside the cookie domain is refused in auth-host mode", authHost, "https://evilexample.com/", false},
		{"a suffix attack on the cookie domain is refused", authHost, "https://example.com.evil.com/", false},
		{"another host is refused when there is no auth host", own, "https://app2.example.com/", false},
		{"an ftp URL is refused", own, "ftp://app.example.com/", false},
		{"an overlong target is refused", own, "/" + string(make([]byte, maxReturnURL)), false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://app.example.com/", nil)
			got, ok := tt.m.safeReturnURL(tt.raw, r)
			if ok != tt.allow {
				t.Fatalf("safeReturnURL(%q) allowed = %v, want %v", tt.raw, ok, tt.allow)
			}
			if ok && got != tt.raw {
				t.Fatalf("safeReturnURL(%q) = %q, want it unchanged", tt.raw, got)
			}
		})
	}
}
