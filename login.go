package entraauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// loginLifetime bounds a sign-in in flight: Entra's authorization codes live
// about ten minutes, so a slower sign-in could not finish anyway.
const loginLifetime = 10 * time.Minute

// loginState is what the login-state cookie carries from the redirect to the
// callback. One cookie per login in flight, named after its state, lets
// several tabs sign in at once.
type loginState struct {
	State       string `json:"s"`
	Nonce       string `json:"n"`
	Verifier    string `json:"v"`
	ReturnURL   string `json:"r"`
	RedirectURI string `json:"u"`
	// StepUp marks a sign-in for an API's Conditional Access (stepUp).
	StepUp bool `json:"su,omitempty"`
	// Binding is the value of the browser's binding cookie (bindLogin).
	Binding string `json:"b,omitempty"`
}

// startLogin sends the browser to Entra ID with a fresh state, nonce and
// PKCE verifier, remembered in a sealed cookie only the callback receives;
// the user returns to the URL requested.
func (m *Middleware) startLogin(w http.ResponseWriter, r *http.Request) {
	m.startSignIn(w, r, requestURL(r), entraid.AuthRequest{})
}

// startLoginTo is startLogin returning to returnURL, an absolute URL the
// return checks allow.
func (m *Middleware) startLoginTo(w http.ResponseWriter, r *http.Request, returnURL string) {
	m.startSignIn(w, r, returnURL, entraid.AuthRequest{})
}

// startSignIn is startLoginTo with extra, the scope and claims challenge of
// a step-up (see stepUp), or none.
func (m *Middleware) startSignIn(w http.ResponseWriter, r *http.Request, returnURL string, extra entraid.AuthRequest) {
	scheme := requestScheme(r)
	if scheme == "http" && !m.insecure {
		m.writeError(w, r, &problem{
			Status: http.StatusBadRequest,
			Title:  "Sign-in needs HTTPS",
			Message: "This site is served over plain HTTP, but the session cookie is Secure, so the browser would drop it " +
				"and sign-in would never finish. Serve the site over HTTPS, or for local development only set session.insecureCookies: true.",
			Code: "insecure_transport",
		})
		return
	}
	st := loginState{
		State:     randomToken(),
		Nonce:     randomToken(),
		Verifier:  randomToken(),
		ReturnURL: returnURL,
	}
	host := r.Host
	if m.authHost != "" {
		host = m.authHost
	}
	st.RedirectURI = scheme + "://" + host + m.callbackPath
	st.StepUp = extra.ExtraScope != ""
	st.Binding = m.bindLogin(w, r)

	authURL, err := m.client.AuthCodeURL(r.Context(), entraid.AuthRequest{
		RedirectURI:   st.RedirectURI,
		State:         st.State,
		Nonce:         st.Nonce,
		CodeChallenge: codeChallenge(st.Verifier),
		Prompt:        m.prompt,
		DomainHint:    m.domainHint,
		ExtraScope:    extra.ExtraScope,
		Claims:        extra.Claims,
	})
	if err != nil {
		m.writeError(w, r, m.upstreamProblem(err))
		return
	}
	plain, err := json.Marshal(st)
	if err != nil {
		m.writeError(w, r, internalProblem())
		return
	}
	name := m.loginCookieName(st.State)
	sealed, err := m.sealer.Seal(plain, m.loginAAD(name), m.now().Add(loginLifetime))
	if err != nil {
		m.writeError(w, r, internalProblem())
		return
	}
	http.SetCookie(w, m.loginCookie(name, sealed, int(loginLifetime/time.Second)))
	m.clearHostOnlySession(w, r)
	w.Header().Set("Cache-Control", privateNoStore)
	http.Redirect(w, r, authURL, http.StatusFound)
}

