package entraauth

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/tfa-plugin/entraauth/entraid"
	"github.com/tfa-plugin/entraauth/session"
)

// defaultHeaders are the identity headers set on signed-in requests unless
// the headers option says otherwise.
var defaultHeaders = map[string]string{
	"X-Forwarded-User":               "oid",
	"X-Forwarded-Email":              "email",
	"X-Forwarded-Name":               "name",
	"X-Forwarded-Preferred-Username": "preferred_username",
	"X-Forwarded-Groups":             "groups",
	"X-Forwarded-Roles":              "roles",
}

// sessionClaims are the claims every session keeps; headers may name other
// claims, which sessions then keep too.
var sessionClaims = map[string]bool{
	"oid": true, "tid": true, "name": true, "preferred_username": true,
	"email": true, "roles": true, "groups": true,
}

// maxHeaderValue bounds one identity header: upstream servers commonly
// refuse header lines over 8 KB.
const maxHeaderValue = 8 << 10

// reservedHeaders may not carry identity: they hold the session cookie
// (every user would loop), the bearer token, where the request came from
// (IP-based controls upstream would trust a claim), or the framing of the
// request itself. Canonical names; any Proxy-* header is reserved too.
var reservedHeaders = map[string]bool{
	"Cookie": true, "Authorization": true, "Host": true, "Forwarded": true,
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "X-Forwarded-Port": true,
	"X-Forwarded-Server": true, "X-Forwarded-Prefix": true, "X-Real-Ip": true,
	"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Content-Length": true,
	"Te": true, "Trailer": true, "Upgrade": true,
}

// headerClaim is one identity header and the claim it carries.
type headerClaim struct {
	name  string // canonical header name
	claim string
}

