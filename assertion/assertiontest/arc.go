package assertiontest

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// NewArc starts a fake Azure Arc (Connected Machine agent) identity endpoint.
// A token request without Authorization answers 401 with
// "WWW-Authenticate: Basic realm=<KeyDir>/<random>.key", having written a
// secret there; the request sent again with "Authorization: Basic <secret>"
// gets the token. Arc has only the system-assigned identity.
func NewArc() *Server {
	dir, err := os.MkdirTemp("", "assertiontest-arc-")
	if err != nil {
		panic("assertiontest: " + err.Error())
	}
	s := newServer(KindArc)
	s.KeyDir = dir
	return s
}

// ForgeChallenge makes the next challenges name realm (any path) instead of
// a fresh key file, to test that clients refuse to read it.
func (s *Server) ForgeChallenge(realm string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgedRealm = realm
}

func (s *Server) serveArc(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != IMDSTokenPath {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if status, msg := checkMetadataRequest(r, "2019-11-01", "2020-06-01"); status != 0 {
		imdsError(w, status, "invalid_request", msg)
		return
	}
	if q.Get("client_id") != "" || q.Get("object_id") != "" || q.Get("msi_res_id") != "" {
		imdsError(w, http.StatusBadRequest, "invalid_request", "User assigned identities are not supported by Azure Arc")
		return
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		realm, err := s.challenge()
		if err != nil {
			imdsError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
		w.Header().Set("WWW-Authenticate", "Basic realm="+realm)
		imdsError(w, http.StatusUnauthorized, "unauthorized", "Authorization header is missing")
		return
	}
	secret := strings.TrimSpace(strings.TrimPrefix(auth, "Basic "))
	if !strings.HasPrefix(auth, "Basic ") || !s.redeem(secret) {
		imdsError(w, http.StatusUnauthorized, "unauthorized", "Invalid or expired key")
		return
	}
	if status := s.nextFault(); status != 0 {
		s.writeFault(w, status)
		return
	}
	resource := q.Get("resource")
	out := s.issue(s.SystemClientID, resource)
	out["resource"] = resource
	writeJSON(w, http.StatusOK, out)
}

// challenge writes a fresh key file and returns its path (or the forged realm).
func (s *Server) challenge() (string, error) {
	s.mu.Lock()
	forged := s.forgedRealm
	s.mu.Unlock()
	if forged != "" {
		return forged, nil
	}
	secret := randomSecret()
	path := filepath.Join(s.KeyDir, newGUID()+".key")
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return "", err
	}
	s.mu.Lock()
	s.arcKeys[secret] = path
	s.mu.Unlock()
	return path, nil
}

// redeem accepts a secret once and removes its key file.
func (s *Server) redeem(secret string) bool {
	s.mu.Lock()
	path, ok := s.arcKeys[secret]
	delete(s.arcKeys, secret)
	s.mu.Unlock()
	if ok {
		os.Remove(path)
	}
	return ok
}
