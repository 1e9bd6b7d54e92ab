package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// maxRequestCookie is the most the plugin's cookies may weigh on an
// ordinary request, whatever the user's groups and refresh token.
const maxRequestCookie = 1024

// cookieSize is what a browser sends of the plugin's cookies once signed
// in, for a user in groups groups with a refresh token of refreshToken
// characters.
type cookieSize struct {
	groups, refreshToken int
	// request and requestCookies: the plugin's cookies on every request
	// (Cookie header bytes, and how many cookies); portal: on a request
	// under the portal's path, the restore hop's.
	request, requestCookies, portal int
}

// measureCookieSizes signs a user in through ep for each number of groups
// and refresh-token size, and reads what the browser's jar then sends,
// failing when an ordinary request would carry more than maxRequestCookie
// bytes of the plugin's cookies.
func measureCookieSizes(ctx context.Context, cert *certificate, tenant *entraidtest.Tenant, ep *entrypoint, cookieName string) ([]cookieSize, error) {
	defer tenant.SetSignIn(alice.PreferredUsername)
	defer tenant.SetRefreshTokenLength(0)
	var out []cookieSize
	for _, rt := range refreshTokenSizes {
		tenant.SetRefreshTokenLength(rt)
		for _, n := range groupCounts {
			u := alice
			if n != len(alice.Groups) {
				u = groupsUser(n)
			}
			tenant.SetSignIn(u.PreferredUsername)
			b := newUserAgent(cert)
			if _, err := pluginSignInWith(ctx, b, ep, cookieName); err != nil {
				return nil, fmt.Errorf("cookie sizes: sign-in of a user in %d groups: %v", n, err)
			}
			every := func(string) bool { return true }
			sent := b.cookieHeader(ep.url("/"), every)
			cs := cookieSize{
				groups:         n,
				refreshToken:   rt,
				request:        len(sent),
				requestCookies: strings.Count(sent, "; ") + 1,
				portal:         len(b.cookieHeader(ep.url("/portals/"+portal+"/session"), every)),
			}
			if cs.request > maxRequestCookie {
				return nil, fmt.Errorf("cookie sizes: a user in %d groups with a refresh token of %d characters sends %d bytes of the plugin's cookies with every request, more than %d: %.120s…", n, rt, cs.request, maxRequestCookie, sent)
			}
			out = append(out, cs)
		}
	}
	return out, nil
}
