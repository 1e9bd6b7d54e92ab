package entraidtest

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/jwt"
)

// GraphMemberOfPath is where the fake serves Microsoft Graph's list of the
// signed-in user's transitive memberships.
const GraphMemberOfPath = "/v1.0/me/transitiveMemberOf"

// graphDefaultPage is Graph's default page size for directory objects; $top
// may ask for up to graphMaxPage.
const (
	graphDefaultPage = 100
	graphMaxPage     = 999
)

// serveGraph answers GET /v1.0/me/transitiveMemberOf as Microsoft Graph
// does for a delegated token with User.Read: the user's groups (and a
// directory role, which callers must skip) as objects with only @odata.type
// and id, paged with @odata.nextLink.
func (t *Tenant) serveGraph(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		graphError(w, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
		return
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "Bearer ") {
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return
	}
	u, ok := t.graphUser(strings.TrimPrefix(auth, "Bearer "))
	if !ok {
		graphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return
	}
	q := r.URL.Query()
	top := graphDefaultPage
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > graphMaxPage {
			graphError(w, http.StatusBadRequest, "Request_BadRequest", "Invalid page size specified: '"+v+"'. Must be between 1 and 999 inclusive.")
			return
		}
		top = n
	}
	t.mu.Lock()
	if t.graphPageSize > 0 && top > t.graphPageSize {
		top = t.graphPageSize
	}
	t.mu.Unlock()
	// The directory role first, then the groups: what the caller must
	// filter out can be on any page.
	objects := []map[string]interface{}{{"@odata.type": "#microsoft.graph.directoryRole", "id": "62e90394-69f5-4237-9190-012177145e10"}}
	for _, g := range u.Groups {
		objects = append(objects, map[string]interface{}{"@odata.type": "#microsoft.graph.group", "id": g})
	}
	skip := 0
	if v := q.Get("$skiptoken"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "skip"))
		if err != nil || n < 0 || n > len(objects) {
			graphError(w, http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		skip = n
	}
	end := skip + top
	if end > len(objects) {
		end = len(objects)
	}
	page := objects[skip:end]
	body := map[string]interface{}{
		"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
		"value":          page,
	}
	if end < len(objects) {
		next := *r.URL
		nq := next.Query()
		nq.Set("$skiptoken", "skip"+strconv.Itoa(end))
		next.RawQuery = nq.Encode()
		body["@odata.nextLink"] = t.URL + next.RequestURI()
	}
	writeJSON(w, http.StatusOK, body)
}

// SetGraphPageSize makes the fake Graph return at most n objects a page,
// whatever $top asks for, so that tests see paging; 0 restores $top.
func (t *Tenant) SetGraphPageSize(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.graphPageSize = n
}

// GraphAccessToken returns an access token for Microsoft Graph, as the
// sign-in of the user named username (preferred_username) would get it.
func (t *Tenant) GraphAccessToken(username string) string {
	u, ok := t.user(username)
	if !ok {
		panic("entraidtest: no user " + username)
	}
	tok, err := t.graphAccessToken(u, "openid profile User.Read")
	if err != nil {
		panic(err)
	}
	return tok
}

// graphUser finds the user of an access token this tenant issued for
// Microsoft Graph.
func (t *Tenant) graphUser(raw string) (User, bool) {
	tok, err := jwt.Parse(raw)
	if err != nil || tok.String("aud") != graphAppID {
		return User{}, false
	}
	key := t.publicKeys()[tok.Header.Kid]
	if key == nil || tok.VerifyRS256(key) != nil {
		return User{}, false
	}
	if exp, ok := tok.Time("exp"); !ok || !t.now().Before(exp) {
		return User{}, false
	}
	oid := tok.String("oid")
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, u := range t.Users {
		if u.OID == oid {
			return u, true
		}
	}
	return User{}, false
}

// graphError writes Microsoft Graph's error shape.
func graphError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]interface{}{
		"error": map[string]interface{}{
			"code":    code,
			"message": message,
			"innerError": map[string]interface{}{
				"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
				"request-id":        newGUID(),
				"client-request-id": newGUID(),
			},
		},
	})
}
