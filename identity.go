package entraauth

import (
	"net/http"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// openSession returns the signed-in user's session, or nil when there is
// none or it is expired, signed out, tampered with, sealed with an unknown
// secret or issued for another app, cloud or tenant: all of which simply
// mean "sign in again".
//
// A session it opened once comes from the session cache afterwards (never
// past its end), and is shared: callers must not modify it.
func (m *Middleware) openSession(r *http.Request) *session.Session {
	value, err := session.ReadChunked(r, m.cookie.Name)
	if err != nil || value == "" {
		return nil
	}
	now := m.now()
	key := sessionCachePrefix(m) + value
	if e := sessions.get(key); e != nil {
		if now.Unix() >= m.sessionEnd(e.session) {
			return nil
		}
		return e.session
	}
	plain, err := m.sealer.Open(value, m.sessionAAD, now)
	if err != nil {
		return nil
	}
	s, err := session.Unmarshal(plain)
	if err != nil || now.Unix() >= m.sessionEnd(s) || signedOut.ended(m.sessionAAD, s) || !m.ownTenant(r, s) {
		return nil
	}
	sessions.put(key, &cacheEntry{sealer: m.sealer, session: s, expires: s.Expires, ref: sessionRef(m.sessionAAD, s), signedIn: s.AuthTime})
	return s
}

// ownTenant checks a session's tenant where the rules cannot: with a
// verified domain as tenantID, the tid must be the tenant ID that the
// domain's discovery document names (fetched once, then cached by the
// client). A GUID tenantID is checked by the rules, a multi-tenant app's
// allowedTenants too. Discovery that cannot be had refuses the session:
// sign-in then explains the outage.
func (m *Middleware) ownTenant(r *http.Request, s *session.Session) bool {
	if !m.tenantIsDomain {
		return true
	}
	tid, err := m.client.TenantID(r.Context())
	if err != nil {
		m.log.Printf("cannot check the tenant of a session: %v", err)
		return false
	}
	return strings.EqualFold(s.TID, tid)
}

// writeSession seals s into the session cookie (split into chunks when
// large), which the browser keeps until s expires.
func (m *Middleware) writeSession(w http.ResponseWriter, r *http.Request, s *session.Session, now time.Time) error {
	sealed, err := m.sealSession(s)
	if err != nil {
		return err
	}
	return m.setSessionCookie(w, r, s, sealed, now)
}

// setSessionCookie sets the sealed session s, which the browser keeps
// until s expires.
func (m *Middleware) setSessionCookie(w http.ResponseWriter, r *http.Request, s *session.Session, sealed string, now time.Time) error {
	opts := m.cookie
	opts.MaxAge = int(s.Expires - now.Unix())
	return session.SetChunked(w.Header(), r, opts, sealed)
}

// sealSession seals s for the session cookie, bound to this app.
func (m *Middleware) sealSession(s *session.Session) (string, error) {
	plain, err := s.Marshal()
	if err != nil {
		return "", err
	}
	return m.sealer.Seal(plain, m.sessionAAD, time.Unix(s.Expires, 0))
}

// stripOwnCookies removes the plugin's cookies from the request, so that
// the upstream never sees the session. Other cookies pass untouched, byte
// for byte.
func (m *Middleware) stripOwnCookies(r *http.Request) {
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		var parts []string
		changed := false
		for _, part := range strings.Split(line, ";") {
			name := strings.TrimSpace(part)
			if i := strings.IndexByte(name, '='); i >= 0 {
				name = name[:i]
			}
			if m.isOwnCookie(name) {
				changed = true
				continue
			}
			parts = append(parts, strings.TrimSpace(part))
		}
		if !changed {
			kept = append(kept, line)
		} else if len(parts) > 0 {
			kept = append(kept, strings.Join(parts, "; "))
		}
	}
	if len(kept) == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header["Cookie"] = kept
}

func (m *Middleware) isOwnCookie(name string) bool {
	return session.IsChunkName(m.cookie.Name, name) || strings.HasPrefix(name, m.loginPrefix)
}
