package entraidtest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// refreshTokenLifetime is how long an unused refresh token stays valid: 90
// days, Entra ID's default for web apps; each use makes a new one.
const refreshTokenLifetime = 90 * 24 * time.Hour

// defaultRefreshTokenLength is the length of the refresh tokens the fake
// issues: Entra ID's are opaque strings of about 1.5 to 2 KB.
const defaultRefreshTokenLength = 1800

// refreshGrant is what a refresh token stands for.
type refreshGrant struct {
	username string // the user's PreferredUsername
	clientID string
	scope    string    // the scopes of the sign-in
	issued   time.Time // when this refresh token was minted
	serial   int       // minting order, for revocation
	// mfa is set when the sign-in behind it did multi-factor
	// authentication (an interactive one with a claims challenge).
	mfa bool
}

// userState is what an administrator changed about a user since the
// tenant started.
type userState struct {
	disabled    bool
	mfaRequired bool
	// Refresh tokens minted before validFrom (serial up to revokedUpTo)
	// are revoked.
	validFrom   time.Time
	revokedUpTo int
}

// Refresh names the refresh-token grant for Hits: every token request with
// grant_type=refresh_token, refused ones included (they count as Token too).
const Refresh = "refresh"

// SetRefreshTokenLength sets the length of the refresh tokens issued from
// now on, to test how large sessions grow (Entra ID's are 1.5 to 2 KB,
// sometimes more).
func (t *Tenant) SetRefreshTokenLength(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refreshTokenLength = n
}

// SetUserDisabled blocks or unblocks a user's sign-in, as an administrator
// does in the Entra admin center: refresh tokens of a disabled user are
// refused with AADSTS50057.
func (t *Tenant) SetUserDisabled(username string, disabled bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stateLocked(username)
	s.disabled = disabled
}

// RevokeSessions revokes every refresh token the user has, as a password
// reset or "Revoke sessions" does: they are refused with AADSTS50173.
func (t *Tenant) RevokeSessions(username string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stateLocked(username)
	s.validFrom = t.now()
	s.revokedUpTo = t.refreshSerial
}

// SetMFARequired makes a Conditional Access policy require multi-factor
// authentication of the user from now on: refresh tokens are refused with
// AADSTS50076 (interaction required), interactive sign-ins still work.
func (t *Tenant) SetMFARequired(username string, required bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stateLocked(username).mfaRequired = required
}

// SetAPIPolicy sets the Conditional Access policy of the API registered
// with identifierURI (see Policy).
func (t *Tenant) SetAPIPolicy(identifierURI string, p Policy) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.apis {
		if t.apis[i].IdentifierURI == identifierURI {
			t.apis[i].Policy = p
			return
		}
	}
	panic("entraidtest: no API " + identifierURI)
}

