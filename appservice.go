package entraauth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/tfa-plugin/entraauth/session"
)

// App Service compatibility (appServiceHeaders: true): signed-in requests
// also carry the headers Azure App Service's built-in authentication ("Easy
// Auth") sets, in its format, and the guarded hosts answer its /.auth/*
// endpoints, so that an app written for App Service moves behind Traefik
// unchanged. The formats follow Microsoft's "Work with user identities in
// Azure App Service authentication" and what App Service sends:
//
//   - X-MS-CLIENT-PRINCIPAL: standard Base64 of the JSON
//     {"auth_typ":"aad","claims":[{"typ":...,"val":...}],"name_typ":...,"role_typ":...},
//     claim types after App Service's default mapping (oid as
//     http://schemas.microsoft.com/identity/claims/objectidentifier, email
//     as .../emailaddress, roles and groups unmapped, one entry per value);
//   - X-MS-CLIENT-PRINCIPAL-ID (the object ID), -NAME (preferred_username),
//     -IDP (aad), and X-MS-TOKEN-AAD-ACCESS-TOKEN with upstreamAccessToken.
//
// They are identity headers like the others (m.headers), so the session
// cache, the bearer path and the stripping treat them alike. Client-sent
// X-MS-CLIENT-PRINCIPAL* and X-MS-TOKEN-* headers are removed from every
// request, with or without the option (isAppServiceHeader).

// Pseudo-claims of the App Service headers that no token holds: a space,
// which the headers option refuses in a claim name, keeps them apart.
const (
	claimAppServicePrincipal = "appservice principal"
	claimAppServiceIDP       = "appservice idp"
)

const (
	appServiceIDP         = "aad"
	appServiceTokenHeader = "X-Ms-Token-Aad-Access-Token"
	appServiceNameType    = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	appServiceRoleType    = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
)

// appServiceHeaders are the identity headers App Service sets on
// signed-in requests.
var appServiceHeaders = []headerClaim{
	{name: "X-Ms-Client-Principal", claim: claimAppServicePrincipal},
	{name: "X-Ms-Client-Principal-Id", claim: "oid"},
	{name: "X-Ms-Client-Principal-Idp", claim: claimAppServiceIDP},
	{name: "X-Ms-Client-Principal-Name", claim: "preferred_username"},
}

// appServiceClaimTypes is App Service's default claim mapping for the
// claims a session can hold; others keep their names (name,
// preferred_username, roles, groups...).
var appServiceClaimTypes = map[string]string{
	"oid":         "http://schemas.microsoft.com/identity/claims/objectidentifier",
	"tid":         "http://schemas.microsoft.com/identity/claims/tenantid",
	"email":       "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
	"sub":         "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
	"upn":         "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
	"unique_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
	"given_name":  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
	"family_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
	"idp":         "http://schemas.microsoft.com/identity/claims/identityprovider",
}

// The App Service endpoints answered on guarded hosts.
const (
	appServiceMePath     = "/.auth/me"
	appServiceLoginPath  = "/.auth/login/aad"
	appServiceLogoutPath = "/.auth/logout"
)

// isAppServiceHeader reports whether a header name, in any spelling (see
// foldHeaderName), is one App Service's authentication sets: a client may
// never send one. Other X-MS-* headers (x-ms-client-request-id, x-ms-version
// of Azure SDK clients) carry no identity and pass.
func isAppServiceHeader(name string) bool {
	return isFoldedAppServiceHeader(foldHeaderName(name))
}

// isFoldedAppServiceHeader is isAppServiceHeader for a name already
// folded (foldHeaderName).
func isFoldedAppServiceHeader(folded string) bool {
	return strings.HasPrefix(folded, "x-ms-client-principal") || strings.HasPrefix(folded, "x-ms-token-")
}

// validateAppService adds App Service's headers to the identity headers
// with appServiceHeaders, and refuses a headers option that names one.
func validateAppService(c *Config, s *settings) error {
	if !c.AppServiceHeaders {
		return nil
	}
	for _, h := range s.headers {
		if isAppServiceHeader(h.name) {
			return optionError("headers", "%s is set by appServiceHeaders: remove it from headers, or choose another name", h.name)
		}
	}
	s.headers = append(s.headers, appServiceHeaders...)
	s.appService = true
	return nil
}

