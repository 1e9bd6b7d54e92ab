package entraauth

import (
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// problem is an error shown to the user: an HTML page for browsers, JSON for
// API clients. It never carries secrets, tokens or stack traces.
type problem struct {
	Status  int
	Title   string
	Message string
	Code    string // machine-readable, e.g. "invalid_state" or Entra's "invalid_grant"
	AADSTS  string // Entra's error code, e.g. "AADSTS50011"
	TraceID string // Entra's trace ID, for the tenant's sign-in logs
	Hint    string // what an administrator can do about it
	Retry   string // where "Try again" leads; local or validated URL
	// RetryLabel names the Retry link when "Try again" does not fit.
	RetryLabel string
	// Folded keeps the codes in a closed "Details" part: the page tells of
	// the user's own choice, not of a fault to report.
	Folded bool
}

func internalProblem() *problem {
	return &problem{Status: http.StatusInternalServerError, Title: "Sign-in failed", Message: "An internal error occurred. Please try again.", Code: "internal_error"}
}

// upstreamProblem explains a failed call to Entra ID, and logs it for the
// operator (Entra's messages carry no secrets).
func (m *Middleware) upstreamProblem(err error) *problem {
	m.log.Printf("Microsoft Entra ID: %v", err)
	if ee := entraError(err); ee != nil {
		p := &problem{
			Status:  http.StatusBadGateway,
			Title:   "Microsoft Entra ID refused the sign-in",
			Message: firstLine(ee.Description),
			Code:    ee.Code,
			AADSTS:  ee.AADSTS(),
			TraceID: ee.TraceID,
			Hint:    ee.Hint(),
		}
		if m.assertions != nil {
			// The assertion cache knows what it sent: name the issuer,
			// subject and audience the federated credential must match.
			if advice := m.assertions.Advice(ee.ErrorCodes); advice != "" {
				p.Hint = advice
				m.log.Printf("federated credential: %s", advice)
			}
		}
		return p
	}
	if ae, ok := assertion.AsError(err); ok {
		return &problem{
			Status:  http.StatusBadGateway,
			Title:   "The application's credential could not be obtained",
			Message: "The " + ae.Source + " refused to issue the client assertion this site signs in with.",
			Code:    "client_assertion_unavailable",
			AADSTS:  ae.AADSTS(),
			TraceID: ae.TraceID,
			Hint:    ae.Hint,
		}
	}
	if errors.Is(err, assertion.ErrUnavailable) {
		return &problem{
			Status:  http.StatusServiceUnavailable,
			Title:   "The application's credential could not be obtained",
			Message: "The source of the client assertion this site signs in with could not be reached. Please try again in a moment.",
			Code:    "client_assertion_unavailable",
		}
	}
	return &problem{
		Status:  http.StatusServiceUnavailable,
		Title:   "Microsoft Entra ID is unreachable",
		Message: "Signing in is not possible right now because Microsoft Entra ID could not be reached. Please try again in a moment.",
		Code:    "idp_unavailable",
	}
}

// entraError finds the answer of Entra ID (or Microsoft Graph) that err
// wraps, or returns nil: a type assertion down the chain, which Yaegi
// follows where errors.As does not.
func entraError(err error) *entraid.Error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if ee, ok := e.(*entraid.Error); ok {
			return ee
		}
	}
	return nil
}

// callbackErrorProblem explains an error Entra ID sent back to the callback
// of this browser's sign-in st (the user cancelled, consent is missing, ...).
func callbackErrorProblem(code, description string, st *loginState) *problem {
	p := &problem{
		Status:  http.StatusBadGateway,
		Title:   "Sign-in did not complete",
		Message: firstLine(description),
		Code:    code,
		AADSTS:  aadstsCode(description),
		TraceID: traceID(description),
		Retry:   st.ReturnURL,
	}
	if code == "access_denied" {
		p.Status = http.StatusForbidden
		p.Title = "Sign-in was cancelled or refused"
		if p.AADSTS == "AADSTS65004" {
			// Cancel at the account picker, or consent declined: the
			// user's choice, told as such, with the way back.
			p.Title = "Sign-in cancelled"
			p.Message = "You cancelled signing in at Microsoft Entra ID (or declined what this site asked for), so you are not signed in to this site."
			p.RetryLabel = "Sign in again"
			p.Folded = true
		}
	}
	if p.Message == "" {
		p.Message = "Microsoft Entra ID answered with the error " + code + "."
	}
	return p
}

