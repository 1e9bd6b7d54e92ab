// Package browser is what a signed-in user's browser sends: the headers of
// a Chromium navigation, in Chromium's order and spelling, and a Cookie
// header with the session and two of the site's own cookies. make bench
// sends it by default, because the plugin's cost depends on the request
// (every header is a map entry Yaegi may range over), and a benchmark of
// Host and Cookie alone flatters it.
package browser

import (
	"net/http"
	"strings"
)

// SiteCookies are the application's own cookies, around the session in
// the Cookie header: they must reach the upstream byte for byte.
const SiteCookies = "_ga=GA1.1.1409876543.1733011200; theme=dark"

// CookieHeader is the Cookie header a browser sends with session (one or
// more "name=value" pairs of the session cookie) among the site's cookies.
func CookieHeader(session string) string {
	i := strings.Index(SiteCookies, "; ")
	return SiteCookies[:i] + "; " + session + SiteCookies[i:]
}

// Lines are the header lines of Chromium 131 on Linux navigating to a page
// of host from another page of the same site, as wrk's -H arguments, in
// the order Chromium sends them, with cookie as the Cookie header (none
// when empty). Host and Connection are wrk's own.
func Lines(host, cookie string) []string {
	lines := []string{
		`sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"`,
		`sec-ch-ua-mobile: ?0`,
		`sec-ch-ua-platform: "Linux"`,
		`Upgrade-Insecure-Requests: 1`,
		`User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36`,
		`Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7`,
		`Sec-Fetch-Site: same-origin`,
		`Sec-Fetch-Mode: navigate`,
		`Sec-Fetch-User: ?1`,
		`Sec-Fetch-Dest: document`,
		`Referer: https://` + host + `/`,
		`Accept-Encoding: gzip, deflate, br, zstd`,
		`Accept-Language: en-US,en;q=0.9`,
	}
	if cookie != "" {
		lines = append(lines, "Cookie: "+cookie)
	}
	return append(lines, `Priority: u=0, i`)
}

// Header is Lines as Go's server hands them to a handler.
func Header(host, cookie string) http.Header {
	h := http.Header{}
	for _, line := range Lines(host, cookie) {
		i := strings.Index(line, ": ")
		h.Add(line[:i], line[i+2:])
	}
	return h
}

// Navigation is Header as a middleware behind Traefik's entry point sees
// it: with the X-Forwarded-* headers and X-Real-Ip the entry point adds.
func Navigation(host, cookie string) http.Header {
	h := Header(host, cookie)
	h.Set("X-Forwarded-For", "192.0.2.10")
	h.Set("X-Forwarded-Host", host)
	h.Set("X-Forwarded-Port", "443")
	h.Set("X-Forwarded-Proto", "https")
	h.Set("X-Forwarded-Server", "traefik-1")
	h.Set("X-Real-Ip", "192.0.2.10")
	return h
}
