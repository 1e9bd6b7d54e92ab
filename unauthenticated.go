package entraauth

import (
	"net/http"
	"net/url"
	"strings"
)

// What a router does with a request that has no session (the
// unauthenticated option).
const (
	// unauthenticatedRedirect sends browser navigations to sign in and
	// answers 401 to everything else: the default.
	unauthenticatedRedirect = "redirect"
	// unauthenticated401 never redirects: every request without a session
	// gets 401, for routers that serve APIs only.
	unauthenticated401 = "401"
	// unauthenticatedAllow lets requests without a session through without
	// identity: one app serves anonymous and signed-in users.
	unauthenticatedAllow = "allow"
)

// validateUnauthenticated reads the unauthenticated option.
func validateUnauthenticated(c *Config, s *settings) error {
	v := strings.ToLower(strings.TrimSpace(c.Unauthenticated))
	switch v {
	case "":
		v = unauthenticatedRedirect
	case unauthenticatedRedirect, unauthenticated401, unauthenticatedAllow:
	default:
		return optionError("unauthenticated", "%q is not a choice: write redirect (browsers sign in, the default), 401 (never redirect, for APIs) or allow (pass without identity headers)", c.Unauthenticated)
	}
	s.unauthenticated = v
	return nil
}

// passAnonymous lets r through without identity, as the unauthenticated:
// allow option says for a request without a usable session: the identity
// headers are already gone (authorize strips them first), and so go the
// plugin's cookies and, when upstreamAccessToken uses Authorization, the
// client's own Authorization header, which the upstream would otherwise
// take for a token the plugin set.
//
// A signed-in user whom the rules refuse passes here too, as anonymous: the
// router serves anonymous visitors anyway, so refusing the user would
// protect nothing (signing out would get them the same page), and the
// identity headers keep meaning "signed in and allowed".
func (m *Middleware) passAnonymous(r *http.Request) bool {
	m.stripOwnCookies(r)
	if m.upstream != nil && m.upstream.bearer {
		r.Header.Del("Authorization")
	}
	return true
}

// serveSignIn starts a sign-in on request, for a "Sign in" link on a page
// that anonymous users see (unauthenticated: allow): GET
// /portals/<portal>/sign-in?rd=<where to return>. rd passes the checks of
// every return URL; without a valid one the user returns to "/".
func (m *Middleware) serveSignIn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		m.writeError(w, r, &problem{Status: http.StatusMethodNotAllowed, Title: "Method not allowed", Message: "This page takes GET requests only.", Code: "method_not_allowed"})
		return
	}
	m.serveSignInTo(w, r, r.URL.Query().Get("rd"))
}

// serveSignInTo starts a sign-in that returns to rd (see signInReturn):
// the portal's sign-in endpoint and App Service's /.auth/login/aad.
func (m *Middleware) serveSignInTo(w http.ResponseWriter, r *http.Request, rd string) {
	m.startLoginTo(w, r, m.signInReturn(rd, r))
}

// signInReturn is where a sign-in asked for with rd returns: rd when the
// return checks allow it, as an absolute URL (the callback may be on the
// auth host), and never one of the portal's own endpoints, which would
// start another sign-in; the site's root otherwise.
func (m *Middleware) signInReturn(rd string, r *http.Request) string {
	base := requestOrigin(r)
	target, ok := m.safeReturnURL(rd, r)
	if !ok {
		return base + "/"
	}
	if strings.HasPrefix(target, "/") {
		target = base + target
	}
	if u, err := url.Parse(target); err != nil || strings.HasPrefix(u.Path, m.prefix) {
		return base + "/"
	}
	return target
}
