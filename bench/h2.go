package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tfa-plugin/entraauth/bench/browser"
	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// h2Set is the HTTP/2 configuration set. Each route gets the cookies a
// browser sends it: the site's own to a route without the plugin (H1),
// and the site's with the plugin's session cookie to the plugin's (H3,
// H4, H5). H2 is the do-nothing plugin sent the plugin route's cookies,
// so that H3/H2 is the plugin's own work, and H3/H1 what a signed-in
// request costs beside a route that needs no sign-in. H4 and H5 are users
// in 50 and 200 groups: their X-Forwarded-Groups is real work the
// do-nothing plugin does not do.
type h2Set struct {
	noopSite, noopSame, plugin, plugin50, plugin200 *config
}

// newH2Set makes the set on the do-nothing plugin's and the plugin's
// entry points of the HTTP/1.1 configurations and three of its own.
func newH2Set(noop, plugin *config, noopMiddleware, pluginMiddleware map[string]interface{}) *h2Set {
	return &h2Set{
		noopSite:  &config{title: "H1. do-nothing plugin, the site's cookies", ep: &entrypoint{name: "noopsite", middleware: noopMiddleware}},
		noopSame:  &config{title: "H2. do-nothing plugin, the plugin's cookies", ep: noop.ep},
		plugin:    &config{title: "H3. entraauth plugin, 2 groups", ep: plugin.ep},
		plugin50:  &config{title: "H4. entraauth plugin, 50 groups", ep: &entrypoint{name: "plugin50", middleware: pluginMiddleware}},
		plugin200: &config{title: "H5. entraauth plugin, 200 groups", ep: &entrypoint{name: "plugin200", middleware: pluginMiddleware}},
	}
}

func (h *h2Set) configs() []*config {
	return []*config{h.noopSite, h.noopSame, h.plugin, h.plugin50, h.plugin200}
}

// signIn signs the users in 50 and 200 groups in through their entry
// points, and sets every configuration's requests and what the upstream
// must see of them; H2 and H3 send what 2 and 3 send.
func (h *h2Set) signIn(ctx context.Context, o *options, cert *certificate, tenant *entraidtest.Tenant, headers map[string]string, cookieName string, noop, plugin *config) error {
	kept := o.siteCookies()
	for _, x := range []struct {
		c *config
		n int
	}{{h.plugin50, 50}, {h.plugin200, 200}} {
		u := groupsUser(x.n)
		tenant.SetSignIn(u.PreferredUsername)
		si, err := pluginSignIn(ctx, cert, x.c.ep, cookieName)
		tenant.SetSignIn(alice.PreferredUsername)
		if err != nil {
			return fmt.Errorf("sign-in of the user in %d groups: %v", x.n, err)
		}
		x.c.lines = o.requestLines(si.cookie)
		x.c.want = expectation{identity: identityValues(headers, u), cookie: kept, checkCookie: true}
	}
	// The site's cookies only (none with -minimal).
	h.noopSite.lines = o.headerLines()
	if !o.minimal {
		h.noopSite.lines = browser.Lines("app.example", kept)
	}
	h.noopSite.want = expectation{cookie: kept, checkCookie: true, noop: true}
	h.noopSame.lines, h.noopSame.want = noop.lines, noop.want
	h.plugin.lines, h.plugin.want = plugin.lines, plugin.want
	return nil
}

// cookieBytes is the Cookie header bytes of the plugin's cookies sent with
// a request.
func cookieBytes(lines []string) int {
	for _, line := range lines {
		if name, value, ok := strings.Cut(line, ": "); ok && http.CanonicalHeaderKey(name) == "Cookie" {
			return len(value)
		}
	}
	return 0
}

// HTTP/2 as browsers talk it: TLS with ALPN h2, a few connections each
// carrying several requests at once, HPACK-compressed headers. wrk speaks
// HTTP/1.1 only; h2load (nghttp2's wrk, an event loop in C as well) loads
// the same entry points over HTTP/2.

