package entraauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// A session is trusted as it is for the middleware's lifetime after it was
// issued or last renewed (renewAt). Then, with renewal on, the next request
// of any kind renews it in-band with Entra ID's refresh token, until
// maxLifetime after the sign-in (sessionEnd); without renewal it ends.
//
// Renewing is one token request per session and Traefik process, whatever
// the number of requests that need it at once (renewals), and its outcome
// serves the requests that still carry the old cookie for renewalMemory.

// renewals collapses the renewals of a session (see flightGroup).
var renewals = newFlightGroup(4096)

const (
	// renewalMemory is how long a renewal's outcome serves requests that
	// still carry the old cookie: those sent before the browser stored the
	// new one.
	renewalMemory = 2 * time.Minute
	// renewalGrace is how long a session past its lifetime keeps working
	// while Entra ID cannot be reached: each request in it tries again
	// (at most one try per failureMemory). Past it, requests get a 503
	// until Entra ID is back, and the session renews then.
	renewalGrace = 5 * time.Minute
	// failureMemory is how long a failed renewal is remembered, so that an
	// outage does not turn every request into a call to Entra ID.
	failureMemory = 5 * time.Second
	// renewalTimeout bounds one renewal, Graph included.
	renewalTimeout = 15 * time.Second
)

// sessionState says what currentSession found.
type sessionState int

const (
	// noSession: no session, or one that does not open: sign in.
	noSession sessionState = iota
	// sessionEnded: a session that ended (maxLifetime, or Entra ID
	// refused to renew it): sign in again; API calls get session_expired.
	sessionEnded
	// sessionValid: the session may be used.
	sessionValid
	// sessionRenewed: the session was renewed (or moved from an older
	// cookie) on this request; the response carries the new cookies.
	sessionRenewed
	// requestAnswered: the request got an error page (Entra ID unreachable
	// past the grace period, a broken app credential) or the restore hop.
	requestAnswered
)

// renewAt is when s must be renewed (or ends, without renewal): its issue
// or last renewal plus this middleware's lifetime, or its own expiry if
// that comes first. A middleware with a shorter lifetime than the one that
// issued s thus renews (or ends) it sooner.
func (m *Middleware) renewAt(s *session.Session) int64 {
	at := s.IssuedAt + int64(m.lifetime/time.Second)
	if s.Expires < at {
		return s.Expires
	}
	return at
}

// sessionEnd is when s ends for good here: with renewal, maxLifetime after
// the sign-in (or its own expiry if that comes first); without, renewAt.
func (m *Middleware) sessionEnd(s *session.Session) int64 {
	if !m.renew || s.RefreshToken == "" {
		return m.renewAt(s)
	}
	end := s.AuthTime + int64(m.maxLifetime/time.Second)
	if s.Expires < end {
		return s.Expires
	}
	return end
}

// currentSession returns r's session, renewed on this request when its
// lifetime is over, and what it found.
func (m *Middleware) currentSession(w http.ResponseWriter, r *http.Request) (*session.Session, sessionState) {
	s, kind := m.openSessionCookie(r)
	if s == nil {
		if kind == cookieAway {
			m.takeRestoreHop(w, r)
			return nil, requestAnswered
		}
		if m.carriesSession(r) {
			return nil, sessionEnded
		}
		return nil, noSession
	}
	now := m.now()
	if now.Unix() < m.renewAt(s) {
		if kind == cookieOld {
			// A session from before the restore hop or the __Host- prefix:
			// the response moves it, like a renewal, and the fast path does
			// not remember the old cookie.
			m.moveSession(w, r, s, now)
			return s, sessionRenewed
		}
		return s, sessionValid
	}
	return m.renewSession(w, r, s, now)
}

// renewal is the outcome of renewing one session, shared by the requests
// that needed it.
type renewal struct {
	session *session.Session // the renewed session...
	sealed  *sealedSession   // ...sealed for the cookies
	refused string           // why Entra ID refused: the session ends
	problem *problem         // why Entra ID could not be used now
}

