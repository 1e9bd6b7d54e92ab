// Package assertiontest serves fake workload identity endpoints for tests, in
// the style of net/http/httptest: Azure IMDS, App Service (also Functions and
// Container Apps), Azure Arc, and tsiam. Each fake listens on 127.0.0.1 with a
// random port, checks requests as the real service does (method, path, query,
// headers) and answers in its JSON shapes, records what it received, and can
// fail on demand. Tokens come from a Mint function the test may replace, e.g.
// to have a fake Entra tenant sign them.
package assertiontest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

// Kinds of fake.
const (
	KindIMDS       = "IMDS"
	KindAppService = "App Service"
	KindArc        = "Azure Arc"
	KindTsiam      = "tsiam"
)

// Paths the fakes serve their token endpoint on.
const (
	IMDSTokenPath       = "/metadata/identity/oauth2/token"
	AppServiceTokenPath = "/msi/token"
	TsiamTokenPath      = "/token"
)

// Request is a request a fake received and the status it answered.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   string
	Status int
}

// Server is a running fake. Its methods are safe while requests are being
// served; its fields are set before.
type Server struct {
	Kind string
	// URL is the base URL, e.g. http://127.0.0.1:41234. The token endpoint
	// is URL + the kind's path; Getenv gives what points a client at it.
	URL string
	// TenantID is the tenant of the identities the default Mint issues for.
	TenantID string
	// IdentityHeader is the secret App Service expects in X-IDENTITY-HEADER.
	IdentityHeader string
	// KeyDir is the folder Arc writes challenge key files to (a temp dir
	// removed by Close). Point ManagedIdentity.ArcTokenDir at it.
	KeyDir string
	// SystemClientID is the client ID of the system-assigned identity, used
	// when a request names none. For tsiam: the caller's node ID.
	SystemClientID string
	// Mint issues the token for a client ID (for tsiam: the node ID), e.g.
	// signed by a fake Entra tenant. nil: an unsigned JWT-shaped token (alg
	// "none") with realistic claims, aud = the requested resource. Set it
	// before the requests that should use it.
	Mint func(clientID string) (token string, expires time.Time)

	srv *httptest.Server

	mu          sync.Mutex
	statuses    []int
	delay       time.Duration
	numeric     bool
	identities  map[string]bool // assigned user-assigned identities; nil: any client ID works
	principals  map[string]string
	audiences   map[string]bool // tsiam: allowed audiences
	arcKeys     map[string]string
	forgedRealm string
	requests    []Request
}

