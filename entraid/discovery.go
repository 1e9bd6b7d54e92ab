package entraid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Metadata holds the endpoints a tenant's discovery document announces.
type Metadata struct {
	// Issuer is the expected "iss" of ID tokens. For organizations, common
	// and consumers it contains the literal placeholder "{tenantid}".
	Issuer                string
	AuthorizationEndpoint string
	TokenEndpoint         string
	JWKSURI               string
	EndSessionEndpoint    string
	// GraphHost is the Microsoft Graph host the tenant names
	// (msgraph_host), when it is one of its cloud's.
	GraphHost string
}

// discoveryDoc is the part of the OpenID configuration this package reads.
type discoveryDoc struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	SigningAlgs           []string `json:"id_token_signing_alg_values_supported"`
	GraphHost             string   `json:"msgraph_host"`
}

// Metadata returns the tenant's endpoints, fetching
// {host}/{tenant}/v2.0/.well-known/openid-configuration on first use and
// after 24 hours. Concurrent callers share one fetch. A failure is
// remembered for a few seconds; while it lasts, a previously fetched
// document is still served.
func (c *Client) Metadata(ctx context.Context) (*Metadata, error) {
	md, _, err := c.metadata(ctx)
	if err != nil {
		return nil, err
	}
	cp := *md
	return &cp, nil
}

// TenantID returns the tenant ID (a GUID, lower case) that this client's
// tokens carry in tid: the configured one or, for a tenant configured by a
// verified domain, the one the domain's discovery issuer names (fetched
// like Metadata). It is "" for organizations, common and consumers, whose
// tokens come from many tenants.
func (c *Client) TenantID(ctx context.Context) (string, error) {
	switch c.tenantKind {
	case tenantGUID:
		return c.tenant, nil
	case tenantMulti:
		return "", nil
	}
	_, tid, err := c.metadata(ctx)
	return tid, err
}

// metadata returns the cached document (not a copy) and, for a domain
// tenant, the tenant ID its issuer names.
func (c *Client) metadata(ctx context.Context) (*Metadata, string, error) {
	if err := acquire(ctx, c.mdSem); err != nil {
		return nil, "", err
	}
	defer func() { <-c.mdSem }()

	now := c.now()
	if c.md != nil && now.Before(c.mdExpires) {
		return c.md, c.mdTenantID, nil
	}
	if c.mdErr == nil || !now.Before(c.mdErrUntil) {
		md, tid, err := c.fetchMetadata(ctx)
		if err == nil {
			c.md = md
			c.mdTenantID = tid
			c.mdExpires = now.Add(metadataTTL)
			c.mdErr = nil
			return md, tid, nil
		}
		// A caller that gave up must not make others fail for a while.
		if ctx.Err() == nil {
			c.mdErr = err
			c.mdErrUntil = now.Add(failureTTL)
		}
		if c.md == nil {
			return nil, "", err
		}
	}
	if c.md != nil {
		return c.md, c.mdTenantID, nil
	}
	return nil, "", c.mdErr
}

func (c *Client) fetchMetadata(ctx context.Context) (*Metadata, string, error) {
	body, err := c.get(ctx, "discovery", c.metadataURL)
	if err != nil {
		return nil, "", err
	}
	var doc discoveryDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, "", fmt.Errorf("%w: discovery: %s is not an OpenID configuration: %v", ErrUnavailable, c.metadataURL, err)
	}
	md := &Metadata{
		Issuer:                doc.Issuer,
		AuthorizationEndpoint: doc.AuthorizationEndpoint,
		TokenEndpoint:         doc.TokenEndpoint,
		JWKSURI:               doc.JWKSURI,
		EndSessionEndpoint:    doc.EndSessionEndpoint,
	}
	md.GraphHost = c.announcedGraphHost(doc.GraphHost)
	for _, f := range []struct{ name, value string }{
		{"authorization_endpoint", md.AuthorizationEndpoint},
		{"token_endpoint", md.TokenEndpoint},
		{"jwks_uri", md.JWKSURI},
		{"end_session_endpoint", md.EndSessionEndpoint},
	} {
		if f.value == "" && f.name == "end_session_endpoint" {
			continue
		}
		if err := c.checkEndpoint(f.value); err != nil {
			return nil, "", fmt.Errorf("%w: discovery: %s %q: %v", ErrUnavailable, f.name, f.value, err)
		}
	}
	if len(doc.SigningAlgs) > 0 && !contains(doc.SigningAlgs, "RS256") {
		return nil, "", fmt.Errorf("%w: discovery: ID tokens are not signed with RS256 (%s)", ErrUnavailable, strings.Join(doc.SigningAlgs, ", "))
	}
	tid, err := c.checkIssuer(md.Issuer)
	if err != nil {
		return nil, "", fmt.Errorf("%w: discovery: issuer %q: %v", ErrUnavailable, md.Issuer, err)
	}
	return md, tid, nil
}

// checkEndpoint accepts absolute URLs on the authority (onAuthority).
func (c *Client) checkEndpoint(raw string) error {
	if raw == "" {
		return fmt.Errorf("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Host == "" || !c.onAuthority(u) {
		return fmt.Errorf("not on the authority host %s: endpoints elsewhere would receive the app's credentials or users", c.host)
	}
	return nil
}

// checkIssuer checks the discovery issuer against the configured tenant:
// "{host}/{tid}/v2.0" with tid the tenant's GUID, or the "{tenantid}"
// template for multi-tenant apps. It returns the tid of a domain tenant.
func (c *Client) checkIssuer(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("not an absolute URL")
	}
	if c.tenantKind == tenantMulti {
		if !strings.Contains(issuer, "{tenantid}") {
			return "", fmt.Errorf("tenant %q should announce the {tenantid} issuer template", c.tenant)
		}
		return "", nil
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[1] != "v2.0" || !IsGUID(parts[0]) {
		return "", fmt.Errorf("not of the form https://<host>/<tenant ID>/v2.0")
	}
	tid := strings.ToLower(parts[0])
	if c.tenantKind == tenantGUID && tid != c.tenant {
		return "", fmt.Errorf("names tenant %s, not the configured %s", tid, c.tenant)
	}
	return tid, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
