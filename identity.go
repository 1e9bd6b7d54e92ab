package entraauth

import (
	"errors"
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
	s, _ := m.openSessionCookie(r)
	return s
}

// openSessionCookie is openSession, and reports whether the session came
// under the session cookie's legacy name (from before the __Host- prefix),
// which the caller moves to the new name (moveSession). The legacy name is
// read only when r carries no session cookie at all: a cookie that a
// sibling subdomain planted under the old name for the parent domain never
// overrides the __Host- one, valid or not.
func (m *Middleware) openSessionCookie(r *http.Request) (*session.Session, bool) {
	// One assignment per statement: Yaegi can mix up parallel ones.
	aad := m.sessionAAD
	legacy := false
	value, err := session.ReadChunked(r, m.cookie.Name)
	if errors.Is(err, http.ErrNoCookie) && m.legacy.Name != "" {
		aad = m.legacyAAD
		legacy = true
		value, err = session.ReadChunked(r, m.legacy.Name)
	}
	if err != nil || value == "" {
		return nil, false
	}
	now := m.now()
	key := sessionCachePrefix(m, aad) + value
	if e := sessions.get(key); e != nil {
		if now.Unix() >= m.sessionEnd(e.session) {
			return nil, false
		}
		return e.session, legacy
	}
	plain, err := m.sealer.Open(value, aad, now)
	if err != nil {
		return nil, false
	}
	s, err := session.Unmarshal(plain)
	// A signed-out session is named under the app's binding whatever
	// cookie name carried it: a move to the __Host- name keeps its ID.
	if err != nil || now.Unix() >= m.sessionEnd(s) || signedOut.ended(m.sessionAAD, s) || !m.ownTenant(r, s) {
		return nil, false
	}
	sessions.put(key, &cacheEntry{sealer: m.sealer, session: s, expires: s.Expires, ref: sessionRef(m.sessionAAD, s), signedIn: s.AuthTime})
	return s, legacy
}

// carriesSession reports whether r carries a session cookie, under either
// name: one that did not open is a session that ended.
func (m *Middleware) carriesSession(r *http.Request) bool {
	if _, err := r.Cookie(m.cookie.Name); err == nil {
		return true
	}
	if m.legacy.Name == "" {
		return false
	}
	_, err := r.Cookie(m.legacy.Name)
	return err == nil
}

// moveSession seals s, opened from the legacy cookie, under the session
// cookie's name; setSessionCookie deletes the legacy one.
func (m *Middleware) moveSession(w http.ResponseWriter, r *http.Request, s *session.Session, now time.Time) {
	if err := m.writeSession(w, r, s, now); err != nil {
		m.log.Printf("cannot move the session of %s to the cookie %s: %v", s.OID, m.cookie.Name, err)
	}
}

// clearSession deletes the session cookie, under both names, with every
// chunk r carries, and the sign-in binding cookie (bindLogin) when r
// carries it: a session that ends leaves no cookie of the plugin behind (a
// sign-in that starts on the same response sets the binding again, after).
func (m *Middleware) clearSession(w http.ResponseWriter, r *http.Request) {
	session.ClearChunked(w.Header(), r, m.cookie)
	m.clearLegacySession(w, r)
	if m.loginBinding == "" || r == nil {
		return
	}
	if _, err := r.Cookie(m.loginBinding); err == nil {
		http.SetCookie(w, &http.Cookie{Name: m.loginBinding, Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
}

// clearLegacySession deletes the legacy session cookie and its chunks when
// r carries them.
func (m *Middleware) clearLegacySession(w http.ResponseWriter, r *http.Request) {
	if m.legacy.Name == "" || r == nil {
		return
	}
	for _, c := range r.Cookies() {
		if session.IsChunkName(m.legacy.Name, c.Name) {
			session.ClearChunked(w.Header(), r, m.legacy)
			return
		}
	}
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
	if err := session.SetChunked(w.Header(), r, opts, sealed); err != nil {
		return err
	}
	m.clearLegacySession(w, r)
	return nil
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
	return session.IsChunkName(m.cookie.Name, name) || strings.HasPrefix(name, m.loginPrefix) ||
		m.legacy.Name != "" && session.IsChunkName(m.legacy.Name, name) ||
		m.loginBinding != "" && name == m.loginBinding
}
