package entraid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// AuthRequest holds the per-login values of an authorization request.
type AuthRequest struct {
	RedirectURI   string // required: registered on the app, exactly
	State         string // required
	Nonce         string // required: VerifyIDToken compares it
	CodeChallenge string // required: BASE64URL(SHA256(code_verifier))
	Prompt        string // optional: login, none, consent, select_account
	LoginHint     string // optional
	DomainHint    string // optional
	// ExtraScope asks, besides the sign-in's own scopes, for one API's
	// scope: a step-up for an API whose Conditional Access policy needs an
	// interactive sign-in.
	ExtraScope string
	// Claims passes a claims challenge that Entra ID returned (JSON) back
	// to it, so that it runs the policy behind it.
	Claims string
}

// AuthCodeURL returns the URL that starts a sign-in: the tenant's
// authorization endpoint with response_type=code, response_mode=query and
// PKCE S256. It needs the discovery document.
func (c *Client) AuthCodeURL(ctx context.Context, req AuthRequest) (string, error) {
	for _, f := range []struct{ name, value string }{
		{"RedirectURI", req.RedirectURI},
		{"State", req.State},
		{"Nonce", req.Nonce},
		{"CodeChallenge", req.CodeChallenge},
	} {
		if f.value == "" {
			return "", fmt.Errorf("entraid: auth request: %s is required", f.name)
		}
	}
	md, _, err := c.metadata(ctx)
	if err != nil {
		return "", err
	}
	q := url.Values{
		"client_id":             {c.clientID},
		"response_type":         {"code"},
		"redirect_uri":          {req.RedirectURI},
		"response_mode":         {"query"},
		"scope":                 {c.scope},
		"state":                 {req.State},
		"nonce":                 {req.Nonce},
		"code_challenge":        {req.CodeChallenge},
		"code_challenge_method": {"S256"},
	}
	if req.ExtraScope != "" {
		q.Set("scope", c.scope+" "+req.ExtraScope)
	}
	if req.Claims != "" {
		q.Set("claims", req.Claims)
	}
	if req.Prompt != "" {
		q.Set("prompt", req.Prompt)
	}
	if req.LoginHint != "" {
		q.Set("login_hint", req.LoginHint)
	}
	if req.DomainHint != "" {
		q.Set("domain_hint", req.DomainHint)
	}
	sep := "?"
	if strings.Contains(md.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	return md.AuthorizationEndpoint + sep + q.Encode(), nil
}

// Token is a successful token endpoint answer. Treat AccessToken as opaque:
// tokens for Microsoft Graph cannot be verified by anyone but Graph.
type Token struct {
	AccessToken  string
	IDToken      string
	RefreshToken string // only with the offline_access scope
	TokenType    string
	Scope        string
	ExpiresIn    int64 // seconds
}

// tokenResponse is the JSON of a successful answer. expires_in is a number
// from Entra ID but a string from some proxies and older endpoints.
type tokenResponse struct {
	AccessToken  string      `json:"access_token"`
	IDToken      string      `json:"id_token"`
	RefreshToken string      `json:"refresh_token"`
	TokenType    string      `json:"token_type"`
	Scope        string      `json:"scope"`
	ExpiresIn    interface{} `json:"expires_in"`
}

// Exchange redeems an authorization code with its PKCE verifier and the
// redirect URI of the authorization request. An error answer from Entra ID
// is returned as *Error (unwrapped, so err.(*Error) works); an outage,
// a 5xx or an unreadable answer wraps ErrUnavailable.
func (c *Client) Exchange(ctx context.Context, code, codeVerifier, redirectURI string) (*Token, error) {
	if code == "" || codeVerifier == "" || redirectURI == "" {
		return nil, errors.New("entraid: exchange: code, code verifier and redirect URI are required")
	}
	return c.redeem(ctx, url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {c.clientID},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {codeVerifier},
		"scope":         {c.scope},
	})
}

