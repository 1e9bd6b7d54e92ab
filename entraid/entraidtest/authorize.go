package entraidtest

import (
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// codeLifetime is how long an authorization code can be redeemed.
const codeLifetime = 10 * time.Minute

// authCode is what an authorization code stands for.
type authCode struct {
	clientID      string
	redirectURI   string
	codeChallenge string
	nonce         string
	scope         string
	user          User
	expires       time.Time
	redeemed      bool
	// mfa: the sign-in passed a claims challenge back, and did what the
	// policy behind it asks (see PolicyMFA).
	mfa bool
}

// serveAuthorize implements /oauth2/v2.0/authorize. Before the redirect URI
// is known to be good, errors are shown as a page, as Entra ID does; after
// that they go back to the app as error and error_description.
func (t *Tenant) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		t.writeErrorPage(w, r, stsErr(http.StatusBadRequest, "invalid_request", 90023, "The request is not properly formatted."))
		return
	}
	p := r.Form
	clientID := p.Get("client_id")
	if clientID == "" {
		t.writeErrorPage(w, r, stsErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."))
		return
	}
	if _, ok := t.appSecret(clientID); !ok {
		t.writeErrorPage(w, r, appNotFound(clientID, t.Domain))
		return
	}
	redirectURI := p.Get("redirect_uri")
	if !t.redirectAllowed(redirectURI) {
		t.writeErrorPage(w, r, redirectMismatch(redirectURI, clientID))
		return
	}
	back := redirect{uri: redirectURI, state: p.Get("state"), mode: p.Get("response_mode")}
	if back.mode != "" && back.mode != "query" && back.mode != "form_post" {
		back.mode = "query"
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "invalid_request", 70007, "The response_mode '"+p.Get("response_mode")+"' is not supported for the authorization code flow."))
		return
	}
	if rt := p.Get("response_type"); rt != "code" {
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "unsupported_response_type", 70005, "response_type '"+rt+"' is not enabled for the application."))
		return
	}
	scope := p.Get("scope")
	if scope == "" {
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."))
		return
	}
	if !hasScope(scope, "openid") {
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. This tenant issues ID tokens and requires the 'openid' scope."))
		return
	}
	challenge := p.Get("code_challenge")
	switch {
	case challenge == "":
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "invalid_request", 50147, "The code_challenge parameter is missing: this application requires Proof Key for Code Exchange (PKCE)."))
		return
	case p.Get("code_challenge_method") != "S256":
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "invalid_request", 50149, "Invalid Code_Challenge_method parameter: this application requires S256."))
		return
	case len(challenge) != 43:
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "invalid_request", 501491, "Invalid size of Code_Challenge parameter."))
		return
	}

	t.mu.Lock()
	signIn := t.signIn
	t.mu.Unlock()
	var username string
	switch {
	case r.Method == http.MethodPost && p.Get("cancel") != "":
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "access_denied", 65004, "User declined to consent to access the app."))
		return
	case r.Method == http.MethodPost && p.Get("login") != "":
		username = p.Get("login")
	case signIn != "":
		username = signIn
	case p.Get("prompt") == "none":
		t.redirectError(w, r, back, stsErr(http.StatusBadRequest, "login_required", 50058, "A silent sign-in request was sent but no user is signed in."))
		return
	default:
		t.writeSignInPage(w, r, "")
		return
	}
	u, ok := t.user(username)
	if !ok {
		if signIn != "" && username == signIn {
			t.writeErrorPage(w, r, stsErr(http.StatusBadRequest, "invalid_request", 50034, "The user account "+username+" does not exist in the "+t.Domain+" directory. To sign into this application, the account must be added to the directory."))
			return
		}
		t.writeSignInPage(w, r, "No account with that username is in this directory.")
		return
	}

	code := "1.A" + randomString(120)
	t.mu.Lock()
	t.codes[code] = &authCode{
		clientID:      clientID,
		redirectURI:   redirectURI,
		codeChallenge: challenge,
		nonce:         p.Get("nonce"),
		scope:         scope,
		user:          u,
		expires:       t.now().Add(codeLifetime),
		mfa:           p.Get("claims") != "",
	}
	t.mu.Unlock()
	back.send(w, r, url.Values{"code": {code}, "session_state": {newGUID()}})
}

func appNotFound(clientID, domain string) *stsError {
	return stsErr(http.StatusBadRequest, "unauthorized_client", 700016, "Application with identifier '"+clientID+"' was not found in the directory '"+domain+"'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.")
}

