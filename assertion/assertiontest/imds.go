package assertiontest

import (
	"net/http"
	"strings"
)

// NewIMDS starts a fake Azure Instance Metadata Service token endpoint
// (GET /metadata/identity/oauth2/token). Like the real one it refuses
// requests without "Metadata: true" or with X-Forwarded-For, needs
// api-version and resource, and answers all-string JSON.
func NewIMDS() *Server {
	return newServer(KindIMDS)
}

func (s *Server) serveIMDS(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != IMDSTokenPath {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if status, msg := checkMetadataRequest(r, "2018-02-01", "2019-08-01"); status != 0 {
		imdsError(w, status, "invalid_request", msg)
		return
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		clientID = s.SystemClientID
	} else if !s.assigned(clientID) {
		imdsError(w, http.StatusBadRequest, "invalid_request", "Identity not found")
		return
	}
	if status := s.nextFault(); status != 0 {
		s.writeFault(w, status)
		return
	}
	resource := q.Get("resource")
	out := s.issue(clientID, resource)
	out["client_id"] = clientID
	out["resource"] = resource
	out["ext_expires_in"] = out["expires_in"]
	writeJSON(w, http.StatusOK, out)
}

// checkMetadataRequest applies the checks IMDS and the Arc agent share and
// returns the status and error description, or 0.
func checkMetadataRequest(r *http.Request, apiVersions ...string) (int, string) {
	q := r.URL.Query()
	switch {
	case r.Method != http.MethodGet:
		return http.StatusMethodNotAllowed, "Method " + r.Method + " is not supported"
	case r.Header.Get("X-Forwarded-For") != "":
		return http.StatusBadRequest, "Request contains X-Forwarded-For header; requests through a proxy are not allowed"
	case !strings.EqualFold(r.Header.Get("Metadata"), "true"):
		return http.StatusBadRequest, "Required metadata header not specified"
	case q.Get("api-version") == "":
		return http.StatusBadRequest, "Required query variable 'api-version' is missing"
	case !contains(apiVersions, q.Get("api-version")):
		return http.StatusBadRequest, "Invalid api-version '" + q.Get("api-version") + "'"
	case q.Get("resource") == "":
		return http.StatusBadRequest, "Required query variable 'resource' is missing"
	}
	return 0, ""
}

// imdsError answers in the IMDS (and Arc) error shape.
func imdsError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// writeFault answers an injected status in the kind's error shape.
func (s *Server) writeFault(w http.ResponseWriter, status int) {
	text := http.StatusText(status)
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	switch s.Kind {
	case KindAppService:
		writeJSON(w, status, map[string]interface{}{"statusCode": status, "message": text})
	case KindTsiam:
		code := "internal"
		if status < 500 {
			code = strings.ToLower(strings.ReplaceAll(text, " ", "_"))
		}
		writeJSON(w, status, map[string]string{"code": code, "message": text})
	default:
		code := "invalid_request"
		switch {
		case status == http.StatusNotFound:
			code = "not_found"
		case status == http.StatusGone:
			code = "gone"
		case status == http.StatusTooManyRequests:
			code = "too_many_requests"
		case status >= 500:
			code = "server_error"
		}
		imdsError(w, status, code, text)
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