func newServer(kind string) *Server {
	s := &Server{
		Kind:           kind,
		TenantID:       newGUID(),
		SystemClientID: newGUID(),
		principals:     map[string]string{},
		arcKeys:        map[string]string{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// Close shuts the fake down and removes its key folder.
func (s *Server) Close() {
	s.srv.Close()
	if s.KeyDir != "" {
		os.RemoveAll(s.KeyDir)
	}
}

// Env returns the environment variables that point a client at the fake.
func (s *Server) Env() map[string]string {
	switch s.Kind {
	case KindIMDS:
		return map[string]string{"AZURE_POD_IDENTITY_AUTHORITY_HOST": s.URL}
	case KindAppService:
		return map[string]string{"IDENTITY_ENDPOINT": s.URL + AppServiceTokenPath, "IDENTITY_HEADER": s.IdentityHeader}
	case KindArc:
		return map[string]string{"IDENTITY_ENDPOINT": s.URL + IMDSTokenPath, "IMDS_ENDPOINT": s.URL}
	}
	return map[string]string{}
}

// Getenv reads Env; pass it where a getenv function is expected.
func (s *Server) Getenv(name string) string { return s.Env()[name] }

// FailNext makes the next valid token requests answer these statuses, in
// order, in the service's error format; 0 answers normally.
func (s *Server) FailNext(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.statuses = append([]int(nil), statuses...)
}

// SetDelay delays every answer (until the client gives up).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetNumericExpiry sends expires_in/expires_on (and not_before) as JSON
// numbers instead of the strings the real services send.
func (s *Server) SetNumericExpiry(numeric bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.numeric = numeric
}

// AssignIdentities restricts the user-assigned identities (by client ID)
// this resource has: others get the service's "identity not found" answer.
// Until it is called, any client ID works.
func (s *Server) AssignIdentities(clientIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identities = map[string]bool{}
	for _, id := range clientIDs {
		s.identities[id] = true
	}
}

// PrincipalID returns the object (principal) ID of the identity with this
// client ID, the subject of its tokens and of a federated credential.
func (s *Server) PrincipalID(clientID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.principalLocked(clientID)
}

func (s *Server) principalLocked(clientID string) string {
	if p, ok := s.principals[clientID]; ok {
		return p
	}
	p := newGUID()
	s.principals[clientID] = p
	return p
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Hits returns how many requests the fake received.
func (s *Server) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// serveHTTP waits for the configured delay, lets the kind's handler answer
// and records the request. A request the client gave up on is recorded with
// status 0.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	rec := &recorder{w: w}
	if s.wait(r, delay) {
		switch s.Kind {
		case KindIMDS:
			s.serveIMDS(rec, r)
		case KindAppService:
			s.serveAppService(rec, r)
		case KindArc:
			s.serveArc(rec, r)
		case KindTsiam:
			s.serveTsiam(rec, r)
		}
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.Query(),
		Header: r.Header.Clone(),
		Body:   string(body),
		Status: rec.status,
	})
	s.mu.Unlock()
}

// wait sleeps for delay unless the client goes away first.
func (s *Server) wait(r *http.Request, delay time.Duration) bool {
	if delay <= 0 {
		return true
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// recorder remembers the status a handler wrote. It is a flat struct (no
// embedded interface) so that it behaves the same under Yaegi.
type recorder struct {
	w      http.ResponseWriter
	status int
}

func (r *recorder) Header() http.Header { return r.w.Header() }

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.w.Write(b)
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.w.WriteHeader(status)
}

// nextFault pops the next injected status, 0 when none.
func (s *Server) nextFault() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.statuses) == 0 {
		return 0
	}
	st := s.statuses[0]
	s.statuses = s.statuses[1:]
	return st
}

// assigned says whether a user-assigned identity may be used.
func (s *Server) assigned(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identities == nil || s.identities[clientID]
}

// issue mints a token for clientID and audience and returns the JSON fields
// of a token response with the expiry in the configured form.
func (s *Server) issue(clientID, audience string) map[string]interface{} {
	s.mu.Lock()
	numeric := s.numeric
	principal := s.principalLocked(clientID)
	s.mu.Unlock()
	now := time.Now()
	var token string
	var expires time.Time
	if s.Mint != nil {
		token, expires = s.Mint(clientID)
	} else {
		token, expires = s.defaultMint(clientID, principal, audience, now)
	}
	in := int64(expires.Sub(now).Round(time.Second) / time.Second)
	out := map[string]interface{}{"access_token": token, "token_type": "Bearer"}
	if numeric {
		out["expires_in"] = in
		out["expires_on"] = expires.Unix()
		out["not_before"] = now.Unix()
	} else {
		out["expires_in"] = strconv.FormatInt(in, 10)
		out["expires_on"] = strconv.FormatInt(expires.Unix(), 10)
		out["not_before"] = strconv.FormatInt(now.Unix(), 10)
	}
	return out
}

// defaultMint issues an unsigned token shaped like the real one.
func (s *Server) defaultMint(clientID, principal, audience string, now time.Time) (string, time.Time) {
	if s.Kind == KindTsiam {
		exp := now.Add(5 * time.Minute)
		return UnsignedJWT(map[string]interface{}{
			"iss": s.URL, "sub": clientID, "aud": []string{audience},
			"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(), "jti": newGUID(),
		}), exp
	}
	exp := now.Add(24 * time.Hour)
	return UnsignedJWT(map[string]interface{}{
		"iss": "https://login.microsoftonline.com/" + s.TenantID + "/v2.0", "sub": principal, "oid": principal,
		"aud": audience, "azp": clientID, "appid": clientID, "tid": s.TenantID, "ver": "2.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
	}), exp
}

// UnsignedJWT returns a JWT-shaped token with header {"alg":"none","typ":"JWT"}
// and these claims, and an empty signature: good for code that only decodes.
func UnsignedJWT(claims map[string]interface{}) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("assertiontest: claims: %v", err))
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return header + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// newGUID returns a random GUID-formatted string.
func newGUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomSecret returns a random URL-safe secret.
func randomSecret() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
