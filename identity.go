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
// mean "sign in again". It is also nil for a session this process does not
// remember, outside the portal's path (see remembered).
//
// The session is shared: callers must not modify it.
func (m *Middleware) openSession(r *http.Request) *session.Session {
	s, _ := m.openSessionCookie(r)
	return s
}

// cookieKind says where openSessionCookie found a session.
type cookieKind int

const (
	// cookieNone: no session, or one that does not open.
	cookieNone cookieKind = iota
	// cookieRemembered: the session cookie names a session this process
	// remembers (or restored from the portal cookie).
	cookieRemembered
	// cookieAway: the session cookie names a session this process does not
	// remember, and r does not carry the portal cookie: the restore hop
	// brings it (takeRestoreHop).
	cookieAway
	// cookieOld: a whole session in the session cookie (before the
	// restore hop) or under its legacy name (before the __Host- prefix),
	// which the caller moves to the new cookies (moveSession).
	cookieOld
)

// openSessionCookie is openSession, and says where the session came from.
// The legacy name is read only when r carries no session cookie at all: a
// cookie that a sibling subdomain planted under the old name for the
// parent domain never overrides the __Host- one, valid or not.
func (m *Middleware) openSessionCookie(r *http.Request) (*session.Session, cookieKind) {
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
		return nil, cookieNone
	}
	now := m.now()
	plain, err := m.sealer.Open(value, aad, now)
	if err != nil {
		return nil, cookieNone
	}
	if handle, ok := referenceHandle(plain); ok && !legacy {
		s, away := m.rememberedSession(r, handle, now)
		switch {
		case s != nil:
			return s, cookieRemembered
		case away:
			return nil, cookieAway
		}
		return nil, cookieNone
	}
	s := m.usableSession(r, plain, now)
	if s == nil {
		return nil, cookieNone
	}
	return s, cookieOld
}

// usableSession decodes plain, a whole sealed session opened from a cookie
// (the session cookie of an earlier format, or the portal cookie), and
// returns it unless it does not decode, has ended, was signed out or
// belongs to another tenant. A signed-out session is named under the
// app's binding whatever cookie carried it: a move to the __Host- name or
// into the portal cookie keeps its ID.
func (m *Middleware) usableSession(r *http.Request, plain []byte, now time.Time) *session.Session {
	s, err := session.Unmarshal(plain)
	if err != nil || now.Unix() >= m.sessionEnd(s) || signedOut.ended(m.sessionAAD, s) || !m.ownTenant(r, s) {
		return nil
	}
	return s
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

// moveSession seals s, opened from an older cookie (cookieOld), into the
// session and portal cookies; setSessionCookies deletes the legacy one.
func (m *Middleware) moveSession(w http.ResponseWriter, r *http.Request, s *session.Session, now time.Time) {
	if err := m.writeSession(w, r, s, now); err != nil {
		m.log.Printf("cannot move the session of %s to the cookies %s and %s: %v", s.OID, m.cookie.Name, m.portalCookie.Name, err)
	}
}

// clearSession deletes the session cookie, under both names, and the
// portal cookie, with every chunk r carries, their host-only versions from
// before session.cookieDomain (clearHostOnlySession), and the sign-in binding
// cookie (bindLogin) when r carries it: a session that ends leaves no
// cookie of the plugin behind (a sign-in that starts on the same response
// sets the binding again, after). The portal cookie's chunks reach only
// requests under the portal's path; elsewhere its first cookie goes,
// without which the others open nothing and expire with the session.
func (m *Middleware) clearSession(w http.ResponseWriter, r *http.Request) {
	session.ClearChunked(w.Header(), r, m.cookie)
	session.ClearChunked(w.Header(), r, m.portalCookie)
	m.clearLegacySession(w, r)
	m.clearHostOnlySession(w, r)
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
	if m.legacy.Name != "" && r != nil && carries(r, m.legacy.Name) {
		session.ClearChunked(w.Header(), r, m.legacy)
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

// writeSession seals s into the session and portal cookies, which the
// browser keeps until s expires, and remembers it in this process.
func (m *Middleware) writeSession(w http.ResponseWriter, r *http.Request, s *session.Session, now time.Time) error {
	sealed, err := m.sealSession(s)
	if err != nil {
		return err
	}
	return m.setSessionCookies(w, r, s, sealed, now)
}

// setSessionCookies sets the cookies of the sealed session s, which the
// browser keeps until s expires, and remembers s in this process under
// their handle. Nothing is set when the portal cookie does not fit.
func (m *Middleware) setSessionCookies(w http.ResponseWriter, r *http.Request, s *session.Session, sealed *sealedSession, now time.Time) error {
	full := m.portalCookie
	full.MaxAge = int(s.Expires - now.Unix())
	h := http.Header{}
	if err := session.SetChunked(h, r, full, sealed.full); err != nil {
		return err
	}
	ref := m.cookie
	ref.MaxAge = full.MaxAge
	if err := session.SetChunked(h, r, ref, sealed.reference); err != nil {
		return err
	}
	for _, line := range h["Set-Cookie"] {
		w.Header().Add("Set-Cookie", line)
	}
	m.clearLegacySession(w, r)
	m.remember(sealed.handle, s, sealed.size)
	return nil
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
	return session.IsChunkName(m.cookie.Name, name) || session.IsChunkName(m.portalCookie.Name, name) || strings.HasPrefix(name, m.loginPrefix) ||
		m.legacy.Name != "" && session.IsChunkName(m.legacy.Name, name) ||
		m.loginBinding != "" && name == m.loginBinding
}