// serveCallback finishes a sign-in: it checks the state against this
// browser's login-state cookie, redeems the code with the PKCE verifier,
// verifies the ID token and sets the session cookie.
func (m *Middleware) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		m.writeError(w, r, &problem{Status: http.StatusMethodNotAllowed, Title: "Method not allowed", Message: "The sign-in callback takes GET requests only.", Code: "method_not_allowed"})
		return
	}
	q := r.URL.Query()
	st, ok := m.consumeLoginState(w, r, q.Get("state"))
	if !ok {
		if m.openSession(r) != nil {
			// A callback opened again (the back button, a reload) by a user
			// who is signed in: nothing to finish.
			w.Header().Set("Cache-Control", privateNoStore)
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		// Whatever error and description the URL carries are not shown:
		// without a sign-in of this browser behind it, anyone could have
		// written them ("your account is locked, call ...").
		m.writeError(w, r, &problem{
			Status:  http.StatusBadRequest,
			Title:   "Sign-in expired",
			Message: "This sign-in was not started in this browser, was already used, or took longer than 10 minutes. Please start again.",
			Code:    "invalid_state",
			Retry:   "/",
		})
		return
	}
	if e := q.Get("error"); e != "" {
		p := callbackErrorProblem(e, q.Get("error_description"), st)
		// The codes for the operator, whatever the page shows: a user who
		// cancelled and one whom Conditional Access refused both report
		// "I could not sign in".
		m.log.Printf("sign-in did not complete: Microsoft Entra ID answered %s", callbackErrorLogLine(p))
		m.writeError(w, r, p)
		return
	}
	code := q.Get("code")
	if code == "" {
		m.writeError(w, r, &problem{Status: http.StatusBadRequest, Title: "Sign-in failed", Message: "Microsoft Entra ID returned no authorization code.", Code: "missing_code", Retry: st.ReturnURL})
		return
	}
	token, err := m.client.Exchange(r.Context(), code, st.Verifier, st.RedirectURI)
	if err != nil {
		p := m.upstreamProblem(err)
		p.Retry = st.ReturnURL
		m.writeError(w, r, p)
		return
	}
	claims, err := m.client.VerifyIDToken(r.Context(), token.IDToken, st.Nonce)
	if err != nil {
		m.log.Printf("sign-in refused: %v", err)
		if errors.Is(err, entraid.ErrTenantNotAllowed) {
			m.writeError(w, r, &problem{Status: http.StatusForbidden, Title: "Organization not allowed", Message: "You signed in with an account of an organization that may not use this application. Sign in with an account of an allowed organization.", Code: "tenant_not_allowed", Retry: st.ReturnURL})
			return
		}
		status := http.StatusUnauthorized
		if errors.Is(err, entraid.ErrUnavailable) {
			status = http.StatusBadGateway
		}
		m.writeError(w, r, &problem{Status: status, Title: "Sign-in could not be verified", Message: "The identity token from Microsoft Entra ID did not pass verification. Please sign in again.", Code: "invalid_id_token", Retry: st.ReturnURL})
		return
	}
	groups, pending, p := m.resolveGroups(r.Context(), claims, token)
	if p != nil {
		p.Retry = st.ReturnURL
		m.writeError(w, r, p)
		return
	}
	now := m.now()
	s := m.sessionFrom(claims, groups, pending, now)
	s.ID = newSessionID()
	s.AuthTime = now.Unix()
	if st.StepUp {
		s.StepUpAt = now.Unix()
	}
	s.Expires = now.Add(m.lifetime).Unix()
	if m.renew && token.RefreshToken != "" {
		s.RefreshToken = token.RefreshToken
		s.Expires = now.Add(m.maxLifetime).Unix()
	}
	if err := m.writeSession(w, r, s, now); err != nil {
		m.log.Printf("cannot store the session of %s: %v", claims.OID, err)
		m.writeError(w, r, &problem{Status: http.StatusInternalServerError, Title: "Session too large", Message: "Your account's sign-in information does not fit in a browser cookie.", Code: "session_too_large"})
		return
	}
	m.clearHostOnlySession(w, r)
	target, ok := m.safeReturnURL(st.ReturnURL, r)
	if !ok {
		target = "/"
	}
	w.Header().Set("Cache-Control", privateNoStore)
	http.Redirect(w, r, target, http.StatusFound)
}

// sessionFrom is the session of a verified ID token, issued now; the
// caller sets its expiry, sign-in time and refresh token.
func (m *Middleware) sessionFrom(claims *entraid.Claims, groups []string, pending bool, now time.Time) *session.Session {
	return &session.Session{
		OID:               claims.OID,
		TID:               claims.TID,
		Name:              claims.Name,
		PreferredUsername: claims.PreferredUsername,
		Email:             claims.Email,
		Roles:             claims.Roles,
		Groups:            groups,
		GroupsPending:     pending,
		Claims:            m.extraClaims(claims),
		IssuedAt:          now.Unix(),
	}
}

