package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/session"
)

// userAgent is a browser with a cookie jar that follows no redirect by
// itself, so that each hop of a sign-in can be checked and timed.
type userAgent struct {
	hc  *http.Client
	jar *cookiejar.Jar
}

func newUserAgent(cert *certificate) *userAgent {
	jar, _ := cookiejar.New(nil)
	return &userAgent{
		jar: jar,
		hc: &http.Client{
			Jar:       jar,
			Transport: &http.Transport{TLSClientConfig: cert.clientTLS()},
			Timeout:   20 * time.Second,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// get requests rawURL as a navigation and returns the status, the Location
// header and the body (read in full, so that the connection is reused).
func (b *userAgent) get(ctx context.Context, rawURL string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := b.hc.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, "", "", err
	}
	loc := resp.Header.Get("Location")
	if loc != "" {
		u, err := resp.Request.URL.Parse(loc)
		if err != nil {
			return 0, "", "", err
		}
		loc = u.String()
	}
	return resp.StatusCode, loc, string(body), nil
}

// expect fetches rawURL and checks its status.
func (b *userAgent) expect(ctx context.Context, rawURL string, status int) (string, string, error) {
	got, loc, body, err := b.get(ctx, rawURL)
	if err != nil {
		return "", "", err
	}
	if got != status {
		return "", "", fmt.Errorf("GET %s: %d, want %d: %.300s", rawURL, got, status, body)
	}
	return loc, body, nil
}

// cookieHeader is the Cookie header the jar sends to rawURL, limited to the
// cookies keep accepts.
func (b *userAgent) cookieHeader(rawURL string, keep func(name string) bool) string {
	u, _ := url.Parse(rawURL)
	var parts []string
	for _, c := range b.jar.Cookies(u) {
		if keep(c.Name) {
			parts = append(parts, c.Name+"="+c.Value)
		}
	}
	return strings.Join(parts, "; ")
}

// signIn is one finished sign-in: the session cookies to send and what the
// callback (code redemption and ID token verification) took.
type signIn struct {
	cookie   string
	callback time.Duration
	total    time.Duration
}

// pluginSignIn signs in through the plugin the way a browser does: the
// first visit redirects to the tenant, which approves at once and redirects
// to the callback, which redeems the code, verifies the ID token, sets the
// session cookie and sends the browser back.
func pluginSignIn(ctx context.Context, cert *certificate, ep *entrypoint, cookieName string) (*signIn, error) {
	return pluginSignInWith(ctx, newUserAgent(cert), ep, cookieName)
}

// pluginSignInWith is pluginSignIn with the user agent b, whose jar keeps
// every cookie the sign-in set.
func pluginSignInWith(ctx context.Context, b *userAgent, ep *entrypoint, cookieName string) (*signIn, error) {
	start := time.Now()
	authorize, _, err := b.expect(ctx, ep.url("/"), http.StatusFound)
	if err != nil {
		return nil, fmt.Errorf("first visit: %v", err)
	}
	callback, _, err := b.expect(ctx, authorize, http.StatusFound)
	if err != nil {
		return nil, fmt.Errorf("tenant: %v", err)
	}
	if !strings.HasPrefix(callback, ep.url("/portals/")) {
		return nil, fmt.Errorf("tenant redirected to %s, not to the callback", callback)
	}
	cbStart := time.Now()
	back, _, err := b.expect(ctx, callback, http.StatusFound)
	cb := time.Since(cbStart)
	if err != nil {
		return nil, fmt.Errorf("callback: %v", err)
	}
	if _, body, err := b.expect(ctx, back, http.StatusOK); err != nil || body != upstreamBody {
		return nil, fmt.Errorf("back from the sign-in: %q, %v", body, err)
	}
	s := &signIn{callback: cb, total: time.Since(start)}
	s.cookie = b.cookieHeader(ep.url("/"), func(name string) bool {
		return session.IsChunkName(cookieName, name)
	})
	if s.cookie == "" {
		return nil, errors.New("no session cookie after the sign-in")
	}
	return s, nil
}

// oauth2ProxySignIn does oauth2-proxy's login flow: /oauth2/start
// redirects to the tenant, which redirects to /oauth2/callback, which
// redeems the code, verifies the ID token and sets the session cookie.
func oauth2ProxySignIn(ctx context.Context, cert *certificate, o *oauth2Proxy) (*signIn, error) {
	b := newUserAgent(cert)
	start := time.Now()
	authorize, _, err := b.expect(ctx, o.url("/oauth2/start?rd=%2F"), http.StatusFound)
	if err != nil {
		return nil, fmt.Errorf("oauth2-proxy start: %v", err)
	}
	callback, _, err := b.expect(ctx, authorize, http.StatusFound)
	if err != nil {
		return nil, fmt.Errorf("tenant: %v", err)
	}
	if !strings.HasPrefix(callback, o.url("/oauth2/callback")) {
		return nil, fmt.Errorf("tenant redirected to %s, not to oauth2-proxy's callback", callback)
	}
	cbStart := time.Now()
	_, _, err = b.expect(ctx, callback, http.StatusFound)
	cb := time.Since(cbStart)
	if err != nil {
		return nil, fmt.Errorf("oauth2-proxy callback: %v", err)
	}
	s := &signIn{callback: cb, total: time.Since(start)}
	s.cookie = b.cookieHeader(o.url("/"), func(name string) bool {
		return strings.HasPrefix(name, "_oauth2_proxy") && !strings.Contains(name, "csrf")
	})
	if s.cookie == "" {
		return nil, errors.New("no oauth2-proxy session cookie after the sign-in")
	}
	return s, nil
}

const alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphanumeric[int(b[i])%len(alphanumeric)]
	}
	return string(b)
}