// callbackErrorLogLine is what the log says of an error Entra ID sent to
// the callback: its code, AADSTS code and trace ID, which come from the
// URL and are kept to characters that cannot forge a line.
func callbackErrorLogLine(p *problem) string {
	line := logSafe(p.Code)
	if a := logSafe(p.AADSTS); a != "" {
		line += " " + a
	}
	if id := logSafe(p.TraceID); id != "" {
		line += " (trace ID " + id + ")"
	}
	return line
}

// writeError answers with p: JSON for clients that ask for it, HTML else.
func (m *Middleware) writeError(w http.ResponseWriter, r *http.Request, p *problem) {
	h := w.Header()
	h.Set("Cache-Control", privateNoStore)
	h.Set("X-Content-Type-Options", "nosniff")
	if wantsJSON(r) {
		body := map[string]interface{}{"error": p.Code, "error_description": p.Message, "status": p.Status}
		if p.AADSTS != "" {
			body["aadsts"] = p.AADSTS
		}
		if p.TraceID != "" {
			body["trace_id"] = p.TraceID
		}
		if p.Hint != "" {
			body["hint"] = p.Hint
		}
		writeJSON(w, p.Status, body)
		return
	}
	var b strings.Builder
	b.WriteString("<p>" + html.EscapeString(p.Message) + "</p>")
	if p.AADSTS != "" || p.TraceID != "" || p.Code != "" {
		if p.Folded {
			b.WriteString("<details><summary>Details</summary><dl>")
		} else {
			b.WriteString("<details open><summary>Details</summary><dl>")
		}
		if p.Code != "" {
			b.WriteString("<dt>Error</dt><dd><code>" + html.EscapeString(p.Code) + "</code></dd>")
		}
		if p.AADSTS != "" {
			b.WriteString("<dt>Entra ID code</dt><dd><code>" + html.EscapeString(p.AADSTS) + "</code></dd>")
		}
		if p.TraceID != "" {
			b.WriteString("<dt>Trace ID</dt><dd><code>" + html.EscapeString(p.TraceID) + "</code></dd>")
		}
		b.WriteString("</dl></details>")
	}
	if p.Hint != "" {
		b.WriteString("<p class=hint>" + html.EscapeString(p.Hint) + "</p>")
	}
	if p.Retry != "" {
		if target, ok := m.safeReturnURL(p.Retry, r); ok {
			label := p.RetryLabel
			if label == "" {
				label = "Try again"
			}
			b.WriteString(`<p><a class=button href="` + html.EscapeString(target) + `">` + html.EscapeString(label) + `</a></p>`)
		}
	}
	writePage(w, p.Status, p.Title, b.String())
}

// serveLogout shows a sign-out button (GET) or signs out (POST). Signing out
// is a POST from the same origin, so that another site cannot sign users out
// with a link or an image. After Entra ID's end-session the user lands on
// the portal's signed-out page, with a link back to where they were; a
// valid rd field sends them to rd instead.
func (m *Middleware) serveLogout(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		rd := r.URL.Query().Get("rd")
		hidden := ""
		if target, ok := m.safeReturnURL(rd, r); ok {
			hidden = `<input type=hidden name=rd value="` + html.EscapeString(target) + `">`
		}
		writePage(w, http.StatusOK, "Sign out", `<form method=post action="`+html.EscapeString(m.logoutPath)+`">`+hidden+
			`<p>Sign out of `+html.EscapeString(r.Host)+`? Your session here ends, and Microsoft Entra ID signs you out in this browser.</p>`+
			`<p><button class=button type=submit>Sign out</button></p></form>`)
	case http.MethodPost:
		if !sameOrigin(r) {
			m.writeError(w, r, &problem{Status: http.StatusForbidden, Title: "Sign-out refused", Message: "Sign-out requests must come from this site.", Code: "cross_origin"})
			return
		}
		note := signedOutNote{Host: r.Host}
		if s := m.openSession(r); s != nil {
			m.endSession(s)
			note.Ended = true
		}
		m.clearSession(w, r)
		base := requestOrigin(r)
		target, explicit := m.safeReturnURL(formValue(r, "rd"), r)
		if explicit && strings.HasPrefix(target, "/") {
			target = base + target
		}
		endSession := ""
		if md, err := m.client.Metadata(r.Context()); err == nil {
			endSession = md.EndSessionEndpoint
		}
		if !explicit {
			// The portal's signed-out page, on the auth host when there is
			// one: the one post-logout URI to register. It links back to
			// where the user was.
			host := r.Host
			if m.authHost != "" {
				host = m.authHost
			}
			target = requestScheme(r) + "://" + host + m.signedOutPath
			note.Entra = endSession != ""
			m.rememberSignedOut(w, r, note)
		}
		w.Header().Set("Cache-Control", privateNoStore)
		if endSession != "" {
			q := url.Values{"post_logout_redirect_uri": {target}}
			target = endSession + "?" + q.Encode()
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		m.writeError(w, r, &problem{Status: http.StatusMethodNotAllowed, Title: "Method not allowed", Message: "Sign out with a POST request.", Code: "method_not_allowed"})
	}
}

