package entraidtest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// clientAssertionType is the only client_assertion_type Entra ID accepts.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// tokenLifetime is the lifetime of issued tokens, as Entra ID's default.
const tokenLifetime = time.Hour

// graphAppID is Microsoft Graph's application ID, the audience of the
// access tokens issued with OpenID scopes.
const graphAppID = "00000003-0000-0000-c000-000000000000"

// serveToken implements /oauth2/v2.0/token.
func (t *Tenant) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		t.writeError(w, r, stsErr(http.StatusBadRequest, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests. Received a "+r.Method+" request."))
		return
	}
	if err := r.ParseForm(); err != nil {
		t.writeError(w, r, stsErr(http.StatusBadRequest, "invalid_request", 90023, "The request body is not a valid form."))
		return
	}
	form := r.PostForm
	clientID, err := t.authenticate(r, form)
	if err != nil {
		t.writeError(w, r, err)
		return
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		t.redeemCode(w, r, form, clientID)
	case "client_credentials":
		t.clientCredentials(w, r, form, clientID)
	case "refresh_token":
		t.refresh(w, r, form, clientID)
	case "":
		t.writeError(w, r, stsErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."))
	default:
		t.writeError(w, r, stsErr(http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+form.Get("grant_type")+"'."))
	}
}

// authenticate identifies and authenticates the client: a client secret in
// the form (client_secret_post) or in HTTP Basic (client_secret_basic), or
// a client assertion. The registered app may use any of them; another
// client ID is accepted only with an assertion in the client-credentials
// grant, as the workload identity of the first hop of workload identity
// federation.
func (t *Tenant) authenticate(r *http.Request, form url.Values) (string, *stsError) {
	clientID := form.Get("client_id")
	secret := form.Get("client_secret")
	if id, s, ok := r.BasicAuth(); ok {
		// RFC 6749 2.3.1: both are form-encoded before Basic encoding.
		id, _ = url.QueryUnescape(id)
		s, _ = url.QueryUnescape(s)
		if clientID != "" && clientID != id {
			return "", stsErr(http.StatusBadRequest, "invalid_request", 90023, "The client_id in the request body does not match the one in the Authorization header.")
		}
		// Separate statements: Yaegi v0.16.1 mis-executes some parallel
		// assignments.
		clientID = id
		secret = s
	}
	if clientID == "" {
		return "", stsErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	assertion := form.Get("client_assertion")
	workload := form.Get("grant_type") == "client_credentials" && assertion != ""
	appSecret, registered := t.appSecret(clientID)
	if !registered && !workload {
		return "", appNotFound(clientID, t.Domain)
	}
	switch {
	case secret != "" && assertion != "":
		return "", stsErr(http.StatusBadRequest, "invalid_request", 90023, "Only one of 'client_secret' and 'client_assertion' may be presented.")
	case secret != "":
		t.mu.Lock()
		expired := t.secretExpired
		t.mu.Unlock()
		valid := registered && subtle.ConstantTimeCompare([]byte(secret), []byte(appSecret)) == 1
		if clientID == t.ClientID {
			// The tenant's own app may have several secrets (rotation).
			valid = t.clientSecretValid(secret)
		}
		if !valid {
			return "", stsErr(http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+clientID+"'.")
		}
		if expired {
			return "", stsErr(http.StatusUnauthorized, "invalid_client", 7000222, "The provided client secret keys for app '"+clientID+"' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.")
		}
		return clientID, nil
	case assertion != "":
		if form.Get("client_assertion_type") != clientAssertionType {
			return "", stsErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_assertion_type' with the value '"+clientAssertionType+"'.")
		}
		if err := t.checkAssertion(assertion, clientID, tokenEndpointURL(r)); err != nil {
			return "", err
		}
		return clientID, nil
	}
	return "", stsErr(http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
}

// checkAssertion accepts a client assertion of clientID posted to
// endpoint: one the app signed with its certificate (iss and sub the
// client ID: certificate.go), or one it matches against federated identity
// credentials: issuer, signature, lifetime, audience
// api://AzureADTokenExchange, then issuer and subject together. Tokens
// this tenant minted verify with its own keys; their subject must still be
// registered with TrustFederatedIssuer(t.Issuer(), nil, subject).
func (t *Tenant) checkAssertion(raw, clientID, endpoint string) *stsError {
	tok, err := jwt.Parse(raw)
	if err != nil {
		return stsErr(http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed.")
	}
	if isCertificateAssertion(tok, clientID) {
		return t.checkCertificateAssertion(tok, clientID, endpoint)
	}
	iss, sub, aud := tok.String("iss"), tok.String("sub"), tok.Strings("aud")
	own := iss == t.Issuer()

	t.mu.Lock()
	keys := t.issuerKeys[iss]
	subjectMatch, issuerKnown := false, false
	for _, fc := range t.federated {
		if fc.issuer == iss {
			issuerKnown = true
			subjectMatch = subjectMatch || fc.subject == sub
		}
	}
	t.mu.Unlock()
	if own {
		// Tokens this tenant minted (managed identities, the workload
		// identity's first hop) verify with its keys, but like Entra ID the
		// app still needs a federated credential naming their subject.
		keys = t.publicKeys()
		issuerKnown = true
	}

	if !issuerKnown {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700211, "No matching federated identity record found for presented assertion issuer '"+iss+"'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")
	}
	if err := tok.VerifyRS256(keys[tok.Header.Kid]); err != nil {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation.")
	}
	now := t.now()
	exp, ok := tok.Time("exp")
	nbf, hasNbf := tok.Time("nbf")
	if !ok || !now.Before(exp) || hasNbf && now.Before(nbf.Add(-5*time.Minute)) {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.", now.UTC().Format(time.RFC3339), nbf.UTC().Format(time.RFC3339), exp.UTC().Format(time.RFC3339)))
	}
	if !containsString(aud, TokenExchangeAudience) {
		return stsErr(http.StatusUnauthorized, "invalid_client", 700212, "No matching federated identity record found for presented assertion audience '"+strings.Join(aud, ",")+"'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation")
	}
	if !subjectMatch {
		return stsErr(http.StatusBadRequest, "invalid_request", 70021, "No matching federated identity record found for presented assertion. Assertion Issuer: '"+iss+"'. Assertion Subject: '"+sub+"'. Assertion Audience: '"+strings.Join(aud, ",")+"'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation")
	}
	return nil
}

// tokenEndpointURL is the URL r was posted to, as the tenant's own URL
// spells it.
func tokenEndpointURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.Path
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// redeemCode implements the authorization code grant with PKCE.
func (t *Tenant) redeemCode(w http.ResponseWriter, r *http.Request, form url.Values, clientID string) {
	code := form.Get("code")
	if code == "" {
		t.writeError(w, r, stsErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'code'."))
		return
	}
	redirectURI := form.Get("redirect_uri")
	if !t.redirectAllowed(redirectURI) {
		t.writeError(w, r, redirectMismatch(redirectURI, clientID))
		return
	}
	now := t.now()
	t.mu.Lock()
	ac := t.codes[code]
	var e *stsError
	switch {
	case ac == nil:
		e = stsErr(http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
	case ac.redeemed:
		e = stsErr(http.StatusBadRequest, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
	case !now.Before(ac.expires):
		e = stsErr(http.StatusBadRequest, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
	case ac.clientID != clientID:
		e = stsErr(http.StatusBadRequest, "invalid_grant", 70000, "The provided authorization code was issued to a different client.")
	case redirectURI != ac.redirectURI:
		e = stsErr(http.StatusBadRequest, "invalid_grant", 500112, "The reply address '"+redirectURI+"' does not match the reply address '"+ac.redirectURI+"' provided when requesting Authorization code.")
	case !pkceMatches(form.Get("code_verifier"), ac.codeChallenge):
		e = stsErr(http.StatusBadRequest, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
	default:
		ac.redeemed = true
	}
	hook := t.hook
	idTokenHook := t.idTokenHook
	t.mu.Unlock()
	if e != nil {
		t.writeError(w, r, e)
		return
	}

	claims := t.idTokenClaims(ac.user, ac.clientID, ac.nonce)
	if hook != nil {
		hook(claims)
	}
	var idToken string
	if idTokenHook != nil {
		idToken = idTokenHook(claims)
	} else {
		idToken = t.SignToken(claims)
	}
	accessToken, err := t.graphAccessToken(ac.user, ac.scope)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp := map[string]interface{}{
		"token_type":     "Bearer",
		"scope":          grantedScope(ac.scope),
		"expires_in":     int(tokenLifetime.Seconds()) - 1,
		"ext_expires_in": int(tokenLifetime.Seconds()) - 1,
		"access_token":   accessToken,
		"id_token":       idToken,
	}
	if hasScope(ac.scope, "offline_access") {
		resp["refresh_token"] = t.newRefreshToken(refreshGrant{username: ac.user.PreferredUsername, clientID: clientID, scope: ac.scope, mfa: ac.mfa})
	}
	writeJSON(w, http.StatusOK, resp)
}

// pkceMatches checks BASE64URL(SHA256(verifier)) == challenge (S256).
func pkceMatches(verifier, challenge string) bool {
	if verifier == "" {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// grantedScope is what Entra ID reports as granted for OpenID scopes: the
// OpenID ones and Graph's User.Read, without offline_access.
func grantedScope(requested string) string {
	var out []string
	for _, s := range []string{"email", "openid", "profile"} {
		if hasScope(requested, s) {
			out = append(out, s)
		}
	}
	return strings.Join(append(out, "https://graph.microsoft.com/User.Read"), " ")
}

// graphAccessToken mints an access token for Microsoft Graph. Like Graph's
// real tokens it carries a "nonce" header, which makes it unverifiable by
// anyone but Graph: clients must treat it as opaque.
func (t *Tenant) graphAccessToken(u User, scope string) (string, error) {
	k := t.currentKey()
	now := t.now()
	return jwt.SignWithHeader(k.key, map[string]interface{}{
		"typ":   "JWT",
		"nonce": randomString(43),
		"alg":   "RS256",
		"x5t":   k.kid,
		"kid":   k.kid,
	}, map[string]interface{}{
		"aud":             graphAppID,
		"iss":             t.V1Issuer(),
		"iat":             now.Unix(),
		"nbf":             now.Unix(),
		"exp":             now.Add(tokenLifetime).Unix(),
		"app_displayname": "entraauth test app",
		"appid":           t.ClientID,
		"idtyp":           "user",
		"name":            u.Name,
		"oid":             u.OID,
		"scp":             strings.Replace(grantedScope(scope), "https://graph.microsoft.com/", "", 1),
		"sub":             pairwiseSubject(u.OID, graphAppID),
		"tid":             t.TenantID,
		"unique_name":     u.PreferredUsername,
		"upn":             u.PreferredUsername,
		"uti":             randomString(22),
		"ver":             "1.0",
	})
}

// clientCredentials implements the client-credentials grant for the token
// exchange audience only: the first hop of workload identity federation,
// whose access token is the assertion for the second.
func (t *Tenant) clientCredentials(w http.ResponseWriter, r *http.Request, form url.Values, clientID string) {
	if scope := form.Get("scope"); scope != TokenExchangeAudience+"/.default" {
		t.writeError(w, r, stsErr(http.StatusBadRequest, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The scope '"+scope+"' is not valid: this tenant issues client-credentials tokens only for "+TokenExchangeAudience+"/.default."))
		return
	}
	now := t.now()
	token := t.SignToken(map[string]interface{}{
		"aud":    TokenExchangeAudience,
		"iss":    t.Issuer(),
		"iat":    now.Unix(),
		"nbf":    now.Unix(),
		"exp":    now.Add(tokenLifetime).Unix(),
		"aio":    randomString(64),
		"azp":    clientID,
		"azpacr": "2",
		"idtyp":  "app",
		"oid":    clientID,
		"rh":     "0.A" + randomString(60) + ".",
		"sub":    clientID,
		"tid":    t.TenantID,
		"uti":    randomString(22),
		"ver":    "2.0",
	})
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"token_type":     "Bearer",
		"expires_in":     int(tokenLifetime.Seconds()) - 1,
		"ext_expires_in": int(tokenLifetime.Seconds()) - 1,
		"access_token":   token,
	})
}
