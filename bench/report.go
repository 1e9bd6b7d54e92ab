package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	machine string
	opts    *options
	configs []*config
	// The configurations by role; oauth2Proxy is nil when left out.
	alone, noop, plugin, oauth2Proxy *config
	traefikRSS                       int64
	oauth2ProxyRSS                   int64
	signIns                          []signInSummary
	memory                           *memoryResult
	loadAfter                        string
	// h2 is the HTTP/2 set, nil when left out.
	h2          *h2Set
	cookieSizes []cookieSize
}

// summary folds the rounds of one configuration: mean requests/s, and the
// median over rounds of each round's p50 and p99.
type summary struct {
	rps      float64
	p50, p99 time.Duration
	perRound []float64
}

func (c *config) summary() summary {
	var s summary
	var p50s, p99s []time.Duration
	for _, r := range c.rounds {
		s.rps += r.rps
		s.perRound = append(s.perRound, r.rps)
		p50s = append(p50s, r.p50)
		p99s = append(p99s, r.p99)
	}
	s.rps /= float64(len(c.rounds))
	s.p50, s.p99 = median(p50s), median(p99s)
	return s
}

// share is c's throughput as a share of ref's: the median over rounds of
// the ratio within each round (the configurations of a round ran one
// after another, so that a slow patch of the machine hits both), and the
// lowest and highest of those ratios.
func (c *config) share(ref *config) (mid, low, high float64) {
	var ratios []float64
	for i, r := range c.rounds {
		if i < len(ref.rounds) && ref.rounds[i].rps > 0 {
			ratios = append(ratios, r.rps/ref.rounds[i].rps)
		}
	}
	if len(ratios) == 0 {
		return 0, 0, 0
	}
	sort.Float64s(ratios)
	return ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1]
}

func median(ds []time.Duration) time.Duration {
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return sorted[len(sorted)/2]
}

// finding is one ratio or check against the targets.
type finding struct {
	what, value, target string
	met                 bool
}