// renewSession renews s, past its lifetime, in-band: one token request for any
// number of requests at once, the new cookie set on this response.
func (m *Middleware) renewSession(w http.ResponseWriter, r *http.Request, s *session.Session, now time.Time) (*session.Session, sessionState) {
	v, ok := renewals.do(r.Context(), m.renewalKey(s), m.now, func() (interface{}, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), renewalTimeout)
		defer cancel()
		rn := m.refreshSession(ctx, s, now)
		if rn.problem != nil {
			return rn, failureMemory
		}
		return rn, renewalMemory
	})
	rn, _ := v.(*renewal)
	if !ok || rn == nil {
		rn = &renewal{problem: m.upstreamProblem(fmt.Errorf("%w: renewing the session took too long", entraid.ErrUnavailable))}
	}
	switch {
	case rn.session != nil:
		if err := m.setSessionCookies(w, r, rn.session, rn.sealed, now); err != nil {
			m.log.Printf("cannot set the renewed session of %s: %v", s.OID, err)
		}
		return rn.session, sessionRenewed
	case rn.refused != "":
		m.clearSession(w, r)
		return nil, sessionEnded
	case now.Unix() < m.renewAt(s)+int64(m.grace()/time.Second):
		// Entra ID is out of reach for now: the session keeps working for
		// a short, bounded grace, and the next requests try again.
		return s, sessionValid
	}
	p := *rn.problem
	if p.Code == "idp_unavailable" {
		p.Title = "Your session cannot be renewed right now"
		p.Message = "Your session needs renewing, but Microsoft Entra ID cannot be reached. Please try again in a moment; you stay signed in."
	}
	m.writeError(w, r, &p)
	return nil, requestAnswered
}

// grace is renewalGrace, or the lifetime if that is shorter: the grace
// never doubles a short lifetime.
func (m *Middleware) grace() time.Duration {
	if m.lifetime < renewalGrace {
		return m.lifetime
	}
	return renewalGrace
}

// renewalKey names the renewal of s: the client that renews it (its
// scopes decide the claims), the session's binding and its refresh token,
// hashed.
func (m *Middleware) renewalKey(s *session.Session) string {
	return digest(fmt.Sprintf("renewal\x00%p\x00%s\x00%s", m.client, m.sessionAAD, s.RefreshToken))
}

// refreshSession redeems s's refresh token for a new ID token, verifies it
// like a sign-in's (no nonce; the same user and tenant), reads the claims
// again (groups overage included) and seals the new session with the new
// refresh token.
func (m *Middleware) refreshSession(ctx context.Context, s *session.Session, now time.Time) *renewal {
	tok, err := m.client.Refresh(ctx, s.RefreshToken, "")
	if err != nil {
		if why, refused := refusal(err); refused {
			m.log.Printf("session of %s ended: Microsoft Entra ID refused to renew it: %s", s.OID, why)
			return &renewal{refused: why}
		}
		return &renewal{problem: m.upstreamProblem(err)}
	}
	claims, err := m.client.VerifyRefreshedIDToken(ctx, tok.IDToken, s.OID, s.TID)
	if err != nil {
		if errors.Is(err, entraid.ErrUnavailable) {
			return &renewal{problem: m.upstreamProblem(err)}
		}
		m.log.Printf("session of %s ended: the renewed ID token did not verify: %v", s.OID, err)
		return &renewal{refused: "the renewed ID token did not verify"}
	}
	groups, pending, p := m.resolveGroups(ctx, claims, tok)
	if p != nil {
		return &renewal{problem: p}
	}
	next := m.sessionFrom(claims, groups, pending, now)
	next.ID = s.ID
	next.AuthTime = s.AuthTime
	next.StepUpAt = s.StepUpAt
	next.Expires = s.Expires
	next.RefreshToken = tok.RefreshToken
	if next.RefreshToken == "" {
		next.RefreshToken = s.RefreshToken
	}
	sealed, err := m.sealSession(next)
	if err != nil {
		m.log.Printf("cannot store the renewed session of %s: %v", s.OID, err)
		return &renewal{refused: "the renewed session does not fit in a cookie"}
	}
	return &renewal{session: next, sealed: sealed}
}

// refusal reports whether Entra ID refused a grant for good, as opposed to
// failing for now, and says why for the log. invalid_grant covers a
// disabled or deleted user, a reset password, a revoked or expired grant,
// and Conditional Access that now needs interaction (AADSTS 50057, 50173,
// 700082, 50076, 50079, 53003, 70043...); the other codes here mean the
// same. Problems of the app's own credential (invalid_client) are not the
// user's session's: they get an error page for the operator.
func refusal(err error) (string, bool) {
	ee := entraError(err)
	if ee == nil {
		return "", false
	}
	switch ee.Code {
	case "invalid_grant", "interaction_required", "login_required", "consent_required":
		return ee.Code + " " + ee.AADSTS() + " (trace ID " + ee.TraceID + ")", true
	}
	return "", false
}
