package entraid

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Error is an error answer from Entra ID's token endpoint, decoded from its
// JSON body. Show AADSTS, TraceID and CorrelationID to whoever has to fix
// it: Microsoft support and the sign-in logs find a request by them.
type Error struct {
	// Endpoint names who answered, for Error: "" for the token endpoint,
	// or e.g. "Microsoft Graph".
	Endpoint      string
	StatusCode    int    // HTTP status
	Code          string // OAuth "error", e.g. "invalid_grant"
	Description   string // "error_description", may span several lines
	ErrorCodes    []int  // "error_codes", e.g. [54005]
	TraceID       string
	CorrelationID string
	Timestamp     string
	// Claims is a claims challenge (JSON) that comes with a refusal an
	// interactive sign-in can resolve (Conditional Access): pass it back in
	// AuthRequest.Claims.
	Claims string
}

// entraError is the JSON shape Entra ID answers errors with.
type entraError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	Timestamp     string `json:"timestamp"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	Claims        string `json:"claims"`
}

// parseError decodes an Entra ID error body; nil when it is not one.
func parseError(status int, body []byte) *Error {
	var e entraError
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		return nil
	}
	return &Error{
		StatusCode:    status,
		Code:          e.Error,
		Description:   e.Description,
		ErrorCodes:    e.ErrorCodes,
		TraceID:       e.TraceID,
		CorrelationID: e.CorrelationID,
		Timestamp:     e.Timestamp,
		Claims:        e.Claims,
	}
}

// Error returns "entraid: token endpoint: <error>: <first line of the
// description>" (or the Endpoint that answered in place of "token
// endpoint"). The other lines repeat the trace and correlation IDs.
func (e *Error) Error() string {
	endpoint := e.Endpoint
	if endpoint == "" {
		endpoint = "token endpoint"
	}
	msg := "entraid: " + endpoint + ": " + e.Code
	if d := firstLine(e.Description); d != "" {
		msg += ": " + d
	} else {
		msg += " (HTTP " + strconv.Itoa(e.StatusCode) + ")"
	}
	return msg
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// AADSTS returns the most specific AADSTS code, e.g. "AADSTS54005", or ""
// when the answer carries none. Older answers list a generic code first
// ([70002, 54005]), so the last one is the specific one.
func (e *Error) AADSTS() string {
	if n := len(e.ErrorCodes); n > 0 {
		return "AADSTS" + strconv.Itoa(e.ErrorCodes[n-1])
	}
	d := e.Description
	if strings.HasPrefix(d, "AADSTS") {
		end := len("AADSTS")
		for end < len(d) && d[end] >= '0' && d[end] <= '9' {
			end++
		}
		if end > len("AADSTS") {
			return d[:end]
		}
	}
	return ""
}

// hints gives, for AADSTS codes an operator of this plugin can act on, what
// to do. Keyed by the number.
var hints = map[int]string{
	7000215: "The client secret is wrong. Copy the secret's Value (not its Secret ID) from the app registration's Certificates & secrets page into clientSecret or clientSecretFile.",
	7000222: "The client secret has expired. Create a new one under Certificates & secrets in the app registration and update clientSecret, or switch to a federated credential (clientAssertion), which does not expire.",
	7000218: "The token request carried no client credential. Configure clientSecret, clientSecretFile or clientAssertion.",
	700016:  "Entra ID does not know this client ID in this tenant. Check clientID (the Application (client) ID, not the Object ID) and tenantID; for a multi-tenant app, an administrator of the user's tenant must consent to it first.",
	50011:   "The redirect URI is not registered on the app. In the app registration, under Authentication, add a Web redirect URI https://<host>/portals/<portal>/oauth2/callback exactly as the plugin sends it (scheme, host and path; with authHost, that host).",
	54005:   "The authorization code was already redeemed, usually because the callback URL was loaded twice (reload, back button, double submit). Sign in again.",
	70008:   "The authorization code expired (codes live about 10 minutes). Sign in again; if it keeps happening, check this server's clock.",
	501481:  "The PKCE code_verifier does not match the code_challenge of this login: the login-state cookie was lost or belongs to another login (blocked cookies, several tabs, another host). Sign in again.",
	70021:   "No federated identity credential on the app matches the client assertion. The credential's Issuer, Subject and Audience must equal the assertion's iss, sub and aud (api://AzureADTokenExchange) character for character: matching is case-sensitive and a trailing slash counts.",
	700213:  "No federated identity credential on the app matches the assertion's subject. Set the credential's Subject to the assertion's sub exactly (for Kubernetes: system:serviceaccount:<namespace>:<serviceaccount>); matching is case-sensitive.",
	700211:  "No federated identity credential on the app matches the assertion's issuer. Set the credential's Issuer to the assertion's iss exactly, trailing slash included (for Kubernetes: the cluster's OIDC issuer URL).",
	700212:  "No federated identity credential on the app matches the assertion's audience. The assertion's aud must be api://AzureADTokenExchange; for Kubernetes, mount a projected service account token with audience api://AzureADTokenExchange instead of the default token, whose audience is the API server.",
	700024:  "The client assertion is expired or not yet valid. Check this server's clock and that the assertion source hands out fresh tokens.",
	700027:  "The client assertion's signature or key was refused. With clientCertificateFile: upload the certificate in the file to the app registration (Certificates & secrets; compare the thumbprints) and keep the key made with it in the file. With clientAssertion: check that the federated credential's Issuer publishes the key the token was signed with.",
	90002:   "The tenant was not found. Check tenantID, and authorityHost for sovereign clouds.",
	65001:   "The app lacks consent for the requested scopes. Have an administrator grant consent in the app registration's API permissions.",
	50105:   "The user is not assigned to the app, and the app requires assignment. Assign the user or one of their groups in Enterprise applications > Users and groups.",
	53003:   "A Conditional Access policy blocked the sign-in. Check the sign-in logs with the correlation ID.",
}

// Hint returns advice for a known AADSTS code, or "" for others. It looks
// at every code in ErrorCodes, most specific first.
func (e *Error) Hint() string {
	codes := e.ErrorCodes
	if len(codes) == 0 {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.AADSTS(), "AADSTS")); err == nil {
			codes = []int{n}
		}
	}
	for i := len(codes) - 1; i >= 0; i-- {
		if h, ok := hints[codes[i]]; ok {
			return h
		}
	}
	return ""
}

// errorSummary describes an unexpected response body for an
// ErrUnavailable error: Entra ID's error fields when it is one, else the
// start of the body without control characters.
func errorSummary(body []byte) string {
	if e := parseError(0, body); e != nil {
		s := ": " + e.Code
		if d := firstLine(e.Description); d != "" {
			s += ": " + d
		}
		if e.TraceID != "" {
			s += " (trace ID " + e.TraceID + ")"
		}
		return s
	}
	text := strings.TrimSpace(string(body))
	if text == "" {
		return ""
	}
	if len(text) > 120 {
		text = text[:120] + "..."
	}
	return fmt.Sprintf(": body %q", text)
}
