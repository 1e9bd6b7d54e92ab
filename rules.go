package entraauth

import (
	"net/http"
	"net/url"
	"path"
	"strings"

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

// match reports whether r needs no sign-in. A path that is not clean
// ("/public/../admin"), or holds a backslash or an encoded slash, never
// matches: the upstream might resolve it outside the excluded tree (IIS and
// ASP.NET read "\\" as "/", some servers decode "%2F").
func (e *exclusions) match(r *http.Request) bool {
	if e.methods[r.Method] {
		return true
	}
	p := r.URL.Path
	if len(e.exact) == 0 && len(e.prefixes) == 0 || !plainPath(r.URL) {
		return false
	}
	if e.exact[p] {
		return true
	}
	for _, prefix := range e.prefixes {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// plainPath reports whether u's path means the same to every server: clean,
// with no backslash (raw or encoded: Path is decoded) and no encoded slash.
func plainPath(u *url.URL) bool {
	p := u.Path
	if c := path.Clean(p); c != p && c+"/" != p {
		return false
	}
	return !strings.Contains(p, "\\") && !strings.Contains(strings.ToLower(u.RawPath), "%2f")
}
