package entraidtest

import "time"

// API is the app registration of a web API, as far as it shapes the access
// tokens Entra ID issues for it.
type API struct {
	// ClientID is the API's application (client) ID, a GUID: the aud of
	// every v2.0 token for it.
	ClientID string
	// IdentifierURI is its application ID URI, e.g. api://contoso-items.
	// A v1.0 token carries it as aud when the client asked for the API by
	// it (scope api://contoso-items/Items.Read); empty means the client
	// named the API by its client ID, which v1.0 tokens then carry instead.
	IdentifierURI string
	// TokenVersion is the manifest's accessTokenAcceptedVersion
	// (api.requestedAccessTokenVersion in newer manifests): 2 for v2.0
	// tokens; 0 (unset, the default of an API registered for one
	// organization) or 1 for v1.0 tokens.
	TokenVersion int
	// Scopes are the delegated permissions it exposes (e.g. Items.Read),
	// which the refresh-token grant issues: .default grants them all.
	Scopes []string
	// ConsentRequired makes the grant fail with AADSTS65001 until Consent.
	ConsentRequired bool
	// Policy is a Conditional Access policy for the API alone (see
	// SetAPIPolicy).
	Policy Policy
}

// Policy is a Conditional Access policy that applies to one API: the
// sign-in app's own tokens are not affected, as in Entra ID, where policies
// target resources.
type Policy int

const (
	// PolicyNone: tokens for the API are issued silently.
	PolicyNone Policy = iota
	// PolicyMFA requires multi-factor authentication for the API: a
	// refresh token from a sign-in that did not do it is refused with
	// interaction_required (AADSTS50076) and a claims challenge; an
	// interactive sign-in that passes the challenge back (the claims
	// parameter) does MFA, and its refresh tokens get the API's tokens.
	PolicyMFA
	// PolicyCompliantDevice requires a compliant device, which no sign-in
	// here has: refused with interaction_required (AADSTS53000) and a
	// claims challenge, whatever the user does.
	PolicyCompliantDevice
)

// v2 reports whether the API gets v2.0 access tokens.
func (a API) v2() bool { return a.TokenVersion == 2 }

// audience is the aud Entra ID puts in the API's access tokens: always the
// client ID in v2.0 tokens, what the client asked for in v1.0 ones.
func (a API) audience() string {
	if a.v2() || a.IdentifierURI == "" {
		return a.ClientID
	}
	return a.IdentifierURI
}

// V1Issuer returns the issuer of the tenant's v1.0 access tokens,
// https://sts.windows.net/{tid}/, which Entra ID uses whatever the
// authority host the client signed in on (public cloud).
func (t *Tenant) V1Issuer() string {
	return "https://sts.windows.net/" + t.TenantID + "/"
}

// APIAccessTokenClaims returns the claims of an access token that a client
// application got for api on behalf of user u with the delegated scopes scp
// (space separated): what an API protected by the plugin receives as a
// bearer token, shaped as Entra ID shapes it for the API's token version.
// Sign them with SignToken, after mutating them if need be.
//
// A v2.0 token has aud = the API's client ID, iss = Issuer(), azp and
// preferred_username; a v1.0 token has aud = the URI or client ID the
// client asked for, iss = V1Issuer(), appid, upn and unique_name. Neither
// carries idtyp: it is an optional claim the API registration adds.
func (t *Tenant) APIAccessTokenClaims(u User, api API, scp string) map[string]interface{} {
	c := t.accessTokenClaims(api, newGUID())
	c["oid"] = u.OID
	c["sub"] = pairwiseSubject(u.OID, api.ClientID)
	c["name"] = u.Name
	c["scp"] = scp
	if api.v2() {
		c["preferred_username"] = u.PreferredUsername
	} else {
		c["upn"] = u.PreferredUsername
		c["unique_name"] = u.PreferredUsername
		c["acr"] = "1"
		c["amr"] = []string{"pwd"}
		c["ipaddr"] = "203.0.113.7"
	}
	if len(u.Roles) > 0 {
		c["roles"] = append([]string(nil), u.Roles...)
	}
	if len(u.Groups) > 0 && len(u.Groups) <= 200 {
		c["groups"] = append([]string(nil), u.Groups...)
	}
	return c
}

// AppAccessTokenClaims returns the claims of an access token that the
// application appID got for itself (client credentials) for api, with the
// app roles it was granted: no user, no scp, and oid and sub the object ID
// of the application's service principal.
func (t *Tenant) AppAccessTokenClaims(appID string, api API, roles []string) map[string]interface{} {
	c := t.accessTokenClaims(api, appID)
	oid := newGUID()
	c["oid"] = oid
	c["sub"] = oid
	if !api.v2() {
		c["idp"] = t.V1Issuer()
	}
	if len(roles) > 0 {
		c["roles"] = append([]string(nil), roles...)
	}
	return c
}

// accessTokenClaims are the claims every access token for api has, issued
// to the client application clientApp.
func (t *Tenant) accessTokenClaims(api API, clientApp string) map[string]interface{} {
	now := t.now()
	c := map[string]interface{}{
		"aud": api.audience(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"aio": randomString(64),
		"tid": t.TenantID,
		"uti": randomString(22),
		"rh":  "0.A" + randomString(60) + ".",
	}
	if api.v2() {
		c["iss"] = t.Issuer()
		c["azp"] = clientApp
		c["azpacr"] = "1"
		c["ver"] = "2.0"
	} else {
		c["iss"] = t.V1Issuer()
		c["appid"] = clientApp
		c["appidacr"] = "1"
		c["ver"] = "1.0"
	}
	return c
}