// signedOutCookieLifetime bounds the trip through Entra ID's end-session.
const signedOutCookieLifetime = 10 * time.Minute

// signedOutNote is what the signed-out page says, carried in a sealed
// cookie that only that page receives: where the user signed out from,
// whether a session was ended, and whether Entra ID's end-session was on
// the way.
type signedOutNote struct {
	Back  string `json:"b"` // where "Sign in again" goes
	Host  string `json:"h"` // the host the user signed out of
	Ended bool   `json:"e"` // a session was ended (signedOut)
	Entra bool   `json:"m"` // the browser went through Entra ID's end-session
}

// rememberSignedOut keeps note for the signed-out page, Back set to the page
// that posted the sign-out (backToApplication).
func (m *Middleware) rememberSignedOut(w http.ResponseWriter, r *http.Request, note signedOutNote) {
	note.Back = m.backToApplication(r)
	if m.authHost != "" && strings.HasPrefix(note.Back, "/") {
		note.Back = requestOrigin(r) + note.Back
	}
	plain, err := json.Marshal(note)
	if err != nil {
		return
	}
	name := m.signedOutCookieName()
	sealed, err := m.sealer.Seal(plain, m.loginAAD(name), m.now().Add(signedOutCookieLifetime))
	if err != nil {
		return
	}
	c := m.loginCookie(name, sealed, int(signedOutCookieLifetime/time.Second))
	c.Path = m.signedOutPath
	http.SetCookie(w, c)
}

func (m *Middleware) signedOutCookieName() string {
	return m.signedOutName
}

// serveSignedOut says what the sign-out did, with a link to sign in again
// to where the user was: never straight back into a sign-in prompt.
// Without a sign-out behind it (a bookmark, a reload) it says whether the
// user is signed in, and claims nothing.
func (m *Middleware) serveSignedOut(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		m.writeError(w, r, &problem{Status: http.StatusMethodNotAllowed, Title: "Method not allowed", Message: "This page takes GET requests only.", Code: "method_not_allowed"})
		return
	}
	var note *signedOutNote
	name := m.signedOutCookieName()
	if c, err := r.Cookie(name); err == nil {
		if plain, err := m.sealer.Open(c.Value, m.loginAAD(name), m.now()); err == nil {
			n := signedOutNote{}
			if json.Unmarshal(plain, &n) == nil {
				note = &n
			}
		}
		del := m.loginCookie(name, "", -1)
		del.Path = m.signedOutPath
		http.SetCookie(w, del)
	}
	w.Header().Set("Cache-Control", privateNoStore)
	if note == nil {
		host := html.EscapeString(r.Host)
		if s := m.openSession(r); s != nil {
			writePage(w, http.StatusOK, "Signed in", "<p>You are signed in to "+host+" as "+html.EscapeString(signedInAs(s))+".</p>"+
				`<p><a class=button href="`+html.EscapeString(m.logoutPath)+`">Sign out</a></p>`)
			return
		}
		writePage(w, http.StatusOK, "Not signed in", "<p>You are not signed in to "+host+`.</p><p><a class=button href="/">Sign in</a></p>`)
		return
	}
	back := "/"
	if target, ok := m.safeReturnURL(note.Back, r); ok {
		back = target
	}
	var b strings.Builder
	b.WriteString("<p>You are signed out of " + html.EscapeString(note.Host) + ".")
	if note.Ended {
		b.WriteString(" Your session has ended: this browser no longer has it, and copies of it are refused.")
	}
	b.WriteString("</p>")
	if note.Entra {
		b.WriteString("<p>Microsoft Entra ID also signed you out in this browser: the next sign-in asks which account to use.</p>")
	}
	b.WriteString("<p>Other sites that you signed in to separately keep their own sessions until you sign out of each of them.</p>")
	b.WriteString(`<p><a class=button href="` + html.EscapeString(back) + `">Sign in again</a></p>`)
	writePage(w, http.StatusOK, "Signed out", b.String())
}