// runH2load loads rawURL with h2load for d from clients connections of
// streams concurrent requests each, sending the header lines with every
// request, and reads the latency of each request from its log in dir.
func runH2load(ctx context.Context, bin string, clients, streams int, d time.Duration, rawURL string, lines []string, dir string) (*wrkResult, error) {
	log, err := os.CreateTemp(dir, "h2load-*.log")
	if err != nil {
		return nil, err
	}
	log.Close()
	defer os.Remove(log.Name())
	args := []string{
		"-c", strconv.Itoa(clients),
		"-m", strconv.Itoa(streams),
		"-D", strconv.Itoa(int((d + time.Second - 1) / time.Second)),
		"--log-file=" + log.Name(),
	}
	out, err := runLoad(ctx, "h2load", bin, args, h2Lines(lines), d, rawURL)
	if err != nil {
		return nil, err
	}
	res, err := parseH2load(string(out))
	if err != nil {
		return nil, fmt.Errorf("h2load %s: %v:\n%s", rawURL, err, out)
	}
	latencies, err := readH2loadLog(log.Name())
	if err != nil {
		return nil, fmt.Errorf("h2load %s: %v", rawURL, err)
	}
	res.p50, res.p99 = percentile(latencies, 50), percentile(latencies, 99)
	return res, nil
}

// h2Lines are header lines as h2load sends them: HTTP/2 field names are
// lower case.
func h2Lines(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		if i := strings.Index(line, ": "); i > 0 {
			line = strings.ToLower(line[:i]) + line[i:]
		}
		out = append(out, line)
	}
	return out
}

var (
	h2Finished = regexp.MustCompile(`^finished in ([0-9.]+)(ms|s), ([0-9.]+) req/s`)
	h2Requests = regexp.MustCompile(`^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Statuses = regexp.MustCompile(`^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// parseH2load reads h2load's report (nghttp2 1.52). A run that did not
// speak HTTP/2 is an error: the set measures HTTP/2.
func parseH2load(out string) (*wrkResult, error) {
	r := &wrkResult{}
	var haveFinished, haveRequests, haveStatuses, h2 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "Application protocol: h2" {
			h2 = true
		}
		if m := h2Finished.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			if m[2] == "ms" {
				v /= 1000
			}
			r.seconds = v
			r.rps, _ = strconv.ParseFloat(m[3], 64)
			haveFinished = true
		}
		if m := h2Requests.FindStringSubmatch(line); m != nil {
			// total, done, succeeded, failed, errored, timeout
			n := atoi64s(m[1:])
			r.requests = n[2]
			// Failed, errored or timed out: a socket's trouble.
			r.socketErrors = n[3] + n[4] + n[5]
			haveRequests = true
		}
		if m := h2Statuses.FindStringSubmatch(line); m != nil {
			n := atoi64s(m[1:])
			r.non2xx3xx = n[2] + n[3]
			haveStatuses = true
		}
	}
	switch {
	case !h2:
		return nil, fmt.Errorf("the connection did not negotiate HTTP/2 (no %q)", "Application protocol: h2")
	case !haveFinished || !haveRequests || !haveStatuses:
		return nil, fmt.Errorf("no duration, request count or status codes in h2load's output")
	}
	return r, nil
}

func atoi64s(ss []string) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i], _ = strconv.ParseInt(s, 10, 64)
	}
	return out
}

// readH2loadLog returns the latency of each request of an h2load log:
// tab-separated start (µs since the epoch), status and µs until the end
// of the response.
func readH2loadLog(name string) ([]time.Duration, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			return nil, fmt.Errorf("%s: bad line %q", filepath.Base(name), sc.Text())
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad line %q", filepath.Base(name), sc.Text())
		}
		out = append(out, time.Duration(us)*time.Microsecond)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no request logged", filepath.Base(name))
	}
	return out, nil
}