// policyRefusal is Entra ID's answer to a silent token request for api
// that its policy does not let through, or nil.
func policyRefusal(api *API, g refreshGrant) *stsError {
	challenge := `{"access_token":{"capolids":{"essential":true,"values":["` + policyID + `"]}}}`
	switch {
	case api == nil:
		return nil
	case api.Policy == PolicyMFA && !g.mfa:
		e := stsErr(http.StatusBadRequest, "interaction_required", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '"+api.IdentifierURI+"'.")
		e.claims = challenge
		return e
	case api.Policy == PolicyCompliantDevice:
		e := stsErr(http.StatusBadRequest, "interaction_required", 53000, "Device is not in required device state: compliant. Conditional Access policy requires a compliant device, and the device is not compliant. The user must enroll their device with an approved MDM provider like Intune.")
		e.claims = challenge
		return e
	}
	return nil
}

// policyID names the fake's Conditional Access policy in challenges.
const policyID = "4b6e8f1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b"

// UpdateUser changes a user's claims (name, roles, groups...): tokens
// issued from now on carry the change.
func (t *Tenant) UpdateUser(username string, change func(u *User)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.Users {
		if strings.EqualFold(t.Users[i].PreferredUsername, username) {
			change(&t.Users[i])
			return
		}
	}
	panic("entraidtest: no user " + username)
}

// AddAPI registers an API (IdentifierURI, Scopes, TokenVersion...) whose
// access tokens the refresh-token grant issues, and returns it with its
// client ID set.
func (t *Tenant) AddAPI(api API) API {
	if api.ClientID == "" {
		api.ClientID = newGUID()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.apis = append(t.apis, api)
	return api
}

// Consent grants the app's users consent to an API that requires it.
func (t *Tenant) Consent(identifierURI string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.apis {
		if t.apis[i].IdentifierURI == identifierURI {
			t.apis[i].ConsentRequired = false
		}
	}
}

func (t *Tenant) stateLocked(username string) *userState {
	key := strings.ToLower(username)
	s := t.states[key]
	if s == nil {
		s = &userState{}
		t.states[key] = s
	}
	return s
}

// newRefreshToken mints and remembers a refresh token for a grant.
func (t *Tenant) newRefreshToken(g refreshGrant) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.refreshTokenLength
	if n <= 0 {
		n = defaultRefreshTokenLength
	}
	// The shape of Entra ID's: a version, a dot, then opaque base64url.
	rt := "1.A" + randomString(n-3)
	g.issued = t.now()
	t.refreshSerial++
	g.serial = t.refreshSerial
	t.refreshTokens[rt] = &g
	return rt
}

// refresh implements grant_type=refresh_token the way Entra ID does: the
// grant's user and app, the user's state (disabled, revoked, MFA now
// required), the token's age, one resource per request, consent; then a new
// refresh token (the old one stays valid, as Entra ID's do until they
// expire), an access token for the resource and, with openid, a new ID
// token with the user's current claims and no nonce.
func (t *Tenant) refresh(w http.ResponseWriter, r *http.Request, form url.Values, clientID string) {
	t.mu.Lock()
	t.hits[Refresh]++
	t.mu.Unlock()
	rt := form.Get("refresh_token")
	if rt == "" {
		t.writeError(w, r, stsErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'refresh_token'."))
		return
	}
	now := t.now()
	t.mu.Lock()
	g := t.refreshTokens[rt]
	var grant refreshGrant
	var state userState
	if g != nil {
		grant = *g
		state = *t.stateLocked(g.username)
	}
	hook := t.hook
	t.mu.Unlock()
	if g == nil {
		t.writeError(w, r, stsErr(http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."))
		return
	}
	u, ok := t.user(grant.username)
	var e *stsError
	switch {
	case grant.clientID != clientID:
		e = stsErr(http.StatusBadRequest, "invalid_grant", 70000, "The provided value for the 'refresh_token' is not valid. The token was issued to a different client.")
	case !ok || state.disabled:
		e = stsErr(http.StatusBadRequest, "invalid_grant", 50057, "The user account is disabled. The account has been disabled by an administrator.")
	case grant.serial <= state.revokedUpTo:
		e = stsErr(http.StatusBadRequest, "invalid_grant", 50173, fmt.Sprintf("The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.", grant.issued.UTC().Format(time.RFC3339), state.validFrom.UTC().Format(time.RFC3339)))
	case !now.Before(grant.issued.Add(refreshTokenLifetime)):
		e = stsErr(http.StatusBadRequest, "invalid_grant", 700082, fmt.Sprintf("The refresh token has expired due to inactivity. The token was issued on %s and was inactive for 90.00:00:00.", grant.issued.UTC().Format(time.RFC3339)))
	case state.mfaRequired:
		e = stsErr(http.StatusBadRequest, "invalid_grant", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access this application.")
	}
	if e != nil {
		t.writeError(w, r, e)
		return
	}
	scope := form.Get("scope")
	if scope == "" {
		scope = grant.scope
	}
	resource, api, e := t.resourceOf(scope, clientID)
	if e == nil {
		e = policyRefusal(api, grant)
	}
	if e != nil {
		t.writeError(w, r, e)
		return
	}

	resp := map[string]interface{}{
		"token_type":     "Bearer",
		"expires_in":     int(tokenLifetime.Seconds()) - 1,
		"ext_expires_in": int(tokenLifetime.Seconds()) - 1,
		"refresh_token":  t.newRefreshToken(refreshGrant{username: grant.username, clientID: clientID, scope: grant.scope, mfa: grant.mfa}),
	}
	if api != nil {
		scp := scopesFor(scope, resource, api)
		resp["scope"] = resourceScopes(resource, scp)
		resp["access_token"] = t.SignToken(t.apiAccessTokenClaims(*api, u, clientID, scp))
	} else {
		tok, err := t.graphAccessToken(u, scope)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp["scope"] = grantedScope(scope)
		resp["access_token"] = tok
	}
	if hasScope(scope, "openid") {
		claims := t.idTokenClaims(u, clientID, "")
		if hook != nil {
			hook(claims)
		}
		resp["id_token"] = t.SignToken(claims)
	}
	writeJSON(w, http.StatusOK, resp)
}

// resourceOf finds the one resource scope asks for: nil for Microsoft Graph
// (its scopes, or only OpenID ones), or a registered API. More than one
// resource, an unknown one, or missing consent is the error Entra ID gives.
func (t *Tenant) resourceOf(scope, clientID string) (string, *API, *stsError) {
	resource := ""
	for _, s := range strings.Fields(scope) {
		var r string
		switch {
		case s == "openid" || s == "profile" || s == "email" || s == "offline_access":
			continue
		case !strings.Contains(s, "/") || strings.HasPrefix(s, "https://graph.microsoft.com/"):
			r = "https://graph.microsoft.com"
		default:
			r = s[:strings.LastIndex(s, "/")]
		}
		if resource != "" && r != resource {
			return "", nil, stsErr(http.StatusBadRequest, "invalid_scope", 28000, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope "+scope+" is not valid.")
		}
		resource = r
	}
	if resource == "" || resource == "https://graph.microsoft.com" {
		return resource, nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.apis {
		api := t.apis[i]
		if api.IdentifierURI == resource || api.ClientID == resource {
			if api.ConsentRequired {
				return "", nil, stsErr(http.StatusBadRequest, "invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '"+clientID+"' named 'entraauth test app'. Send an interactive authorization request for this user and resource.")
			}
			if resource == api.ClientID {
				// Asked for by its client ID: v1.0 tokens carry that.
				api.IdentifierURI = ""
			}
			return resource, &api, nil
		}
	}
	return "", nil, stsErr(http.StatusBadRequest, "invalid_resource", 500011, "The resource principal named "+resource+" was not found in the tenant named "+t.Domain+". This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.")
}

// scopesFor lists the API's permissions a scope string grants: .default
// means all of them.
func scopesFor(scope, resource string, api *API) []string {
	var out []string
	for _, s := range strings.Fields(scope) {
		if !strings.HasPrefix(s, resource+"/") {
			continue
		}
		name := strings.TrimPrefix(s, resource+"/")
		if name == ".default" {
			return append([]string(nil), api.Scopes...)
		}
		out = append(out, name)
	}
	return out
}

func resourceScopes(resource string, scp []string) string {
	out := make([]string, len(scp))
	for i, s := range scp {
		out[i] = resource + "/" + s
	}
	return strings.Join(out, " ")
}

// apiAccessTokenClaims are the claims of a delegated access token of user u
// for api, requested by the app clientID, in the API's token version.
func (t *Tenant) apiAccessTokenClaims(api API, u User, clientID string, scp []string) map[string]interface{} {
	c := t.APIAccessTokenClaims(u, api, strings.Join(scp, " "))
	if api.v2() {
		c["azp"] = clientID
	} else {
		c["appid"] = clientID
	}
	return c
}
