package entraid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// GraphScope is the delegated permission the group lookup needs: reading
// the signed-in user's own memberships requires only User.Read.
const GraphScope = "User.Read"

// maxGraphPages bounds the group lookup: 50 pages of 999 objects is far
// beyond any real membership list, and a loop of nextLinks must end.
const maxGraphPages = 50

// graphHosts maps authority hosts to their cloud's Microsoft Graph.
var graphHosts = map[string]string{
	"https://login.microsoftonline.com":        "https://graph.microsoft.com",
	"https://login.microsoftonline.us":         "https://graph.microsoft.us",
	"https://login.partner.microsoftonline.cn": "https://microsoftgraph.chinacloudapi.cn",
	"https://login.chinacloudapi.cn":           "https://microsoftgraph.chinacloudapi.cn",
}

// graphBase is the Microsoft Graph host of the client's cloud. A loopback
// authority (a test tenant) serves Graph itself.
func (c *Client) graphBase() string {
	if g := graphHosts[c.host]; g != "" {
		return g
	}
	return c.host
}

// Named, flat types: Yaegi's encoding/json handles them reliably.
type graphPage struct {
	Value    []graphObject `json:"value"`
	NextLink string        `json:"@odata.nextLink"`
}

type graphObject struct {
	Type string `json:"@odata.type"`
	ID   string `json:"id"`
}

type graphErrorBody struct {
	Error graphError `json:"error"`
}

type graphError struct {
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	InnerError graphInnerError `json:"innerError"`
}

type graphInnerError struct {
	RequestID string `json:"request-id"`
	Date      string `json:"date"`
}

// GroupMemberships returns the object IDs of every group the signed-in
// user is a member of, directly or through other groups, asking Microsoft
// Graph with the access token from the sign-in (which must carry
// User.Read). It is what a groups overage calls for: Entra ID leaves the
// groups out of tokens for users in more than 200. Graph's refusals are
// *Error; an unreachable Graph or a malformed answer is ErrUnavailable.
func (c *Client) GroupMemberships(ctx context.Context, accessToken string) ([]string, error) {
	if accessToken == "" {
		return nil, &Error{StatusCode: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Description: "the sign-in returned no access token for Microsoft Graph"}
	}
	base := c.graphBase()
	next := base + "/v1.0/me/transitiveMemberOf?" + url.Values{"$select": {"id"}, "$top": {"999"}}.Encode()
	var groups []string
	for page := 0; next != ""; page++ {
		if page == maxGraphPages {
			return nil, fmt.Errorf("%w: Microsoft Graph: more than %d pages of group memberships", ErrUnavailable, maxGraphPages)
		}
		// A nextLink from Graph must stay on Graph: the access token goes
		// with it.
		if !strings.HasPrefix(next, base+"/") {
			return nil, fmt.Errorf("%w: Microsoft Graph: nextLink %q leaves %s", ErrUnavailable, next, base)
		}
		p, err := c.graphGet(ctx, next, accessToken)
		if err != nil {
			return nil, err
		}
		for _, o := range p.Value {
			if o.Type == "#microsoft.graph.group" && o.ID != "" {
				groups = append(groups, strings.ToLower(o.ID))
			}
		}
		next = p.NextLink
	}
	return groups, nil
}

func (c *Client) graphGet(ctx context.Context, u, accessToken string) (*graphPage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: Microsoft Graph: %v", ErrUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: Microsoft Graph: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := readBody(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: Microsoft Graph: %v", ErrUnavailable, err)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return nil, fmt.Errorf("%w: Microsoft Graph: HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		var eb graphErrorBody
		if json.Unmarshal(body, &eb) != nil || eb.Error.Code == "" {
			return nil, fmt.Errorf("%w: Microsoft Graph: HTTP %d", ErrUnavailable, resp.StatusCode)
		}
		e := &Error{
			StatusCode:  resp.StatusCode,
			Code:        eb.Error.Code,
			Description: eb.Error.Message,
			TraceID:     eb.Error.InnerError.RequestID,
			Timestamp:   eb.Error.InnerError.Date,
		}
		return nil, e
	}
	var p graphPage
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: Microsoft Graph: answer is not JSON: %v", ErrUnavailable, err)
	}
	return &p, nil
}
