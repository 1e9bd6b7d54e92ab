package entraauth

import (
	"net/http"
	"time"

	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// A Conditional Access policy may apply to the upstream's API alone (MFA
// for the payroll API, say): the sign-in goes through silently, and then
// Entra ID refuses the API's access token with interaction_required and a
// claims challenge. Ending the session would sign the user in again for the
// sign-in's scopes only, which never meets the API's policy: a loop. The
// plugin steps up instead: a navigation goes to an interactive sign-in that
// asks for the API's scope and passes the challenge back, so that Entra ID
// runs the API's policy; the session stays as it is until that sign-in
// replaces it.

// stepUpWindow is how soon after a step-up another refusal is taken for a
// policy the user cannot meet (a device that must be compliant, say): an
// error page then, never another sign-in.
const stepUpWindow = 5 * time.Minute

// interactionRequired reports whether Entra ID refused a token for lack of
// an interactive sign-in that meets a policy: interaction_required, a
// claims challenge, or the codes of MFA (AADSTS50076, AADSTS50079) and of
// an external security challenge (AADSTS50158) whatever the error.
func interactionRequired(e *entraid.Error) bool {
	if e.Code == "interaction_required" || e.Claims != "" {
		return true
	}
	switch e.AADSTS() {
	case "AADSTS50076", "AADSTS50079", "AADSTS50158":
		return true
	}
	return false
}

// stepUp answers a request whose upstream token needs the user at Entra
// ID (e): a navigation signs in for the upstream's scope with e's claims
// challenge, unless s comes from such a sign-in moments ago (the policy
// cannot be met: an error page); anything else gets a 401 that says so.
func (m *Middleware) stepUp(w http.ResponseWriter, r *http.Request, s *session.Session, e *entraid.Error) {
	p := &problem{
		Status:  http.StatusUnauthorized,
		Title:   "Additional sign-in required",
		Message: "Your organization requires you to sign in again, with extra verification, to use " + m.upstream.scope + ". Open or reload the page in your browser to do so.",
		Code:    "interaction_required",
		AADSTS:  e.AADSTS(),
		TraceID: e.TraceID,
	}
	if !isNavigation(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+m.portal+`", error="interaction_required"`)
		m.writeError(w, r, p)
		return
	}
	if s.StepUpAt != 0 && m.now().Sub(time.Unix(s.StepUpAt, 0)) < stepUpWindow {
		m.log.Printf("%s signed in again for %s, and Microsoft Entra ID still refuses its access token: %s %s (trace ID %s)", s.OID, m.upstream.scope, e.Code, e.AADSTS(), e.TraceID)
		p.Status = http.StatusForbidden
		p.Title = "Access blocked by your organization's policy"
		p.Message = "You signed in again, but your organization's Conditional Access policy still does not allow access to " + m.upstream.scope + " from here: " + firstLine(e.Description)
		p.Code = "policy_not_met"
		p.Hint = "An administrator finds the policy in the Entra admin center's sign-in logs, by the trace ID below."
		m.writeError(w, r, p)
		return
	}
	m.startSignIn(w, r, requestURL(r), entraid.AuthRequest{ExtraScope: m.upstream.scope, Claims: e.Claims})
}
