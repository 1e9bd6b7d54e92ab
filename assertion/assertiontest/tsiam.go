package assertiontest

import (
	"net/http"
	"strings"
)

// browserHeaders are the headers tsiam takes as a sign of a browser.
var browserHeaders = []string{"Origin", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User"}

// NewTsiam starts a fake tsiam: POST /token?resource=<audience> with a
// non-empty X-Tsiam header and no browser headers (Origin, Sec-Fetch-*),
// else 403. Errors are {"code","message"}; success values are all strings,
// expires_in "300". The caller's node ID is SystemClientID, passed to Mint.
// The Entra ID audiences are allowed; see AllowAudiences.
func NewTsiam() *Server {
	s := newServer(KindTsiam)
	s.SystemClientID = "nFAKE" + strings.ToUpper(randomSecret()[:8]) + "CNTRL"
	s.AllowAudiences("api://AzureADTokenExchange", "api://AzureADTokenExchangeUSGov", "api://AzureADTokenExchangeChina")
	return s
}

// AllowAudiences replaces tsiam's allowed audiences (its allowedAudiences
// setting); others answer 403 audience_not_allowed.
func (s *Server) AllowAudiences(audiences ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audiences = map[string]bool{}
	for _, a := range audiences {
		s.audiences[a] = true
	}
}

func (s *Server) serveTsiam(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		writeJSON(w, status, map[string]string{"code": code, "message": msg})
	}
	if r.URL.Path != TsiamTokenPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, "method_not_allowed", "Method Not Allowed")
		return
	}
	if r.Header.Get("X-Tsiam") == "" {
		fail(http.StatusForbidden, "no_browser", "missing header X-Tsiam")
		return
	}
	for _, h := range browserHeaders {
		if r.Header.Get(h) != "" {
			fail(http.StatusForbidden, "no_browser", "found browser header '"+h+"'")
			return
		}
	}
	q := r.URL.Query()
	resource := strings.TrimSpace(q.Get("resource"))
	audience := strings.TrimSpace(q.Get("audience"))
	switch {
	case resource != "" && audience != "" && resource != audience:
		fail(http.StatusBadRequest, "audience_conflict", "resource and audience differ")
		return
	case resource == "":
		resource = audience
	}
	if resource == "" {
		fail(http.StatusBadRequest, "missing_audience", "Missing resource or audience parameter")
		return
	}
	s.mu.Lock()
	allowed := s.audiences[resource]
	s.mu.Unlock()
	if !allowed {
		fail(http.StatusForbidden, "audience_not_allowed", "Audience is not allowed")
		return
	}
	if status := s.nextFault(); status != 0 {
		s.writeFault(w, status)
		return
	}
	writeJSON(w, http.StatusOK, s.issue(s.SystemClientID, resource))
}