// resolveGroups returns the groups to keep in the session of a sign-in or
// renewal whose tokens are tok. A user in more groups than a token holds (a
// groups overage) has none in the token. When some router sharing the
// session names groups in its rules (any of them, not only this one: a
// session signed in or renewed here serves them all), it asks Microsoft
// Graph and keeps the groups that some router's rules name. tok's access
// token reads Graph when this router asked for User.Read (a router with
// group rules does); otherwise the refresh token is redeemed for User.Read
// first. Without a refresh token (renewal off), or when Entra ID refuses
// User.Read, the groups stay pending: a router that needs them signs the
// user in again, asking for it. A Graph failure is an error page, never a
// silent "no groups" (see groupsUnavailable).
func (m *Middleware) resolveGroups(ctx context.Context, claims *entraid.Claims, tok *entraid.Token) ([]string, bool, *problem) {
	if !claims.GroupsOverage {
		return claims.Groups, false, nil
	}
	if !groupsNamed(m.sessionKey) {
		return nil, true, nil
	}
	access := tok.AccessToken
	if !containsFold(m.client.Scopes(), entraid.GraphScope) {
		if tok.RefreshToken == "" {
			return nil, true, nil
		}
		graph, err := m.client.Refresh(ctx, tok.RefreshToken, entraid.GraphScope)
		if why, refused := refusal(err); refused {
			m.log.Printf("groups of %s left pending: Microsoft Entra ID refused a token for Microsoft Graph: %s", claims.OID, why)
			return nil, true, nil
		}
		if err != nil {
			return m.groupsUnavailable(claims, err)
		}
		access = graph.AccessToken
	}
	all, err := m.client.GroupMemberships(ctx, access)
	if err != nil {
		return m.groupsUnavailable(claims, err)
	}
	return neededGroups(m.sessionKey, all), false, nil
}

// groupsUnavailable is resolveGroups' answer when Graph (or a token for
// it) fails: an error page where this router's rules need the groups; a
// router without group rules leaves them pending instead, so that an
// outage of Graph never stops a router that does not need them.
func (m *Middleware) groupsUnavailable(claims *entraid.Claims, err error) ([]string, bool, *problem) {
	p := m.groupsProblem(claims, err)
	if len(m.rules.groups) == 0 {
		return nil, true, nil
	}
	return nil, false, p
}

// groupsProblem logs why a user's groups could not be read and explains
// it: access cannot be decided.
func (m *Middleware) groupsProblem(claims *entraid.Claims, err error) *problem {
	m.log.Printf("group memberships of %s from Microsoft Graph: %v", claims.OID, err)
	p := &problem{
		Status:  http.StatusBadGateway,
		Title:   "Group memberships could not be read",
		Message: "You are in more groups than a sign-in token holds, and Microsoft Graph did not tell us which: access cannot be decided. Please try again.",
		Code:    "groups_unavailable",
		Hint:    "The app registration needs the delegated Microsoft Graph permission User.Read (granted with admin consent where users cannot consent).",
	}
	if ee := entraError(err); ee != nil {
		p.Code = ee.Code
		p.TraceID = ee.TraceID
	}
	return p
}

// clearHostOnlySession deletes the host-only cookies left from before
// session.cookieDomain was set (hostOnlyCookies) that r carries. The
// browser would send the portal cookie (and the session cookie of older
// releases) beside the new domain cookie of the same name, a pair that
// opens as neither: the restore hop would fail and sign-in loop. (On the
// cookie domain's own host the two are the same cookie.)
func (m *Middleware) clearHostOnlySession(w http.ResponseWriter, r *http.Request) {
	if len(m.hostOnlyCookies) == 0 || r == nil || strings.EqualFold(hostOnly(r.Host), m.cookieDomain) {
		return
	}
	for _, c := range m.hostOnlyCookies {
		if carries(r, c.Name) {
			session.ClearChunked(w.Header(), r, c)
		}
	}
}

// carries reports whether r carries the cookie name or one of its chunks.
func carries(r *http.Request, name string) bool {
	for _, c := range r.Cookies() {
		if session.IsChunkName(name, c.Name) {
			return true
		}
	}
	return false
}

