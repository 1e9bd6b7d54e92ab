package entraauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// conditionalAccessStack is an upstream-token stack whose API gets a
// Conditional Access policy after the user signed in: the tenant refuses
// silent tokens for it until an interactive sign-in that asked for the API
// with the claims challenge.
func conditionalAccessStack(t *testing.T, policy entraidtest.Policy) *renewalStack {
	t.Helper()
	rs, _ := upstreamStack(t, entraidtest.API{IdentifierURI: "api://payroll", Scopes: []string{"Payroll.Read"}}, "")
	rs.tenant.SetAPIPolicy("api://payroll", policy)
	rs.advance(56 * time.Minute) // the token minted at sign-in must be replaced
	return rs
}

func TestConditionalAccessOnTheUpstreamAPIStepsUpInsteadOfLooping(t *testing.T) {
	rs := conditionalAccessStack(t, entraidtest.PolicyMFA)
	authorizes := rs.tenant.Hits(entraidtest.Authorize)

	// The navigation goes to a sign-in for the API's scope, with the
	// challenge Entra ID returned.
	resp, body := rs.send(t, http.MethodGet, "/payslips", browserNavigation())
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("%d %.300q, want a redirect to an interactive sign-in", resp.StatusCode, body)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if !strings.HasPrefix(loc.String(), rs.tenant.URL) {
		t.Fatalf("redirected to %s, want Entra ID", loc)
	}
	q := loc.Query()
	if !strings.Contains(" "+q.Get("scope")+" ", " api://payroll/.default ") {
		t.Errorf("scope %q does not ask for the API", q.Get("scope"))
	}
	var claims map[string]interface{}
	if err := json.Unmarshal([]byte(q.Get("claims")), &claims); err != nil || claims["access_token"] == nil {
		t.Errorf("claims %q: want the challenge Entra ID returned (%v)", q.Get("claims"), err)
	}
	if findSetCookie(resp, rs.mw.cookie.Name+"=") != "" {
		t.Error("the step-up ended the session: the app's own session is fine")
	}

	// Entra ID runs the API's policy; back on the site the token is minted.
	follow := *rs.user
	follow.CheckRedirect = nil
	final, body := navigate(t, &follow, loc.String())
	if final.StatusCode != http.StatusOK || body != "upstream /payslips" {
		t.Fatalf("after the step-up: %d at %s %.300q", final.StatusCode, final.Request.URL, body)
	}
	if auth := rs.lastUpstream().Get("Authorization"); !strings.HasPrefix(auth, "Bearer ") {
		t.Errorf("Authorization %q after the step-up", auth)
	}
	if got := rs.tenant.Hits(entraidtest.Authorize) - authorizes; got != 1 {
		t.Errorf("%d interactive sign-ins, want 1", got)
	}
}

func TestAPolicyTheStepUpCannotSatisfyShowsAnErrorNotALoop(t *testing.T) {
	rs := conditionalAccessStack(t, entraidtest.PolicyCompliantDevice)
	resp, _ := rs.send(t, http.MethodGet, "/payslips", browserNavigation())
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("the first time: %d, want the step-up", resp.StatusCode)
	}
	authorizes := rs.tenant.Hits(entraidtest.Authorize)
	c := *rs.user
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > 6 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	final, body := navigate(t, &c, resp.Header.Get("Location"))
	if final.StatusCode != http.StatusForbidden {
		t.Fatalf("after a step-up that did not help: %d at %s %.300q, want an error page", final.StatusCode, final.Request.URL, body)
	}
	for _, want := range []string{"api://payroll", "AADSTS53000", "policy"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page does not name %q: %.800q", want, body)
		}
	}
	if got := rs.tenant.Hits(entraidtest.Authorize) - authorizes; got != 1 {
		t.Errorf("%d sign-ins after the first step-up, want 1: a loop", got)
	}
}

func TestAnAPICallThatNeedsAStepUpGetsA401ThatSaysSo(t *testing.T) {
	rs := conditionalAccessStack(t, entraidtest.PolicyMFA)
	resp, body := rs.send(t, http.MethodGet, "/api/payslips", apiCall())
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%d %.300q, want 401", resp.StatusCode, body)
	}
	var got map[string]interface{}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got["error"] != "interaction_required" {
		t.Fatalf("body %.300q: want error interaction_required", body)
	}
	if !strings.Contains(got["error_description"].(string), "api://payroll") {
		t.Errorf("the description does not name the API: %q", got["error_description"])
	}
	if findSetCookie(resp, rs.mw.cookie.Name+"=") != "" {
		t.Error("the 401 ended the session")
	}
}
