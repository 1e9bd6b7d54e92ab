package assertiontest

import "net/http"

// NewAppService starts a fake App Service managed identity endpoint (also
// Functions and Container Apps): GET /msi/token?api-version=2019-08-01 with
// the X-IDENTITY-HEADER secret. It answers expires_on as a string of Unix
// seconds and no expires_in, like the real one.
func NewAppService() *Server {
	s := newServer(KindAppService)
	s.IdentityHeader = randomSecret()
	return s
}

func (s *Server) serveAppService(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != AppServiceTokenPath {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	fail := func(status int, msg string) {
		writeJSON(w, status, map[string]interface{}{"statusCode": status, "message": msg})
	}
	switch {
	case r.Method != http.MethodGet:
		fail(http.StatusMethodNotAllowed, "Method "+r.Method+" is not supported")
		return
	case r.Header.Get("X-IDENTITY-HEADER") != s.IdentityHeader:
		fail(http.StatusBadRequest, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER")
		return
	case q.Get("api-version") != "2019-08-01":
		fail(http.StatusBadRequest, "Unsupported api-version '"+q.Get("api-version")+"'; use 2019-08-01")
		return
	case q.Get("resource") == "":
		fail(http.StatusBadRequest, "The resource query parameter is required")
		return
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		clientID = s.SystemClientID
	} else if !s.assigned(clientID) {
		fail(http.StatusBadRequest, "Unable to load the proper Managed Identity.")
		return
	}
	if status := s.nextFault(); status != 0 {
		s.writeFault(w, status)
		return
	}
	full := s.issue(clientID, q.Get("resource"))
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"access_token": full["access_token"],
		"expires_on":   full["expires_on"],
		"resource":     q.Get("resource"),
		"token_type":   "Bearer",
		"client_id":    clientID,
	})
}
