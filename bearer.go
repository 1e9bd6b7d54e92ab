package entraauth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	auth := r.Header.Get("Authorization")
	if len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(auth[7:]), true
}

// authorizeBearer checks an API client's access token. Delegated tokens
// (a user through an app) must carry one of requiredScopes, when set, and
// satisfy the rules like a signed-in user; app-only tokens (an application
// for itself) must carry one of apiAppRoles: the rules describe people, so
// a role meant for them (allowedRoles) never lets an application in. The
// upstream gets the same identity headers as for a browser session.
func (m *Middleware) authorizeBearer(w http.ResponseWriter, r *http.Request, raw string) bool {
	ac, err := m.client.VerifyAccessToken(r.Context(), raw, *m.api)
	if err != nil {
		if errors.Is(err, entraid.ErrUnavailable) {
			m.writeError(w, r, m.upstreamProblem(err))
			return false
		}
		m.bearerError(w, r, http.StatusUnauthorized, "invalid_token", strings.TrimPrefix(err.Error(), entraid.ErrInvalidAccessToken.Error()+": "))
		return false
	}
	if !m.clientAllowed(ac.AppID) {
		m.log.Printf("bearer token of client application %q refused: not in apiAllowedClients", ac.AppID)
		m.bearerError(w, r, http.StatusForbidden, "insufficient_scope", "the client application "+ac.AppID+" is not allowed to call this API (apiAllowedClients)")
		return false
	}
	s := &session.Session{OID: ac.OID, TID: ac.TID, Name: ac.Name, PreferredUsername: ac.PreferredUsername, Roles: ac.Roles, Groups: ac.Groups}
	if ac.AppOnly {
		if len(m.apiAppRoles) == 0 || !intersects(m.apiAppRoles, ac.Roles, false) {
			m.bearerError(w, r, http.StatusForbidden, "insufficient_scope", "app-only tokens need one of the app roles in apiAppRoles")
			return false
		}
	} else {
		if len(m.requiredScopes) > 0 && !intersects(m.requiredScopes, ac.Scopes, false) {
			m.bearerError(w, r, http.StatusForbidden, "insufficient_scope", "the token carries none of the scopes "+strings.Join(m.requiredScopes, ", "))
			return false
		}
		if ok, why := m.rules.allow(s); !ok {
			m.bearerError(w, r, http.StatusForbidden, "insufficient_scope", why)
			return false
		}
	}
	m.setIdentityHeaders(r.Header, m.identityValues(s))
	m.stripOwnCookies(r)
	return true
}

// clientAllowed reports whether tokens issued to the client application
// appID may call the API: any client without apiAllowedClients. App
// Service's "allowed client applications", checked for delegated and
// app-only tokens alike: the token is valid, its client may not call.
func (m *Middleware) clientAllowed(appID string) bool {
	return m.apiClients == nil || m.apiClients[strings.ToLower(appID)]
}

// bearerError answers an API client as RFC 6750 says: the error in
// WWW-Authenticate and a JSON body.
func (m *Middleware) bearerError(w http.ResponseWriter, r *http.Request, status int, code, description string) {
	description = strings.Map(func(c rune) rune {
		if c == '"' || c == '\\' || c < 0x20 || c == 0x7f {
			return '\''
		}
		return c
	}, description)
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+m.portal+`", error="`+code+`", error_description="`+description+`"`)
	w.Header().Set("Cache-Control", privateNoStore)
	writeJSON(w, status, map[string]interface{}{"error": code, "error_description": description, "status": status})
}
