package entraauth

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"sync"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// Signing out deletes the browser's cookie, and remembers the session as
// ended in this Traefik process, so that a copy of the cookie taken before
// (another browser profile, a synced device, a thief) is refused from then
// on: on the fast path, when a cookie is opened and at renewal, by every
// middleware of the same app. Entra ID's end-session does not revoke
// refresh tokens, so without this a copy would go on renewing until
// maxLifetime.
//
// A session is named by its app binding and its sign-in (session.ID, kept
// through renewals), hashed: the list holds no token. It is package-level
// like the session cache, so that it outlives reloads, and bounded: see
// signedOutList.add for what happens when it is full. Other Traefik
// processes do not know of a sign-out (see the readme's Security model).
var signedOut = newSignedOutList(maxSignedOut)

// maxSignedOut bounds the signed-out sessions remembered at once (about
// 150 bytes each under Yaegi: 15 MB at most).
const maxSignedOut = 100000

// signedOutList is the set of ended sessions, each until it would have
// ended anyway. It is safe for concurrent use.
type signedOutList struct {
	mu   sync.Mutex
	ends map[string]int64 // sessionRef -> the session's end, Unix seconds
	max  int
	// before: every session signed in (AuthTime) at or before it has
	// ended, set when the list overflowed.
	before int64
}

func newSignedOutList(max int) *signedOutList {
	return &signedOutList{ends: map[string]int64{}, max: max}
}

// sessionRef names s's sign-in for the app bound by aad (session.AAD). A
// session from before sign-ins had an ID is named by its user and sign-in
// time.
func sessionRef(aad string, s *session.Session) string {
	return digest("signed out\x00" + aad + "\x00" + s.TID + "\x00" + s.OID + "\x00" + strconv.FormatInt(s.AuthTime, 10) + "\x00" + s.ID)
}

// add ends s for the app aad until s.Expires, and returns the name it
// keeps s under (sessionRef). It reports whether the list overflowed: full
// of sessions that have not ended yet, it ends every session signed in
// until now rather than forget a sign-out (users sign in again, usually
// without a prompt: Entra ID still knows them), and empties itself. A flood of sign-outs costs sign-ins, never a copied
// session that works again.
func (l *signedOutList) add(aad string, s *session.Session, now time.Time) (ref string, overflowed bool) {
	ref = sessionRef(aad, s)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ends) >= l.max {
		for k, end := range l.ends {
			if end <= now.Unix() {
				delete(l.ends, k)
			}
		}
	}
	if len(l.ends) >= l.max {
		l.before = now.Unix()
		l.ends = map[string]int64{}
		overflowed = true
	}
	l.ends[ref] = s.Expires
	return ref, overflowed
}

// ended reports whether s has been signed out of the app aad.
func (l *signedOutList) ended(aad string, s *session.Session) bool {
	return l.endedRef(sessionRef(aad, s), s.AuthTime)
}

// endedRef is ended for a session named by sessionRef, signed in at
// signedIn.
func (l *signedOutList) endedRef(ref string, signedIn int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.ends[ref]
	return ok || l.before != 0 && signedIn <= l.before
}

func (l *signedOutList) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ends)
}

// endSession signs s out for good in this process: it is remembered as
// ended, the session cache forgets every outcome it served for it, so that
// the fast path refuses it too. The store refuses its handles from then on
// (rememberedSession), without a walk through every remembered session: a
// copy of the session cookie is refused here at once, not sent through
// the restore hop.
func (m *Middleware) endSession(s *session.Session) {
	ref, overflowed := signedOut.add(m.sessionAAD, s, m.now())
	if overflowed {
		m.log.Printf("more than %d signed-out sessions are remembered: every session signed in until now has ended in this Traefik process", maxSignedOut)
		sessions.forget("")
		remembered.forget("")
		return
	}
	sessions.forget(ref)
	m.log.Printf("session of %s signed out", s.OID)
}

// newSessionID names a new sign-in: 16 random bytes, base64url.
func newSessionID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("entraauth: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