// Refresh redeems a refresh token (grant_type=refresh_token) with the app's
// credential. scope is what to ask for: "" asks for the sign-in scopes
// again, which returns a new ID token (verify it with
// VerifyRefreshedIDToken); the scopes of one API return an access token for
// it (Entra ID issues one resource per token). Entra ID rotates refresh
// tokens: the answer's RefreshToken replaces the one redeemed (it may be
// empty, then keep the old one). Errors are as for Exchange: a refusal
// (invalid_grant for a disabled user, a revoked or expired grant, a policy
// that now needs interaction) is *Error; an outage wraps ErrUnavailable.
func (c *Client) Refresh(ctx context.Context, refreshToken, scope string) (*Token, error) {
	if refreshToken == "" {
		return nil, errors.New("entraid: refresh: no refresh token")
	}
	if scope == "" {
		scope = c.scope
	}
	return c.redeem(ctx, url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {c.clientID},
		"refresh_token": {refreshToken},
		"scope":         {scope},
	})
}

// redeem sends a grant to the token endpoint with the app's credential and
// decodes the answer, which must hold an ID token when the grant's scope
// asks for one (openid).
func (c *Client) redeem(ctx context.Context, form url.Values) (*Token, error) {
	md, _, err := c.metadata(ctx)
	if err != nil {
		return nil, err
	}
	if err := setClientAuth(ctx, c.credential, form, md.TokenEndpoint); err != nil {
		return nil, err
	}
	status, body, err := c.post(ctx, md.TokenEndpoint, form)
	if err != nil {
		return nil, err
	}
	return parseTokenResponse(status, body, strings.Contains(" "+form.Get("scope")+" ", " openid "))
}

// post sends a form to the token endpoint. Every transport failure is
// ErrUnavailable.
func (c *Client) post(ctx context.Context, endpoint string, form url.Values) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// The form is in the body, not the URL: the error holds no secret.
		return 0, nil, fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := readBody(resp)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, err)
	}
	return resp.StatusCode, body, nil
}

// parseTokenResponse decodes a token endpoint answer; wantIDToken says
// whether the request's scopes ask for an ID token.
func parseTokenResponse(status int, body []byte, wantIDToken bool) (*Token, error) {
	if status >= 500 {
		return nil, fmt.Errorf("%w: token endpoint: HTTP %d%s", ErrUnavailable, status, errorSummary(body))
	}
	if status != http.StatusOK {
		if e := parseError(status, body); e != nil && status >= 400 {
			return nil, e
		}
		return nil, fmt.Errorf("%w: token endpoint: HTTP %d%s", ErrUnavailable, status, errorSummary(body))
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("%w: token endpoint: answer is not JSON: %v", ErrUnavailable, err)
	}
	if wantIDToken && tr.IDToken == "" {
		return nil, fmt.Errorf("%w: token endpoint: answer has no id_token", ErrUnavailable)
	}
	if !wantIDToken && tr.AccessToken == "" {
		return nil, fmt.Errorf("%w: token endpoint: answer has no access_token", ErrUnavailable)
	}
	t := &Token{
		AccessToken:  tr.AccessToken,
		IDToken:      tr.IDToken,
		RefreshToken: tr.RefreshToken,
		TokenType:    tr.TokenType,
		Scope:        tr.Scope,
	}
	if tr.ExpiresIn == nil {
		return t, nil
	}
	// No empty clause here: in a binding type switch, Yaegi v0.16.1 returns
	// zero values from the function when an empty clause matches.
	switch v := tr.ExpiresIn.(type) {
	case float64:
		t.ExpiresIn = int64(v)
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: token endpoint: expires_in %q is not a number", ErrUnavailable, v)
		}
		t.ExpiresIn = n
	default:
		return nil, fmt.Errorf("%w: token endpoint: expires_in is %T, want a number", ErrUnavailable, v)
	}
	return t, nil
}
