package entraauth

import (
	"net/http"
	"net/url"
	"strings"
)

const maxReturnURL = 4096

// safeReturnURL reports whether raw may be used as a redirect target after
// sign-in or sign-out, and returns it. Allowed: a local path ("/page?x=1"),
// or an absolute http(s) URL on the request's own host or, in auth-host
// mode, on a host under the cookie domain. Everything that a browser could
// read as another origin is refused: "//evil.com", "/\evil.com", encoded
// slashes and backslashes, user info, other schemes, control characters and
// white space.
func (m *Middleware) safeReturnURL(raw string, r *http.Request) (string, bool) {
	if raw == "" || len(raw) > maxReturnURL {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "", false
		}
	}
	if raw[0] == '/' {
		if !isLocalPath(raw) {
			return "", false
		}
		return raw, true
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", false
	}
	if !strings.HasPrefix(raw, u.Scheme+"://") {
		return "", false // e.g. "HTTPS://" or "https:/\"
	}
	if u.Path != "" && !isLocalPath(u.EscapedPath()) {
		return "", false
	}
	if !m.returnHostAllowed(u.Host, r) {
		return "", false
	}
	return raw, true
}

// isLocalPath reports whether p is a path on this origin: one leading slash,
// not followed by a slash or backslash, even percent-encoded.
func isLocalPath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	lower := strings.ToLower(p)
	return !strings.HasPrefix(lower, "/%2f") && !strings.HasPrefix(lower, "/%5c")
}

// returnHostAllowed: the request's own host or, in auth-host mode, any host
// under the cookie domain (the applications the auth host serves).
func (m *Middleware) returnHostAllowed(host string, r *http.Request) bool {
	if strings.EqualFold(host, r.Host) {
		return true
	}
	if m.authHost == "" || m.cookieDomain == "" {
		return false
	}
	h := hostOnly(host)
	return isDomain(h) && hostUnderDomain(h, m.cookieDomain)
}
