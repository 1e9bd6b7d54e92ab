package entraauth

import (
	"net/http"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// Identity headers set on signed-in requests. Client-sent copies are always
// removed first, so an upstream can trust them.
const (
	headerUser              = "X-Forwarded-User"
	headerEmail             = "X-Forwarded-Email"
	headerName              = "X-Forwarded-Name"
	headerPreferredUsername = "X-Forwarded-Preferred-Username"
	headerGroups            = "X-Forwarded-Groups"
	headerRoles             = "X-Forwarded-Roles"
)

var identityHeaders = []string{headerUser, headerEmail, headerName, headerPreferredUsername, headerGroups, headerRoles}

// stripIdentityHeaders removes every identity header, whatever its casing:
// http.Header keys are canonical for parsed requests, but a handler earlier
// in the chain may have added raw keys.
func stripIdentityHeaders(h http.Header) {
	for _, name := range identityHeaders {
		h.Del(name)
	}
	for k := range h {
		if len(k) > 12 && strings.EqualFold(k[:12], "X-Forwarded-") {
			for _, name := range identityHeaders {
				if strings.EqualFold(k, name) {
					delete(h, k)
				}
			}
		}
	}
}

// setIdentityHeaders tells the upstream who is signed in.
func setIdentityHeaders(h http.Header, s *session.Session) {
	setHeader(h, headerUser, s.OID)
	setHeader(h, headerEmail, s.Email)
	setHeader(h, headerName, s.Name)
	setHeader(h, headerPreferredUsername, s.PreferredUsername)
	setHeader(h, headerGroups, strings.Join(s.Groups, ","))
	setHeader(h, headerRoles, strings.Join(s.Roles, ","))
}

func setHeader(h http.Header, name, value string) {
	value = sanitizeHeaderValue(value)
	if value != "" {
		h[name] = []string{value}
	}
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

// openSession returns the signed-in user's session, or nil when there is
// none or it is expired, tampered with or sealed with an unknown secret:
// all of which simply mean "sign in again".
func (m *Middleware) openSession(r *http.Request) *session.Session {
	value, err := session.ReadChunked(r, m.cookie.Name)
	if err != nil || value == "" {
		return nil
	}
	now := m.now()
	plain, err := m.sealer.Open(value, m.cookie.Name, now)
	if err != nil {
		return nil
	}
	s, err := session.Unmarshal(plain)
	if err != nil || s.Expires <= now.Unix() {
		return nil
	}
	return s
}

// writeSession seals s into the session cookie (split into chunks when
// large).
func (m *Middleware) writeSession(w http.ResponseWriter, r *http.Request, s *session.Session) error {
	plain, err := s.Marshal()
	if err != nil {
		return err
	}
	sealed, err := m.sealer.Seal(plain, m.cookie.Name, time.Unix(s.Expires, 0))
	if err != nil {
		return err
	}
	return session.SetChunked(w.Header(), r, m.cookie, sealed)
}

// stripOwnCookies removes the plugin's cookies from the request, so that
// the upstream never sees the session. Other cookies pass untouched, byte
// for byte.
func (m *Middleware) stripOwnCookies(r *http.Request) {
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return
	}
	var kept []string
	for _, line := range lines {
		var parts []string
		changed := false
		for _, part := range strings.Split(line, ";") {
			name := strings.TrimSpace(part)
			if i := strings.IndexByte(name, '='); i >= 0 {
				name = name[:i]
			}
			if m.isOwnCookie(name) {
				changed = true
				continue
			}
			parts = append(parts, strings.TrimSpace(part))
		}
		if !changed {
			kept = append(kept, line)
		} else if len(parts) > 0 {
			kept = append(kept, strings.Join(parts, "; "))
		}
	}
	if len(kept) == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header["Cookie"] = kept
}

func (m *Middleware) isOwnCookie(name string) bool {
	return session.IsChunkName(m.cookie.Name, name) || strings.HasPrefix(name, m.loginPrefix)
}
