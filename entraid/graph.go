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

// graphBase is the Microsoft Graph of the client's cloud: the host its
// discovery names, when it is one of the cloud's (DoD tenants have their
// own), else the cloud's default. A loopback authority (a test tenant)
// serves Graph itself. The access token goes there, never elsewhere.
func (c *Client) graphBase(md *Metadata) string {
	if c.cloud == nil {
		return c.host
	}
	if md != nil && md.GraphHost != "" {
		return "https://" + md.GraphHost
	}
	return c.cloud.graph
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
// groups out of tokens for users in more than 200. Graph's error answers,
// 5xx included, are *Error; an unreachable Graph or an answer without
// Graph's error body is ErrUnavailable.
func (c *Client) GroupMemberships(ctx context.Context, accessToken string) ([]string, error) {
	if accessToken == "" {
		return nil, &Error{Endpoint: "Microsoft Graph", StatusCode: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Description: "the sign-in returned no access token for Microsoft Graph"}
	}
	md, _, err := c.metadata(ctx)
	if err != nil {
		return nil, err
	}
	base := c.graphBase(md)
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
	if resp.StatusCode != http.StatusOK {
		// Every error answer with Graph's error body keeps its code and
		// request ID (serviceNotAvailable, activityLimitReached, ...), 5xx
		// included: they are what an administrator searches for. Only an
		// answer without one is a bare outage.
		var eb graphErrorBody
		if json.Unmarshal(body, &eb) != nil || eb.Error.Code == "" {
			return nil, fmt.Errorf("%w: Microsoft Graph: HTTP %d", ErrUnavailable, resp.StatusCode)
		}
		e := &Error{
			Endpoint:    "Microsoft Graph",
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
