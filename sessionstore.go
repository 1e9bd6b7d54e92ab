package entraauth

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// A session is kept in two places, so that the cookie every request
// carries stays small whatever the user's groups and refresh token:
//
//   - in this Traefik process's memory (remembered), under a random handle,
//     for the signed-in requests and in-band renewal;
//   - in the portal cookie (Path /portals/<portal>/), sealed whole, which
//     any Traefik process sharing the secret can read.
//
// The session cookie (Path /) carries only the handle, sealed: under 100
// bytes. A process that does not remember the handle (another replica, a
// restart, an entry evicted past the bound) sends the browser through one
// same-origin redirect, the restore hop, to the portal's session endpoint,
// which receives the portal cookie, remembers the session and redirects
// back: never through Entra ID. The portal cookie is sealed under the
// handle as well as the app's binding, so it opens only beside the session
// cookie it was issued with (a __Host- cookie where possible, which no
// sibling subdomain can plant).
//
// A new handle is issued with every sealed version of the session (sign-in,
// renewal, the move of an older cookie), so a process never serves an older
// version of a session under a newer handle.

// remembered holds the sessions of this process by handle, in the
// package's reload-safe way (see sessions): package-level, shared by every
// middleware and reload, keyed by the sealer and the app's binding
// (sessionCachePrefix) and bounded. Past the bound the oldest generation
// is dropped, and its users take the restore hop once: never an error.
var remembered = newSessionCache(storeGeneration, storeGenerationBytes)

const (
	// storeGeneration bounds the sessions of one generation; the store
	// keeps two.
	storeGeneration = 50000
	// storeGenerationBytes bounds the bytes of one generation, counted
	// by storeSize: users in hundreds of groups take more of it than
	// others. At most twice this is held.
	storeGenerationBytes = 32 << 20
	// storeEntryOverhead and storeListItem are what a remembered session
	// costs beyond its encoded size: the entry, its map slot and key, the
	// session's strings' headers, and per item of its lists (a group is a
	// string of its own), as measured by TestBytesPerRememberedSession.
	storeEntryOverhead = 1024
	storeListItem      = 48
	// referencePrefix starts the plaintext of the session cookie: a
	// sealed session (a JSON object, from before the restore hop) never
	// does.
	referencePrefix = "h:"
	// restoreCode is the problem code of a request that cannot take the
	// restore hop.
	restoreCode = "session_unavailable"
)

// sealedSession is one version of a session, sealed for both cookies.
type sealedSession struct {
	handle    string
	reference string // the session cookie's value: the sealed handle
	full      string // the portal cookie's value: the sealed session
	size      int    // what it costs in the store
}

// sealSession seals s for both cookies under a new handle, bound to this
// app.
func (m *Middleware) sealSession(s *session.Session) (*sealedSession, error) {
	plain, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	handle := newSessionID()
	expires := time.Unix(s.Expires, 0)
	full, err := m.sealer.Seal(plain, m.portalAAD(handle), expires)
	if err != nil {
		return nil, err
	}
	ref, err := m.sealer.Seal([]byte(referencePrefix+handle), m.sessionAAD, expires)
	if err != nil {
		return nil, err
	}
	return &sealedSession{handle: handle, reference: ref, full: full, size: storeSize(s, len(plain))}, nil
}

// storeSize is what s, encoded in encoded bytes, costs in the store.
func storeSize(s *session.Session, encoded int) int {
	return encoded + storeEntryOverhead + storeListItem*(len(s.Groups)+len(s.Roles)+len(s.Claims))
}

// portalAAD is what the portal cookie of handle is sealed under: the
// session's binding to the app (session.AAD, with the portal cookie's
// name) and the handle, so that it opens only beside its session cookie.
func (m *Middleware) portalAAD(handle string) string {
	return m.portalBinding + "\x00" + handle
}