// principalClaim and clientPrincipal are App Service's JSON: flat tagged
// structs, which Yaegi marshals as Go does.
type principalClaim struct {
	Typ string `json:"typ"`
	Val string `json:"val"`
}

type clientPrincipal struct {
	AuthTyp string           `json:"auth_typ"`
	Claims  []principalClaim `json:"claims"`
	NameTyp string           `json:"name_typ"`
	RoleTyp string           `json:"role_typ"`
}

// authMe is one entry of /.auth/me's answer.
type authMe struct {
	ProviderName string           `json:"provider_name"`
	UserID       string           `json:"user_id"`
	UserClaims   []principalClaim `json:"user_claims"`
}

// appServiceClaims lists s's claims as App Service does: mapped types, one
// entry per value of a list claim.
func appServiceClaims(s *session.Session) []principalClaim {
	var out []principalClaim
	add := func(claim, value string) {
		if value == "" {
			return
		}
		typ := appServiceClaimTypes[claim]
		if typ == "" {
			typ = claim
		}
		out = append(out, principalClaim{Typ: typ, Val: value})
	}
	add("oid", s.OID)
	add("tid", s.TID)
	add("name", s.Name)
	add("preferred_username", s.PreferredUsername)
	add("email", s.Email)
	for _, r := range s.Roles {
		add("roles", r)
	}
	for _, g := range s.Groups {
		add("groups", g)
	}
	extra := make([]string, 0, len(s.Claims))
	for k := range s.Claims {
		extra = append(extra, k)
	}
	sort.Strings(extra)
	for _, k := range extra {
		add(k, s.Claims[k])
	}
	return out
}

// appServicePrincipal is X-MS-CLIENT-PRINCIPAL for s.
func appServicePrincipal(s *session.Session) string {
	b, err := json.Marshal(clientPrincipal{AuthTyp: appServiceIDP, Claims: appServiceClaims(s), NameTyp: appServiceNameType, RoleTyp: appServiceRoleType})
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// appServiceClaim is the value of a pseudo-claim of the App Service
// headers, and reports whether claim is one.
func appServiceClaim(s *session.Session, claim string) (string, bool) {
	switch claim {
	case claimAppServicePrincipal:
		return appServicePrincipal(s), true
	case claimAppServiceIDP:
		return appServiceIDP, true
	}
	return "", false
}

// serveAppService answers App Service's endpoints and reports true, or
// reports false for any other path under /.auth/, which goes on as usual.
// Sign-in and sign-out are the portal's own: their return URLs pass the
// same checks as rd, and signing out stays a same-origin POST (a GET of
// /.auth/logout shows the portal's sign-out button).
func (m *Middleware) serveAppService(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case appServiceMePath:
		m.serveAuthMe(w, r)
	case appServiceLoginPath:
		m.serveSignInTo(w, r, r.URL.Query().Get("post_login_redirect_uri"))
	case appServiceLogoutPath:
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			r2 := r.Clone(r.Context())
			r2.URL.RawQuery = url.Values{"rd": {r.URL.Query().Get("post_logout_redirect_uri")}}.Encode()
			r = r2
		}
		m.serveLogout(w, r)
	default:
		return false
	}
	return true
}

// serveAuthMe answers GET /.auth/me as App Service does, with the claims of
// the signed-in user whom this router lets pass, and no token (App
// Service's access_token, id_token and refresh token never reach the
// browser here); 401 otherwise.
func (m *Middleware) serveAuthMe(w http.ResponseWriter, r *http.Request) {
	s, state := m.currentSession(w, r)
	if state == requestAnswered {
		return
	}
	if s != nil && s.GroupsPending && len(m.rules.groups) > 0 {
		s = nil
	}
	if s != nil && !m.rules.empty() {
		if ok, _ := m.rules.allow(s); !ok {
			s = nil
		}
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if s == nil {
		h.Set("WWW-Authenticate", `Bearer realm="`+m.portal+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]interface{}{"error": "unauthenticated", "error_description": "No signed-in user.", "status": http.StatusUnauthorized})
		return
	}
	b, err := json.Marshal([]authMe{{ProviderName: appServiceIDP, UserID: s.PreferredUsername, UserClaims: appServiceClaims(s)}})
	if err != nil {
		m.writeError(w, r, internalProblem())
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}
