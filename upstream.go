package entraauth

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// upstreamTokens remembers the access tokens minted for upstreams, per
// sign-in and scope, until upstreamTokenMargin before they expire, and
// collapses concurrent mints into one (see flightGroup). Tokens live in
// process memory only, never in the cookie: each Traefik instance mints
// its own.
var upstreamTokens = newFlightGroup(4096)

const (
	// upstreamTokenMargin: a token is replaced this long before it expires,
	// so that the upstream never receives one about to expire.
	upstreamTokenMargin = 5 * time.Minute
	// shortestUpstreamToken bounds how often a token is minted when Entra
	// ID issues short-lived ones.
	shortestUpstreamToken = time.Minute
)

// upstreamAccess is the outcome of minting an access token for the
// upstream.
type upstreamAccess struct {
	token   string // the access token, sanitized; each router formats it (format)
	expires int64  // Unix seconds: the token is replaced from then on
	refused bool   // Entra ID refused the grant: the session ends
	// interaction: the API's Conditional Access needs the user (stepUp);
	// the session itself is fine.
	interaction *entraid.Error
	problem     *problem
}

// setUpstreamToken sets the access token for the upstream on r: redeemed
// with s's refresh token for the configured scope, or remembered from an
// earlier request of the same sign-in. It returns when the token must be
// replaced, or answers the request itself and reports answered.
func (m *Middleware) setUpstreamToken(w http.ResponseWriter, r *http.Request, s *session.Session) (until int64, answered bool) {
	now := m.now()
	key := digest(fmt.Sprintf("upstream token\x00%p\x00%s\x00%s\x00%s\x00%d", m.client, m.sessionAAD, m.upstream.scope, s.OID, s.AuthTime))
	v, ok := upstreamTokens.do(r.Context(), key, m.now, func() (interface{}, time.Duration) {
		a := m.mintUpstreamToken(s, now)
		if a.problem != nil || a.refused || a.interaction != nil {
			return a, failureMemory
		}
		// Until the token is replaced, counted from now that it came.
		return a, time.Unix(a.expires, 0).Sub(m.now())
	})
	a, _ := v.(*upstreamAccess)
	if !ok || a == nil {
		a = &upstreamAccess{problem: m.upstreamProblem(fmt.Errorf("%w: the access token for the upstream took too long", entraid.ErrUnavailable))}
	}
	switch {
	case a.refused:
		m.clearSession(w, r)
		m.challenge(w, r, sessionEnded)
		return 0, true
	case a.interaction != nil:
		m.stepUp(w, r, s, a.interaction)
		return 0, true
	case a.problem != nil:
		m.writeError(w, r, a.problem)
		return 0, true
	}
	r.Header[m.upstream.header] = []string{m.upstream.format(a.token)}
	if m.appService {
		// X-MS-TOKEN-AAD-ACCESS-TOKEN: the token alone, in any case.
		r.Header[appServiceTokenHeader] = []string{a.token}
	}
	return a.expires, false
}

// format is the header value that carries token: "Bearer <token>" in
// Authorization, the token alone in a header of its own. Routers of one app
// and scope share the token, not the header value: each formats it.
func (u *upstreamToken) format(token string) string {
	if u.bearer {
		return "Bearer " + token
	}
	return token
}

// mintUpstreamToken redeems s's refresh token for an access token for the
// upstream's scope.
func (m *Middleware) mintUpstreamToken(s *session.Session, now time.Time) *upstreamAccess {
	if s.RefreshToken == "" {
		return &upstreamAccess{refused: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), renewalTimeout)
	defer cancel()
	tok, err := m.client.Refresh(ctx, s.RefreshToken, m.upstream.scope)
	if err != nil {
		if ee := entraError(err); ee != nil && consentMissing(ee) {
			p := m.upstreamProblem(err)
			p.Status = http.StatusForbidden
			p.Title = "Consent is missing"
			p.Message = "This application needs permission to call " + m.upstream.scope + " on your behalf, and nobody has granted it yet."
			p.Hint = "An administrator grants it in the Entra admin center: App registrations > this app > API permissions > add " + m.upstream.scope + " > Grant admin consent."
			return &upstreamAccess{problem: p}
		}
		if ee := entraError(err); ee != nil && interactionRequired(ee) {
			m.log.Printf("an access token for %s needs %s to sign in interactively (Conditional Access): %s %s (trace ID %s)", m.upstream.scope, s.OID, ee.Code, ee.AADSTS(), ee.TraceID)
			return &upstreamAccess{interaction: ee}
		}
		if why, refused := refusal(err); refused {
			m.log.Printf("session of %s ended: Microsoft Entra ID refused an access token for %s: %s", s.OID, m.upstream.scope, why)
			return &upstreamAccess{refused: true}
		}
		return &upstreamAccess{problem: m.upstreamProblem(err)}
	}
	life := time.Duration(tok.ExpiresIn)*time.Second - upstreamTokenMargin
	if life < shortestUpstreamToken {
		life = shortestUpstreamToken
	}
	return &upstreamAccess{token: sanitizeHeaderValue(tok.AccessToken), expires: now.Add(life).Unix()}
}

// consentMissing reports whether Entra ID refused a token for lack of
// consent to the scope (AADSTS65001, or consent_required).
func consentMissing(e *entraid.Error) bool {
	return e.Code == "consent_required" || e.AADSTS() == "AADSTS65001"
}