// consumeLoginState finds, opens and deletes the login-state cookie that
// belongs to state. It reports false for a missing, forged, expired or
// already used state.
func (m *Middleware) consumeLoginState(w http.ResponseWriter, r *http.Request, state string) (*loginState, bool) {
	if len(state) != tokenLength || !onlyOf(state, base64URLAlphabet) {
		return nil, false
	}
	name := m.loginCookieName(state)
	c, err := r.Cookie(name)
	if err != nil {
		return nil, false
	}
	http.SetCookie(w, m.loginCookie(name, "", -1))
	plain, err := m.sealer.Open(c.Value, m.loginAAD(name), m.now())
	if err != nil {
		return nil, false
	}
	var st loginState
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, false
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 || !m.boundToBrowser(r, &st) {
		return nil, false
	}
	if !usedStates.claim(state, m.now()) {
		return nil, false
	}
	return &st, true
}

// Login-state cookies cannot have the __Host- prefix, which needs Path=/:
// they are scoped to the callback path. A sibling subdomain could then set
// one for the parent domain: its own, genuine, with the callback URL of its
// own sign-in, which signs the victim in to the attacker's account (login
// CSRF, a session fixation). Where the session cookie has the prefix, a
// small __Host- cookie (loginBinding), set when a sign-in starts and kept
// for the browser's sign-ins in flight, holds a random value that the
// login state carries: a planted login state carries the attacker's value,
// and no sibling can set the victim's binding cookie.

// bindLogin sets, or keeps, the browser's binding cookie and returns its
// value; "" without one (session.cookieDomain, session.insecureCookies).
func (m *Middleware) bindLogin(w http.ResponseWriter, r *http.Request) string {
	if m.loginBinding == "" {
		return ""
	}
	value := randomToken()
	if c, err := r.Cookie(m.loginBinding); err == nil && len(c.Value) == tokenLength && onlyOf(c.Value, base64URLAlphabet) {
		// Another tab's sign-in is in flight with it.
		value = c.Value
	}
	http.SetCookie(w, &http.Cookie{
		Name:     m.loginBinding,
		Value:    value,
		Path:     "/",
		MaxAge:   int(loginLifetime / time.Second),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	return value
}

// boundToBrowser reports whether st was started in the browser that sent
// r: its binding cookie holds st's value (always true without one).
func (m *Middleware) boundToBrowser(r *http.Request, st *loginState) bool {
	if m.loginBinding == "" {
		return true
	}
	c, err := r.Cookie(m.loginBinding)
	return err == nil && len(st.Binding) == tokenLength && subtle.ConstantTimeCompare([]byte(c.Value), []byte(st.Binding)) == 1
}

func (m *Middleware) loginCookieName(state string) string {
	return m.loginPrefix + state[:12]
}

// loginAAD binds a login-state cookie, like the session, to its name and
// to the app registration that started the sign-in.
func (m *Middleware) loginAAD(name string) string {
	return name + "\x00" + m.sessionAAD
}

// loginCookie is scoped to the callback path, so that it travels with no
// other request; in auth-host mode it is set for the cookie domain, so that
// the auth host's callback receives it.
func (m *Middleware) loginCookie(name, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     m.callbackPath,
		MaxAge:   maxAge,
		Secure:   !m.insecure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if m.authHost != "" {
		c.Domain = m.cookieDomain
	}
	return c
}

const (
	tokenLength       = 43 // 32 random bytes, base64url without padding
	base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// randomToken returns 32 random bytes, base64url-encoded: the state, the
// nonce and the PKCE verifier (43 characters, within RFC 7636's 43 to 128).
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("entraauth: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// codeChallenge is the PKCE S256 challenge for verifier.
func codeChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// usedStates remembers the states of finished sign-ins until they expire,
// so that a replayed callback is refused even if the browser kept its
// login-state cookie. It is process-wide on purpose: it must outlive
// Traefik's reloads, which create new middleware instances.
var usedStates = &stateSet{seen: map[string]int64{}}

const maxUsedStates = 100000

type stateSet struct {
	mu   sync.Mutex
	seen map[string]int64 // state -> unix expiry
}

// claim records state as used and reports whether it was unused.
func (s *stateSet) claim(state string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, used := s.seen[state]; used {
		return false
	}
	if len(s.seen) >= maxUsedStates {
		for k, exp := range s.seen {
			if exp < now.Unix() {
				delete(s.seen, k)
			}
		}
		if len(s.seen) >= maxUsedStates {
			// Under a flood of sign-ins, forget rather than grow: the
			// cookie deletion and Entra's single-use codes still stop
			// replays.
			s.seen = map[string]int64{}
		}
	}
	s.seen[state] = now.Add(loginLifetime).Unix()
	return true
}
