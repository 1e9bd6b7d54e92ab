package entraid

import (
	"fmt"
	"net/url"
	"strings"
)

// A cloud is one instance of Entra ID (the public cloud, US Government,
// China): the hosts where its users sign in and its Microsoft Graph.
// National clouds are isolated: an app, its users and their tokens live in
// one cloud only.
type cloud struct {
	name string
	// graph is the cloud's Microsoft Graph; graphHosts are the Graph hosts
	// its discovery documents may name in msgraph_host (US Government's DoD
	// tenants have their own).
	graph      string
	graphHosts map[string]bool
}

var (
	publicCloud = &cloud{
		name:       "the public cloud",
		graph:      "https://graph.microsoft.com",
		graphHosts: map[string]bool{"graph.microsoft.com": true},
	}
	usGovernmentCloud = &cloud{
		name:       "US Government",
		graph:      "https://graph.microsoft.us",
		graphHosts: map[string]bool{"graph.microsoft.us": true, "dod-graph.microsoft.us": true},
	}
	chinaCloud = &cloud{
		name:       "China (21Vianet)",
		graph:      "https://microsoftgraph.chinacloudapi.cn",
		graphHosts: map[string]bool{"microsoftgraph.chinacloudapi.cn": true},
	}
)

// clouds maps every Entra ID sign-in host to its cloud: the hosts
// Microsoft's national-cloud documentation names, and the aliases
// Microsoft's own libraries (MSAL) accept for them. No other host is an
// authority: the app's credentials (a client secret, or a client assertion
// that other services may trust) are sent to its token endpoint.
var clouds = map[string]*cloud{
	"login.microsoftonline.com":        publicCloud,
	"login.microsoft.com":              publicCloud,
	"login.windows.net":                publicCloud,
	"login.microsoftonline.us":         usGovernmentCloud,
	"login.usgovcloudapi.net":          usGovernmentCloud,
	"login.partner.microsoftonline.cn": chinaCloud,
	"login.chinacloudapi.cn":           chinaCloud,
}

// AuthorityHosts names the documented sign-in hosts, for messages.
const AuthorityHosts = "https://login.microsoftonline.com (public cloud), https://login.microsoftonline.us (US Government) " +
	"or https://login.partner.microsoftonline.cn (China); http or https on a loopback address only for a test tenant"

// CheckAuthorityHost validates an authority host and returns it as
// "scheme://host" in lower case: https on one of Microsoft's sign-in hosts,
// or http or https on a loopback address (localhost, 127.0.0.0/8, [::1]),
// where test and development tenants run. A trailing slash is allowed.
func CheckAuthorityHost(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return DefaultAuthorityHost, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("entraid: AuthorityHost %q: %v", raw, err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.Trim(u.Path, "/") != "" {
		return "", fmt.Errorf("entraid: AuthorityHost %q must be a scheme and host only, e.g. %s (the tenant goes in Tenant)", raw, DefaultAuthorityHost)
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	switch {
	case isLoopback(u.Hostname()) && (scheme == "http" || scheme == "https"):
	case scheme != "https":
		return "", fmt.Errorf("entraid: AuthorityHost %q must use https", raw)
	case clouds[host] == nil:
		return "", fmt.Errorf("entraid: AuthorityHost %q is not a Microsoft Entra ID sign-in host: use %s", raw, AuthorityHosts)
	}
	return scheme + "://" + host, nil
}

// cloudOf returns the cloud of a checked authority host, nil for a
// loopback test tenant.
func cloudOf(authority string) *cloud {
	u, err := url.Parse(authority)
	if err != nil {
		return nil
	}
	return clouds[u.Host]
}

// onAuthority reports whether an endpoint from the discovery document may
// receive what this client sends: an https URL on a sign-in host of the
// client's cloud, or, for a test tenant, on the authority itself (same
// scheme, host and port). Discovery is fetched over TLS from the authority,
// but an endpoint elsewhere would still send the app's credentials
// (token), the user (authorization, end session) or trust (keys) off
// Microsoft's hosts.
func (c *Client) onAuthority(u *url.URL) bool {
	if c.cloud == nil {
		return strings.ToLower(u.Scheme+"://"+u.Host) == c.host
	}
	return u.Scheme == "https" && u.User == nil && clouds[strings.ToLower(u.Host)] == c.cloud
}

// announcedGraphHost keeps the Microsoft Graph host a discovery document
// names (msgraph_host) when it is one of the client's cloud's, else "".
func (c *Client) announcedGraphHost(host string) string {
	host = strings.ToLower(host)
	if c.cloud == nil || !c.cloud.graphHosts[host] {
		return ""
	}
	return host
}