func (r *report) findings() []finding {
	var out []finding
	share, low, high := r.plugin.share(r.noop)
	out = append(out, finding{"throughput plugin / do-nothing plugin (3/2)", fmt.Sprintf("%.2f (%.2f-%.2f)", floor2(share), floor2(low), floor2(high)), ">= 0.90", share >= 0.90})
	share, low, high = r.plugin.share(r.alone)
	out = append(out, finding{"  plugin / alone (3/1)", fmt.Sprintf("%.2f (%.2f-%.2f)", floor2(share), floor2(low), floor2(high)), "", true})
	share, low, high = r.noop.share(r.alone)
	out = append(out, finding{"  do-nothing plugin / alone (2/1)", fmt.Sprintf("%.2f (%.2f-%.2f)", floor2(share), floor2(low), floor2(high)), "", true})
	if r.oauth2Proxy != nil {
		x, low, high := r.plugin.share(r.oauth2Proxy)
		out = append(out, finding{"throughput plugin / oauth2-proxy (3/4)", fmt.Sprintf("%.2fx (%.2f-%.2f)", floor2(x), floor2(low), floor2(high)), ">= 3.3x", x >= 3.3})
	} else {
		out = append(out, finding{"throughput plugin / oauth2-proxy (3/4)", "NOT MEASURED", ">= 3.3x", false})
	}
	added := r.plugin.paced99 - r.alone.paced99
	out = append(out, finding{fmt.Sprintf("added p99 latency at %d req/s (3 - 1)", r.opts.rate), ms(added), "< 1 ms", added < time.Millisecond})
	if h := r.h2; h != nil {
		ratio := func(what string, c, ref *config, target float64) {
			share, low, high := c.share(ref)
			f := finding{what, fmt.Sprintf("%.2f (%.2f-%.2f)", floor2(share), floor2(low), floor2(high)), "", true}
			if target > 0 {
				f.target, f.met = fmt.Sprintf(">= %.2f", target), share >= target
			}
			out = append(out, f)
		}
		ratio("HTTP/2: plugin / do-nothing, each route its cookies (H3/H1)", h.plugin, h.noopSite, 0.90)
		ratio("HTTP/2: plugin / do-nothing, the same cookies (H3/H2)", h.plugin, h.noopSame, 0.95)
		ratio("  HTTP/2: plugin, 50 groups / do-nothing (H4/H1)", h.plugin50, h.noopSite, 0)
		ratio("  HTTP/2: plugin, 200 groups / do-nothing (H5/H1)", h.plugin200, h.noopSite, 0)
		added := h.plugin.paced99 - h.noopSite.paced99
		out = append(out, finding{fmt.Sprintf("  HTTP/2: added p99 latency at %d req/s (H3 - H1)", r.opts.rate), ms(added), "", true})
	}
	if m := r.memory; m != nil && len(m.sessions) >= 2 {
		step := func(name string) memoryStep { return m.steps[m.after[name]] }
		d := step("plugin").rss - step("alone").rss
		out = append(out, finding{fmt.Sprintf("RSS plugin - alone after %d requests", m.requests), signedMiB(d), "<= +20 MiB", d <= 20<<20})
		l := step("plugin").rss - step("loaded").rss
		out = append(out, finding{"  of which the requests (plugin - alone with it loaded)", signedMiB(l), "", true})
		n := step("noop").rss - step("alone").rss
		out = append(out, finding{"  do-nothing plugin - alone", signedMiB(n), "", true})
		base := step("plugin").heap
		first := m.steps[m.sessions[0]]
		per := (first.heap - base) / int64(m.counts[0])
		out = append(out, finding{fmt.Sprintf("live heap per remembered session (first %d sessions)", m.counts[0]), fmt.Sprintf("%d bytes", per), "", true})
		for i, at := range m.sessions {
			s := m.steps[at]
			out = append(out, finding{fmt.Sprintf("  RSS with %d sessions", m.counts[i]), mib(s.rss), "", true})
		}
		last := m.steps[m.sessions[len(m.sessions)-1]]
		g := last.heap - base
		out = append(out, finding{fmt.Sprintf("live heap growth with %d sessions", m.counts[len(m.counts)-1]), signedMiB(g), fmt.Sprintf("<= %s (the bound)", mib(m.bound)), g <= m.bound})
	}
	return out
}

// floor2 rounds x down to two decimals, so that a ratio shown meets a
// target only if it does.
func floor2(x float64) float64 {
	return math.Floor(x*100) / 100
}

func signedMiB(n int64) string {
	return fmt.Sprintf("%+.1f MiB", float64(n)/(1<<20))
}

// request describes what every request sent.
func (r *report) request() string {
	if r.opts.minimal {
		return "Host and Cookie only (-minimal)"
	}
	return "a browser's navigation: Chromium's headers, the session cookie among two of the site's own"
}