func redirectMismatch(redirectURI, clientID string) *stsError {
	return stsErr(http.StatusBadRequest, "invalid_request", 50011, "The redirect URI '"+redirectURI+"' specified in the request does not match the redirect URIs configured for the application '"+clientID+"'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.")
}

func hasScope(scope, want string) bool {
	for _, s := range strings.Fields(scope) {
		if s == want {
			return true
		}
	}
	return false
}

// redirectAllowed applies the app's registered redirect URIs: an exact
// match, or any absolute http(s) URL when none are registered.
func (t *Tenant) redirectAllowed(uri string) bool {
	if uri == "" {
		return false
	}
	t.mu.Lock()
	registered := append([]string(nil), t.redirectURIs...)
	t.mu.Unlock()
	if len(registered) > 0 {
		for _, r := range registered {
			if r == uri {
				return true
			}
		}
		return false
	}
	u, err := url.Parse(uri)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

// redirect is the way back to the app.
type redirect struct {
	uri, state, mode string
}

// send returns params (plus state) to the app, in the query or, for
// response_mode=form_post, as a self-submitting form.
func (b redirect) send(w http.ResponseWriter, r *http.Request, params url.Values) {
	if b.state != "" {
		params.Set("state", b.state)
	}
	if b.mode == "form_post" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		formPostPage.Execute(w, map[string]interface{}{"Action": b.uri, "Fields": fields(params)})
		return
	}
	u, err := url.Parse(b.uri)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := u.Query()
	for name, values := range params {
		q[name] = values
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (t *Tenant) redirectError(w http.ResponseWriter, r *http.Request, b redirect, e *stsError) {
	trace, corr, ts := t.details(r)
	b.send(w, r, url.Values{
		"error":             {e.code},
		"error_description": {e.description(trace, corr, ts)},
		"error_uri":         {t.URL + "/error?code=" + strconv.Itoa(e.aadsts)},
	})
}

// fields flattens params into hidden form fields, sorted by name. Maps,
// not structs, because templates reach them by reflection, which sees
// interpreted struct types poorly under Yaegi.
func fields(params url.Values) []map[string]string {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []map[string]string
	for _, name := range names {
		for _, v := range params[name] {
			out = append(out, map[string]string{"Name": name, "Value": v})
		}
	}
	return out
}

// writeSignInPage shows the account picker: one button per user in a
// plain form that posts the authorization request back with the choice,
// so that it works in any browser without JavaScript.
func (t *Tenant) writeSignInPage(w http.ResponseWriter, r *http.Request, problem string) {
	params := url.Values{}
	for name, values := range r.Form {
		if name != "login" && name != "cancel" {
			params[name] = values
		}
	}
	var users []map[string]string
	t.mu.Lock()
	all := append([]User(nil), t.Users...)
	t.mu.Unlock()
	for _, u := range all {
		users = append(users, map[string]string{
			"Name":     u.Name,
			"Username": u.PreferredUsername,
			"Initial":  initial(u.Name),
			"Groups":   strings.Join(u.Groups, ", "),
			"Roles":    strings.Join(u.Roles, ", "),
		})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	status := http.StatusOK
	if problem != "" {
		status = http.StatusBadRequest
	}
	w.WriteHeader(status)
	signInPage.Execute(w, map[string]interface{}{
		"Action":   r.URL.Path,
		"Fields":   fields(params),
		"Users":    users,
		"ClientID": t.ClientID,
		"Domain":   t.Domain,
		"TenantID": t.TenantID,
		"Problem":  problem,
	})
}

func initial(name string) string {
	for _, c := range name {
		return strings.ToUpper(string(c))
	}
	return "?"
}

// writeErrorPage shows an error the way Entra ID's sign-in pages do: the
// AADSTS message with request ID, correlation ID and timestamp, and no way
// back to the app.
func (t *Tenant) writeErrorPage(w http.ResponseWriter, r *http.Request, e *stsError) {
	trace, corr, ts := t.details(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("x-ms-request-id", trace)
	w.WriteHeader(e.status)
	errorPage.Execute(w, map[string]interface{}{
		"Code":        "AADSTS" + strconv.Itoa(e.aadsts),
		"Message":     e.msg,
		"Trace":       trace,
		"Correlation": corr,
		"Timestamp":   ts,
		"Domain":      t.Domain,
	})
}

// serveLogout implements /oauth2/v2.0/logout: back to
// post_logout_redirect_uri when it is exactly one of the app's registered
// redirect URIs, as Entra ID requires, else Entra ID's own signed-out page.
func (t *Tenant) serveLogout(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	target := r.Form.Get("post_logout_redirect_uri")
	if t.postLogoutAllowed(target) {
		u, _ := url.Parse(target)
		if state := r.Form.Get("state"); state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	signedOutPage.Execute(w, map[string]interface{}{"Domain": t.Domain})
}

// postLogoutAllowed: only a registered redirect URI, exactly. A tenant
// with none registered (which accepts any redirect_uri at sign-in, for
// tests' convenience) sends nobody back.
func (t *Tenant) postLogoutAllowed(target string) bool {
	if target == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.redirectURIs {
		if r == target {
			return true
		}
	}
	return false
}

const pageStyle = `<style>
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;background:#f2f2f2;font:15px/1.4 "Segoe UI",system-ui,-apple-system,sans-serif;color:#1b1b1b}
main{background:#fff;width:100%;max-width:440px;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
.brand{font-size:13px;color:#5e5e5e;letter-spacing:.02em;margin-bottom:16px}
.brand b{color:#0067b8}
h1{font-size:24px;font-weight:600;margin:0 0 4px}
.sub{margin:0 0 20px;color:#5e5e5e;word-break:break-all}
ul{list-style:none;margin:0 0 16px;padding:0}
li+li{border-top:1px solid #e6e6e6}
.account{display:flex;width:100%;align-items:center;gap:12px;padding:12px 8px;border:0;background:none;text-align:left;font:inherit;color:inherit;cursor:pointer}
.account:hover,.account:focus{background:#f2f2f2;outline:none}
.avatar{flex:none;width:40px;height:40px;border-radius:50%;background:#0067b8;color:#fff;display:flex;align-items:center;justify-content:center;font-weight:600}
.who{display:flex;flex-direction:column;min-width:0}
.name{font-weight:600}
.username,.meta{color:#5e5e5e;font-size:13px;overflow:hidden;text-overflow:ellipsis}
.actions{display:flex;justify-content:flex-end}
.cancel{padding:6px 20px;border:1px solid #8a8a8a;background:#fff;font:inherit;cursor:pointer}
.problem,.code{background:#fde7e9;border-left:4px solid #a80000;padding:8px 12px;margin:0 0 16px}
dl{font-size:12px;color:#5e5e5e;display:grid;grid-template-columns:max-content 1fr;gap:2px 8px;margin:16px 0 0}
dd{margin:0;word-break:break-all}
.foot{margin:24px 0 0;font-size:12px;color:#8a8a8a}
</style>`

var signInPage = template.Must(template.New("signin").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to your account</title>` + pageStyle + `</head>
<body><main>
<div class="brand"><b>Fake Entra ID</b> · {{.Domain}}</div>
<h1>Pick an account</h1>
<p class="sub">to continue to {{.ClientID}}</p>
{{if .Problem}}<p class="problem" role="alert">{{.Problem}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<ul>
{{range .Users}}<li><button type="submit" class="account" name="login" value="{{.Username}}" data-username="{{.Username}}">
<span class="avatar" aria-hidden="true">{{.Initial}}</span>
<span class="who"><span class="name">{{.Name}}</span><span class="username">{{.Username}}</span>{{if .Groups}}<span class="meta">Groups: {{.Groups}}</span>{{end}}{{if .Roles}}<span class="meta">Roles: {{.Roles}}</span>{{end}}</span>
</button></li>
{{end}}</ul>
<div class="actions"><button type="submit" class="cancel" id="cancel" name="cancel" value="1">Cancel</button></div>
</form>
<p class="foot">Test tenant {{.TenantID}}. Not a Microsoft service.</p>
</main></body></html>
`))

var errorPage = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in to your account</title>` + pageStyle + `</head>
<body><main>
<div class="brand"><b>Fake Entra ID</b> · {{.Domain}}</div>
<h1>Sign in</h1>
<p class="sub">Sorry, but we're having trouble signing you in.</p>
<p class="code" role="alert">{{.Code}}: {{.Message}}</p>
<dl><dt>Request Id</dt><dd>{{.Trace}}</dd><dt>Correlation Id</dt><dd>{{.Correlation}}</dd><dt>Timestamp</dt><dd>{{.Timestamp}}</dd></dl>
</main></body></html>
`))

var signedOutPage = template.Must(template.New("signedout").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign out</title>` + pageStyle + `</head>
<body><main>
<div class="brand"><b>Fake Entra ID</b> · {{.Domain}}</div>
<h1>You signed out of your account</h1>
<p class="sub">It's a good idea to close all browser windows.</p>
</main></body></html>
`))

var formPostPage = template.Must(template.New("formpost").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Working...</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{{.Action}}">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<noscript><p>Script is disabled. Click Submit to continue.</p><button type="submit">Submit</button></noscript>
</form>
</body></html>
`))