// formValue reads one field of a small urlencoded form without keeping the
// rest of the body.
func formValue(r *http.Request, name string) string {
	r.Body = http.MaxBytesReader(nil, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		return ""
	}
	return r.PostForm.Get(name)
}

// sameOrigin reports whether a state-changing request comes from a page of
// this origin: by its Origin header or, where a browser sends none, by
// Sec-Fetch-Site.
func sameOrigin(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" {
		return strings.EqualFold(origin, requestOrigin(r))
	}
	return r.Header.Get("Sec-Fetch-Site") == "same-origin"
}

// forbidden answers a signed-in user whom the rules refuse: a 403 that says
// who they are signed in as and offers to sign out, never a redirect back to
// Entra ID, which would sign the same user in again and loop.
func (m *Middleware) forbidden(w http.ResponseWriter, r *http.Request, s *session.Session, why string) {
	m.log.Printf("access refused to %s (%q) for %q: %s", s.OID, s.PreferredUsername, r.URL.Path, why)
	h := w.Header()
	h.Set("Cache-Control", privateNoStore)
	if wantsJSON(r) || !isNavigation(r) {
		h.Set("X-Content-Type-Options", "nosniff")
		writeJSON(w, http.StatusForbidden, map[string]interface{}{
			"error": "access_denied", "error_description": "You are signed in, but not allowed to use this application.",
			"status": http.StatusForbidden, "oid": s.OID, "preferred_username": s.PreferredUsername,
		})
		return
	}
	writePage(w, http.StatusForbidden, "Access denied",
		"<p>You are signed in as <strong>"+html.EscapeString(signedInAs(s))+"</strong>, but this account is not allowed to use this application.</p>"+
			"<p>Ask its administrator for access, or sign out and use another account.</p>"+
			`<form method=post action="`+html.EscapeString(m.logoutPath)+`"><button class=button type=submit>Sign out</button></form>`)
}

// signedInAs names the user of s for a page: "Name (user name)".
func signedInAs(s *session.Session) string {
	who := s.PreferredUsername
	if who == "" {
		who = s.OID
	}
	if s.Name != "" {
		who = s.Name + " (" + who + ")"
	}
	return who
}

// backToApplication is where the profile page's "Back to the application"
// leads: rd when the link to the profile names it, else the page that
// linked to the profile (its Referer), unless either is on another site or
// one of the portal's own pages, else the site's root.
func (m *Middleware) backToApplication(r *http.Request) string {
	for _, raw := range []string{r.URL.Query().Get("rd"), r.Referer()} {
		target, ok := m.safeReturnURL(raw, r)
		if !ok {
			continue
		}
		if u, err := url.Parse(target); err == nil && !strings.HasPrefix(u.Path, m.prefix) {
			return target
		}
	}
	return "/"
}