func (r *report) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\nentraauth benchmark: %s; load average at the end %s\n", r.machine, r.loadAfter)
	fmt.Fprintf(w, "wrk: %d thread(s), %d connections, %d round(s) of %v per configuration in rotating order, after %v of warm-up; HTTPS on 127.0.0.1; Traefik log level ERROR\n",
		o.threads, o.connections, o.rounds, o.duration, o.warmup)
	fmt.Fprintf(w, "every request: %s\n\n", r.request())
	fmt.Fprintf(w, "%-42s %9s %6s %6s %10s %10s %12s %12s   %s\n", "configuration", "req/s", "/1", "/2", "p50", "p99", "p50 @rate", "p99 @rate", "req/s per round")
	for _, c := range r.configs {
		s := c.summary()
		var rounds []string
		for _, v := range s.perRound {
			rounds = append(rounds, fmt.Sprintf("%.0f", v))
		}
		ofAlone, _, _ := c.share(r.alone)
		ofNoop, _, _ := c.share(r.noop)
		fmt.Fprintf(w, "%-42s %9.0f %6.2f %6.2f %10s %10s %12s %12s   %s\n", c.title, s.rps, floor2(ofAlone), floor2(ofNoop), ms(s.p50), ms(s.p99), ms(c.paced50), ms(c.paced99), strings.Join(rounds, " "))
	}
	fmt.Fprintf(w, "(/1, /2: share of Traefik alone and of the do-nothing plugin, median of the rounds; req/s, p50, p99: wrk, saturating; @rate: %d req/s from 4 connections for %v, below saturation)\n", o.rate, o.rateDuration)
	if r.oauth2Proxy == nil {
		fmt.Fprintln(w, o2pMissing)
	}
	if h := r.h2; h != nil {
		fmt.Fprintf(w, "\nHTTP/2 (h2load: %d connections of %d concurrent streams, ALPN h2; each route the cookies a browser sends it):\n", o.h2Clients, o.h2Streams)
		fmt.Fprintf(w, "%-50s %9s %6s %6s %10s %10s %12s %12s %8s   %s\n", "configuration", "req/s", "/H1", "/H2", "p50", "p99", "p50 @rate", "p99 @rate", "cookie", "req/s per round")
		for _, c := range h.configs() {
			s := c.summary()
			var rounds []string
			for _, v := range s.perRound {
				rounds = append(rounds, fmt.Sprintf("%.0f", v))
			}
			ofSite, _, _ := c.share(h.noopSite)
			ofSame, _, _ := c.share(h.noopSame)
			fmt.Fprintf(w, "%-50s %9.0f %6.2f %6.2f %10s %10s %12s %12s %7dB   %s\n", c.title, s.rps, floor2(ofSite), floor2(ofSame), ms(s.p50), ms(s.p99), ms(c.paced50), ms(c.paced99), cookieBytes(c.lines), strings.Join(rounds, " "))
		}
		fmt.Fprintf(w, "(/H1, /H2: share of the do-nothing plugin with the site's cookies and with the plugin's; cookie: the Cookie header's bytes; p50, p99: h2load's log; @rate: %d req/s as streams of one connection)\n", o.rate)
	}
	fmt.Fprintln(w)
	if o.smoke {
		// One short round while the machine may still be busy: figures to
		// see that the measure works, not to judge; a passing smoke run
		// must not read as a failure.
		fmt.Fprintln(w, "smoke run: one short round, figures not judged against the targets (make bench does that)")
	}
	for _, f := range r.findings() {
		if f.target == "" || o.smoke {
			fmt.Fprintf(w, "%-56s %18s\n", f.what, f.value)
			continue
		}
		fmt.Fprintf(w, "%-56s %18s   target %-12s %s\n", f.what, f.value, f.target, metWord(f.met))
	}
	fmt.Fprintf(w, "\nTraefik RSS after the run (%d entry points): %s", len(r.configs), mib(r.traefikRSS))
	if r.oauth2ProxyRSS > 0 {
		fmt.Fprintf(w, "; oauth2-proxy RSS: %s", mib(r.oauth2ProxyRSS))
	}
	fmt.Fprintln(w)
	if len(r.cookieSizes) > 0 {
		fmt.Fprintf(w, "\nthe plugin's cookies a browser sends after signing in (bytes of the Cookie header; cookies):\n")
		fmt.Fprintf(w, "  %-8s %-14s %-24s %s\n", "groups", "refresh token", "every request", "requests under /portals/<portal>/")
		for _, c := range r.cookieSizes {
			fmt.Fprintf(w, "  %-8d %-14d %-24s %d bytes\n", c.groups, c.refreshToken, fmt.Sprintf("%d bytes, %d cookie(s)", c.request, c.requestCookies), c.portal)
		}
	}
	if m := r.memory; m != nil {
		fmt.Fprintf(w, "\nmemory check (a Traefik per configuration; live heap after a forced GC):\n")
		for _, s := range m.steps {
			fmt.Fprintf(w, "  %-60s RSS %10s   live heap %10s\n", s.what, mib(s.rss), mib(s.heap))
		}
		fmt.Fprintf(w, "  the first session, after the other %d: %s\n", m.counts[len(m.counts)-1]-1, m.pastBound)
	}
	fmt.Fprintf(w, "\nsign-in, %d sequential sign-ins each (callback = code redemption + ID token verification against the fake tenant + session cookie):\n", o.signIns)
	for _, s := range r.signIns {
		fmt.Fprintf(w, "  %-36s callback p50 %s, mean %s, max %s; whole sign-in (4 requests) mean %s\n", s.what, ms(s.callbackP50), ms(s.callbackMean), ms(s.cbMax), ms(s.total))
	}
}

