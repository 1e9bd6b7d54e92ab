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
}

// startLogin sends the browser to Entra ID with a fresh state, nonce and
// PKCE verifier, remembered in a sealed cookie only the callback receives;
// the user returns to the URL requested.
func (m *Middleware) startLogin(w http.ResponseWriter, r *http.Request) {
	m.startLoginTo(w, r, requestScheme(r)+"://"+r.Host+r.URL.RequestURI())
}

// startLoginTo is startLogin returning to returnURL, an absolute URL the
// return checks allow.
func (m *Middleware) startLoginTo(w http.ResponseWriter, r *http.Request, returnURL string) {
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

	authURL, err := m.client.AuthCodeURL(r.Context(), entraid.AuthRequest{
		RedirectURI:   st.RedirectURI,
		State:         st.State,
		Nonce:         st.Nonce,
		CodeChallenge: codeChallenge(st.Verifier),
		Prompt:        m.prompt,
		DomainHint:    m.domainHint,
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
	w.Header().Set("Cache-Control", "no-store")
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
		m.writeError(w, r, callbackErrorProblem(e, q.Get("error_description"), st))
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
	groups, pending, p := m.resolveGroups(r.Context(), claims, token.AccessToken)
	if p != nil {
		p.Retry = st.ReturnURL
		m.writeError(w, r, p)
		return
	}
	now := m.now()
	s := m.sessionFrom(claims, groups, pending, now)
	s.AuthTime = now.Unix()
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
	target, ok := m.safeReturnURL(st.ReturnURL, r)
	if !ok {
		target = "/"
	}
	w.Header().Set("Cache-Control", "no-store")
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

// resolveGroups returns the groups to keep in the session. A user in more
// groups than a token holds (a groups overage) has none in the token: when
// this middleware has group rules it asks Microsoft Graph, with the access
// token of this sign-in, and keeps the groups some router's rules name;
// otherwise the groups stay pending, for a middleware that needs them to
// resolve with a sign-in of its own. A Graph failure is an error page, never
// a silent "no groups".
func (m *Middleware) resolveGroups(ctx context.Context, claims *entraid.Claims, accessToken string) ([]string, bool, *problem) {
	if !claims.GroupsOverage {
		return claims.Groups, false, nil
	}
	if len(m.rules.groups) == 0 {
		return nil, true, nil
	}
	all, err := m.client.GroupMemberships(ctx, accessToken)
	if err != nil {
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
		return nil, false, p
	}
	return neededGroups(m.sessionKey, all), false, nil
}

// clearHostOnlySession deletes a host-only session cookie left from before
// session.cookieDomain was set: the browser would send it beside the new
// domain cookie, a pair that opens as neither, and sign-in would loop. (On
// the cookie domain's own host the two are the same cookie.)
func (m *Middleware) clearHostOnlySession(w http.ResponseWriter, r *http.Request) {
	if m.cookieDomain == "" || strings.EqualFold(hostOnly(r.Host), m.cookieDomain) {
		return
	}
	if _, err := r.Cookie(m.cookie.Name); err != nil {
		return
	}
	stale := m.cookie
	stale.Domain = ""
	session.ClearChunked(w.Header(), r, stale)
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
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		return nil, false
	}
	if !usedStates.claim(state, m.now()) {
		return nil, false
	}
	return &st, true
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