// parseHeaders validates the headers option: header name to claim. An
// empty option means the default headers.
func parseHeaders(option map[string]string) ([]headerClaim, error) {
	if len(option) == 0 {
		option = defaultHeaders
	}
	var out []headerClaim
	for name, claim := range option {
		name = strings.TrimSpace(name)
		claim = strings.TrimSpace(claim)
		if !isHeaderName(name) {
			return nil, optionError("headers", "%q is not a header name: use letters, digits and '-', e.g. X-Forwarded-User", name)
		}
		canonical := http.CanonicalHeaderKey(name)
		if reservedHeaders[canonical] || strings.HasPrefix(canonical, "Proxy-") {
			return nil, optionError("headers", "%s is reserved: it carries the request's cookies, credentials, origin or framing, and a claim there would break sign-in or mislead the upstream; choose another name, e.g. X-User-Id", name)
		}
		if claim == "" || strings.ContainsAny(claim, " ,\t") {
			return nil, optionError("headers", "%s: %q is not a claim name: write e.g. oid, email, roles or groups", name, claim)
		}
		out = append(out, headerClaim{name: canonical, claim: claim})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func isHeaderName(s string) bool {
	return s != "" && len(s) <= 64 && onlyOf(s, alphanumeric+"-")
}

// strippedHeaders lists the headers removed from every request: the default
// identity headers, always, every configured one, and the header of the
// upstream's access token unless it is Authorization (which carries API
// clients' own bearer tokens, and is replaced on signed-in requests).
func strippedHeaders(headers []headerClaim, upstream *upstreamToken) []string {
	seen := map[string]bool{}
	var out []string
	for name := range defaultHeaders {
		seen[name] = true
		out = append(out, name)
	}
	for _, h := range headers {
		if !seen[h.name] {
			seen[h.name] = true
			out = append(out, h.name)
		}
	}
	if upstream != nil && !upstream.bearer && !seen[upstream.header] {
		out = append(out, upstream.header)
	}
	sort.Strings(out)
	return out
}

// stripIdentityHeaders removes from h (a request's headers or trailers)
// every spelling of an identity header (see foldHeaderName): http.Header
// keys are canonical for parsed requests, but a handler earlier in the
// chain may have added raw keys, and upstreams read other separators as
// '-'. m.strippedSet holds the folded names.
func (m *Middleware) stripIdentityHeaders(h http.Header) {
	for k := range h {
		if f := foldHeaderName(k); m.strippedSet[f] || isFoldedAppServiceHeader(f) {
			delete(h, k)
		}
	}
}

// headerSeparators turns every character that a header name may hold
// besides letters and digits (RFC 9110's tchar) into '-'. Upstreams read
// them as '-': CGI gateways (lighttpd, Apache httpd before 2.4, and the
// PHP, Perl or Python programs behind them) turn each into '_' in
// HTTP_X_FORWARDED_USER as they do '-', and WSGI, Rack and FastCGI
// servers turn '-' into '_', so X.Forwarded.User, X_Forwarded_User and
// X~Forwarded~User all read as X-Forwarded-User somewhere. A Replacer is
// safe for concurrent use.
var headerSeparators = strings.NewReplacer("_", "-", ".", "-", "~", "-", "!", "-", "#", "-", "$", "-", "%", "-",
	"&", "-", "'", "-", "*", "-", "+", "-", "^", "-", "`", "-", "|", "-")

// foldHeaderName is name as some upstream may read it: lower case, every
// separator '-'. The spellings of one header fold alike; this is the one
// place that decides which names are spellings of an identity header.
func foldHeaderName(name string) string {
	return strings.ToLower(headerSeparators.Replace(name))
}

// identityValues computes the identity header values for s, aligned with
// m.headers: sanitized, lists comma-joined, "" for an absent claim or a
// value too long to send.
func (m *Middleware) identityValues(s *session.Session) []string {
	values := make([]string, len(m.headers))
	for i, h := range m.headers {
		v := sanitizeHeaderValue(sessionClaim(s, h.claim))
		if len(v) > maxHeaderValue {
			m.log.Printf("header %s dropped for user %s: %d bytes is more than %d", h.name, s.OID, len(v), maxHeaderValue)
			v = ""
		}
		values[i] = v
	}
	return values
}

// setIdentityHeaders tells the upstream who is signed in.
func (m *Middleware) setIdentityHeaders(h http.Header, values []string) {
	for i, hc := range m.headers {
		if values[i] != "" {
			h[hc.name] = []string{values[i]}
		}
	}
}

// sessionClaim is the header value of one claim kept in s.
func sessionClaim(s *session.Session, claim string) string {
	switch claim {
	case "oid":
		return s.OID
	case "tid":
		return s.TID
	case "name":
		return s.Name
	case "preferred_username":
		return s.PreferredUsername
	case "email":
		return s.Email
	case "roles":
		return strings.Join(s.Roles, ",")
	case "groups":
		return strings.Join(s.Groups, ",")
	}
	if v, ok := appServiceClaim(s, claim); ok {
		return v
	}
	return s.Claims[claim]
}

// extraClaims picks, from a verified ID token, the claims that configured
// headers need beyond the ones every session keeps.
func (m *Middleware) extraClaims(c *entraid.Claims) map[string]string {
	var out map[string]string
	for _, h := range m.headers {
		if sessionClaims[h.claim] {
			continue
		}
		v, ok := c.Raw[h.claim]
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[h.claim] = claimString(v)
	}
	return out
}

// claimString renders a JSON claim value as a header value.
func claimString(v interface{}) string {
	switch x := v.(type) {
	case string:
		return x
	case []interface{}:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, claimString(e))
		}
		return strings.Join(parts, ",")
	case float64:
		return fmt.Sprintf("%v", x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return ""
}

// sanitizeHeaderValue drops control characters, which could otherwise split
// or smuggle headers; claims come from the IdP but users edit some of them.
func sanitizeHeaderValue(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x20 && v[i] != 0x7f {
			b.WriteByte(v[i])
		}
	}
	return strings.TrimSpace(b.String())
}