// serveProfile shows who is signed in.
func (m *Middleware) serveProfile(w http.ResponseWriter, r *http.Request) {
	s, state := m.currentSession(w, r)
	if state == requestAnswered {
		return
	}
	if s == nil {
		m.challenge(w, r, state)
		return
	}
	w.Header().Set("Cache-Control", privateNoStore)
	if wantsJSON(r) {
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"oid":                s.OID,
			"tid":                s.TID,
			"name":               s.Name,
			"preferred_username": s.PreferredUsername,
			"email":              s.Email,
			"roles":              nonNil(s.Roles),
			"groups":             nonNil(s.Groups),
			"signed_in":          time.Unix(s.AuthTime, 0).UTC().Format(time.RFC3339),
			"renews":             time.Unix(m.renewAt(s), 0).UTC().Format(time.RFC3339),
			"expires":            time.Unix(m.sessionEnd(s), 0).UTC().Format(time.RFC3339),
		})
		return
	}
	// Who, the way back and the sign-out first: the claims below can be
	// long (many groups).
	var b strings.Builder
	b.WriteString("<p>You are signed in as <strong>" + html.EscapeString(signedInAs(s)) + "</strong>.</p>")
	b.WriteString(`<form class=actions method=post action="` + html.EscapeString(m.logoutPath) + `">` +
		`<a class="button secondary" href="` + html.EscapeString(m.backToApplication(r)) + `">Back to the application</a>` +
		`<button class=button type=submit>Sign out</button></form>`)
	b.WriteString("<dl class=claims>")
	row := func(k, v string) {
		if v != "" {
			b.WriteString("<dt>" + k + "</dt><dd>" + html.EscapeString(v) + "</dd>")
		}
	}
	row("Name", s.Name)
	row("User name", s.PreferredUsername)
	row("Email", s.Email)
	row("Object ID", s.OID)
	row("Tenant ID", s.TID)
	row("Roles", strings.Join(s.Roles, ", "))
	row("Groups", strings.Join(s.Groups, ", "))
	row("Signed in", time.Unix(s.AuthTime, 0).UTC().Format(time.RFC1123))
	if m.renew && s.RefreshToken != "" {
		row("Session renews", time.Unix(m.renewAt(s), 0).UTC().Format(time.RFC1123))
	}
	row("Session ends", time.Unix(m.sessionEnd(s), 0).UTC().Format(time.RFC1123))
	b.WriteString("</dl>")
	writePage(w, http.StatusOK, "Signed in", b.String())
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// wantsJSON reports whether the client prefers JSON to HTML.
func wantsJSON(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

func writeJSON(w http.ResponseWriter, status int, body map[string]interface{}) {
	b, err := json.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

const pageStyle = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f3f4f6;color:#111}` +
	`main{max-width:34rem;margin:10vh auto;background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 4px #0002}` +
	`h1{font-size:1.4rem;margin-top:0}dt{font-weight:600;margin-top:.5rem}dd{margin:0;word-break:break-all}` +
	`.hint{background:#fff7e0;padding:.5rem .75rem;border-radius:4px}` +
	`.button{display:inline-block;background:#0f6cbd;color:#fff;border:0;border-radius:4px;padding:.5rem 1rem;font:inherit;text-decoration:none;cursor:pointer}` +
	`.button.secondary{background:#fff;color:#0f6cbd;box-shadow:inset 0 0 0 1px #0f6cbd}.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin:1rem 0}` +
	`summary{cursor:pointer;color:#616161}dl.claims{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dl.claims dt,dl.claims dd{margin:0}`

// writePage writes a small self-contained HTML page; body is trusted HTML
// whose dynamic parts the caller has escaped.
func writePage(w http.ResponseWriter, status int, title, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write([]byte("<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>" +
		html.EscapeString(title) + "</title><style>" + pageStyle + "</style></head><body><main><h1>" +
		html.EscapeString(title) + "</h1>" + body + "</main></body></html>"))
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// aadstsCode finds "AADSTS<digits>" in an Entra error description.
func aadstsCode(s string) string {
	i := strings.Index(s, "AADSTS")
	if i < 0 {
		return ""
	}
	j := i + 6
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == i+6 {
		return ""
	}
	return s[i:j]
}

// logSafe keeps a value from a URL fit for one line of the log: letters,
// digits, '-', '_' and '.', at most 100 of them.
func logSafe(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 100; i++ {
		if c := s[i]; c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// traceID finds "Trace ID: <id>" in an Entra error description.
func traceID(s string) string {
	const marker = "Trace ID: "
	i := strings.Index(s, marker)
	if i < 0 {
		return ""
	}
	id := s[i+len(marker):]
	if j := strings.IndexAny(id, " \r\n"); j >= 0 {
		id = id[:j]
	}
	return id
}