// referenceHandle returns the handle a session cookie's plaintext names.
func referenceHandle(plain []byte) (string, bool) {
	if len(plain) <= len(referencePrefix) || string(plain[:len(referencePrefix)]) != referencePrefix {
		return "", false
	}
	return string(plain[len(referencePrefix):]), true
}

// remember keeps s in this process under handle.
func (m *Middleware) remember(handle string, s *session.Session, size int) {
	remembered.put(m.storeKey(handle), &cacheEntry{sealer: m.sealer, session: s, expires: s.Expires, ref: sessionRef(m.sessionAAD, s), signedIn: s.AuthTime, size: size})
}

// storeKey is where remembered keeps the session of handle for m.
func (m *Middleware) storeKey(handle string) string {
	return sessionCachePrefix(m, m.sessionAAD) + handle
}

// rememberedSession returns the session of handle, from memory or, when
// r carries it (requests under the portal's path), from the portal cookie,
// which it then remembers. It returns nil when neither has it; away
// reports that the memory lacked it but the session may still be had
// through the restore hop.
func (m *Middleware) rememberedSession(r *http.Request, handle string, now time.Time) (s *session.Session, away bool) {
	if e := remembered.get(m.storeKey(handle)); e != nil {
		if now.Unix() >= m.sessionEnd(e.session) || signedOut.endedRef(e.ref, e.signedIn) || !m.ownTenant(r, e.session) {
			return nil, false
		}
		return e.session, false
	}
	value, err := session.ReadChunked(r, m.portalCookie.Name)
	if err != nil {
		return nil, true
	}
	plain, err := m.sealer.Open(value, m.portalAAD(handle), now)
	if err != nil {
		return nil, false
	}
	s = m.usableSession(r, plain, now)
	if s == nil {
		return nil, false
	}
	m.remember(handle, s, storeSize(s, len(plain)))
	return s, false
}

// takeRestoreHop answers a request whose session this process does not
// remember: a redirect (307, which keeps the method and body) to the
// portal's session endpoint, which restores it and sends the browser
// back; or, for a request that cannot follow a redirect (a WebSocket
// upgrade), a 401 that any page request resolves.
func (m *Middleware) takeRestoreHop(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", privateNoStore)
	if isUpgrade(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+m.portal+`"`)
		m.writeError(w, r, &problem{
			Status:  http.StatusUnauthorized,
			Title:   "Session not available here",
			Message: "This server does not hold your session yet, and this connection cannot follow the redirect that brings it. Load any page of the site, then try again.",
			Code:    restoreCode,
		})
		return
	}
	http.Redirect(w, r, m.restorePath+"?rd="+url.QueryEscape(r.URL.RequestURI()), http.StatusTemporaryRedirect)
}

// isUpgrade reports whether r asks to switch protocols (a WebSocket),
// which browsers never do through a redirect.
func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || strings.EqualFold(r.Header.Get("Sec-Fetch-Mode"), "websocket")
}

// serveRestore is the restore hop's endpoint: it opens the session from
// the portal cookie (openSessionCookie does, under the portal's path),
// which this process then remembers, and redirects back to rd, a return
// URL that passes the same checks as every other (safeReturnURL), or to
// "/". A session that cannot be restored (signed out, ended, its portal
// cookie gone) loses its cookies here: back at rd, the request then asks
// for a sign-in as any other without a session, and no redirect loop can
// form.
func (m *Middleware) serveRestore(w http.ResponseWriter, r *http.Request) {
	target, ok := m.safeReturnURL(r.URL.Query().Get("rd"), r)
	if !ok {
		target = "/"
	}
	s, kind := m.openSessionCookie(r)
	switch {
	case s == nil:
		m.clearSession(w, r)
	case kind == cookieOld:
		m.moveSession(w, r, s, m.now())
	}
	w.Header().Set("Cache-Control", privateNoStore)
	http.Redirect(w, r, target, http.StatusTemporaryRedirect)
}
