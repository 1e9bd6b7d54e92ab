package entraauth

import (
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/tfa-plugin/entraauth/session"
)

// rules decide which signed-in users may pass. Every non-empty list must be
// satisfied; within a list, one match is enough. With no lists, every user
// signed in to an allowed tenant passes.
type rules struct {
	users        map[string]bool // lower-case object IDs
	userNames    map[string]bool // lower-case preferred_username values: mutable, see the readme
	groups       []string        // group object IDs, lower-case
	roles        []string        // app role values, as written
	emailDomains []string        // lower-case domains
	tenants      map[string]bool // lower-case tenant IDs; empty: not checked here
}

func (r *rules) empty() bool {
	return len(r.users) == 0 && len(r.userNames) == 0 && len(r.groups) == 0 && len(r.roles) == 0 && len(r.emailDomains) == 0 && len(r.tenants) == 0
}

// allow reports whether s satisfies the rules, and if not, which rule
// refused it (for the log and the 403 page).
func (r *rules) allow(s *session.Session) (bool, string) {
	if len(r.tenants) > 0 && !r.tenants[strings.ToLower(s.TID)] {
		return false, "the user's tenant is not in allowedTenants"
	}
	if (len(r.users) > 0 || len(r.userNames) > 0) && !r.users[strings.ToLower(s.OID)] && !r.userNames[strings.ToLower(s.PreferredUsername)] {
		return false, "the user is not in allowedUsers"
	}
	if len(r.groups) > 0 && !intersects(r.groups, s.Groups, true) {
		return false, "the user is in none of allowedGroups"
	}
	if len(r.roles) > 0 && !intersects(r.roles, s.Roles, false) {
		return false, "the user has none of allowedRoles"
	}
	if len(r.emailDomains) > 0 {
		at := strings.LastIndexByte(s.Email, '@')
		if at < 0 || !contains(r.emailDomains, strings.ToLower(s.Email[at+1:])) {
			return false, "the user's email is in none of allowedEmailDomains"
		}
	}
	return true, ""
}

// intersects reports whether have holds one of want. The joined form keeps
// the work in compiled strings functions: a user may be in 200 groups, and
// interpreted loops over them would cost on every request.
func intersects(want, have []string, foldCase bool) bool {
	if len(have) == 0 {
		return false
	}
	joined := "," + strings.Join(have, ",") + ","
	if foldCase {
		joined = strings.ToLower(joined)
	}
	for _, w := range want {
		if strings.Contains(joined, ","+w+",") {
			return true
		}
	}
	return false
}

// exclusions are requests that pass without authentication.
type exclusions struct {
	exact    map[string]bool
	prefixes []string
	methods  map[string]bool
}

func (e *exclusions) empty() bool {
	return len(e.exact) == 0 && len(e.prefixes) == 0 && len(e.methods) == 0
}

// match reports whether r needs no sign-in: an excluded method, or an
// excluded path (exact, or under an excluded prefix) that is plain (see
// plainPath). Every caller (authorize, and passCached through
// refuseCached) asks it, so that both decide alike.
func (e *exclusions) match(r *http.Request) bool {
	if e.methods[r.Method] {
		return true
	}
	p := r.URL.Path
	if !e.exact[p] && !hasAnyPrefix(p, e.prefixes) {
		return false
	}
	return plainPath(r.URL)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, prefix := range prefixes {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// unplain are the characters of a decoded path that some server between
// Traefik and the files may read otherwise than as a plain name, so that a
// path under an excluded prefix would reach something outside it:
//   - '\\' (raw or %5C): IIS and ASP.NET read it as '/';
//   - ';' (raw or %3B): servlet containers (Tomcat, Jetty, Spring) drop a
//     segment's ";..." part, so "/public/..;/admin" is /admin to them, and
//     Traefik's path cleaning leaves "..;" alone;
//   - '%' (the decoded %25): an upstream that decodes twice reads
//     "/public/%252e%252e/admin" as "/public/../admin";
//   - control characters: C servers may end the path at a NUL.
const unplain = "\\;%\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f" +
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f"

// plainPath reports whether u's path means the same to every server: clean
// (no "." or ".." segment in any spelling, "%2e" included: Path is
// decoded), none of the unplain characters, no encoded slash (some servers
// decode %2F), and valid UTF-8 (an overlong "%c0%ae" is a dot to some old
// decoders). It is asked only for a path that matched an exclusion, so the
// signed-in requests of other paths never pay for it.
func plainPath(u *url.URL) bool {
	p := u.Path
	if c := path.Clean(p); c != p && c+"/" != p {
		return false
	}
	return !strings.ContainsAny(p, unplain) && !strings.Contains(strings.ToLower(u.RawPath), "%2f") && utf8.ValidString(p)
}