func metWord(met bool) string {
	if met {
		return "met"
	}
	return "NOT MET"
}

// markdown writes the results as the readme's Performance section shows
// them.
func (r *report) markdown(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "Machine: %s; load average at the end %s.\n", r.machine, r.loadAfter)
	fmt.Fprintf(w, "Load: wrk, %d thread(s), %d connections, %d round(s) of %v per configuration in rotating order after %v of warm-up, HTTPS; every request %s.\n\n",
		o.threads, o.connections, o.rounds, o.duration, o.warmup, r.request())
	fmt.Fprintf(w, "| configuration | requests/s | share of 1 | share of 2 | p50 | p99 | p50 at %d req/s | p99 at %d req/s |\n", o.rate, o.rate)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, c := range r.configs {
		s := c.summary()
		ofAlone, _, _ := c.share(r.alone)
		ofNoop, _, _ := c.share(r.noop)
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f | %s | %s | %s | %s |\n", c.title, s.rps, floor2(ofAlone), floor2(ofNoop), ms(s.p50), ms(s.p99), ms(c.paced50), ms(c.paced99))
	}
	if r.oauth2Proxy == nil {
		fmt.Fprintf(w, "\n**%s**\n", o2pMissing)
	}
	if h := r.h2; h != nil {
		fmt.Fprintf(w, "\nHTTP/2: h2load, %d connections of %d concurrent streams (ALPN h2), %d round(s) of %v per configuration in rotating order; each route the cookies a browser sends it.\n\n", o.h2Clients, o.h2Streams, o.rounds, o.duration)
		fmt.Fprintf(w, "| configuration | Cookie header | requests/s | share of H1 | share of H2 | p50 | p99 | p50 at %d req/s | p99 at %d req/s |\n", o.rate, o.rate)
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, c := range h.configs() {
			s := c.summary()
			ofSite, _, _ := c.share(h.noopSite)
			ofSame, _, _ := c.share(h.noopSame)
			fmt.Fprintf(w, "| %s | %d B | %.0f | %.2f | %.2f | %s | %s | %s | %s |\n", c.title, cookieBytes(c.lines), s.rps, floor2(ofSite), floor2(ofSame), ms(s.p50), ms(s.p99), ms(c.paced50), ms(c.paced99))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measure | value | target |")
	fmt.Fprintln(w, "|---|---:|---|")
	for _, f := range r.findings() {
		if f.target == "" {
			fmt.Fprintf(w, "| %s | %s | |\n", strings.TrimSpace(f.what), f.value)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s (%s) |\n", f.what, f.value, f.target, metWord(f.met))
	}
	fmt.Fprintf(w, "| Traefik RSS after the run (%d entry points) | %s | |\n", len(r.configs), mib(r.traefikRSS))
	if len(r.cookieSizes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| groups | refresh token | the plugin's cookies on every request | on requests under `/portals/<portal>/` |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|")
		for _, c := range r.cookieSizes {
			fmt.Fprintf(w, "| %d | %d | %d B (%d cookies) | %d B |\n", c.groups, c.refreshToken, c.request, c.requestCookies, c.portal)
		}
	}
	if m := r.memory; m != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| memory check | RSS | live heap after GC |")
		fmt.Fprintln(w, "|---|---:|---:|")
		for _, s := range m.steps {
			fmt.Fprintf(w, "| %s | %s | %s |\n", s.what, mib(s.rss), mib(s.heap))
		}
		fmt.Fprintf(w, "\nThe first session, after the other %d: %s.\n", m.counts[len(m.counts)-1]-1, m.pastBound)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| sign-in | callback p50 | callback mean | whole sign-in mean |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, s := range r.signIns {
		fmt.Fprintf(w, "| %s (%d sign-ins) | %s | %s | %s |\n", s.what, s.n, ms(s.callbackP50), ms(s.callbackMean), ms(s.total))
	}
}
