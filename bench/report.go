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
	machine        string
	opts           *options
	configs        []*config
	traefikRSS     int64
	oauth2ProxyRSS int64
	signIns        []signInSummary
	memory         *memoryResult
	loadAfter      string
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

func median(ds []time.Duration) time.Duration {
	sorted := append([]time.Duration(nil), ds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return sorted[len(sorted)/2]
}

// findings are the ratios and checks against the targets.
type finding struct {
	what, value, target string
	met                 bool
}

func (r *report) findings() []finding {
	var out []finding
	alone, plugin := r.configs[0].summary(), r.configs[1].summary()
	ratio := plugin.rps / alone.rps
	out = append(out, finding{"throughput plugin / alone (2/1)", fmt.Sprintf("%.2f", floor2(ratio)), ">= 0.90", ratio >= 0.90})
	if len(r.configs) > 2 {
		o2p := r.configs[2].summary()
		x := plugin.rps / o2p.rps
		out = append(out, finding{"throughput plugin / oauth2-proxy (2/3)", fmt.Sprintf("%.2fx", floor2(x)), ">= 3x", x >= 3})
	}
	added := r.configs[1].paced99 - r.configs[0].paced99
	out = append(out, finding{fmt.Sprintf("added p99 latency at %d req/s (2 - 1)", r.opts.rate), ms(added), "< 1 ms", added < time.Millisecond})
	if m := r.memory; m != nil && len(m.steps) == 8 {
		// steps: alone started and after; alone with the plugin loaded,
		// started and after; plugin started, after, after sessions, after
		// twice the sessions.
		d := m.steps[5].rss - m.steps[1].rss
		out = append(out, finding{fmt.Sprintf("RSS plugin - alone after %d requests", m.requests), signedMiB(d), "< 20 MB", d < 20e6})
		l := m.steps[5].rss - m.steps[3].rss
		out = append(out, finding{"  of which requests (plugin - alone with it loaded)", signedMiB(l), "", true})
		g := m.steps[7].heap - m.steps[6].heap
		out = append(out, finding{fmt.Sprintf("live heap growth from %d to %d distinct sessions", m.sessions, 2*m.sessions), signedMiB(g), "bounded (~0)", g < 2<<20})
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

func (r *report) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\nentraauth benchmark: %s; load average at the end %s\n", r.machine, r.loadAfter)
	fmt.Fprintf(w, "wrk: %d thread(s), %d connections, %d round(s) of %v per configuration in rotating order, after %v of warm-up; plain HTTP on 127.0.0.1; Traefik log level ERROR\n\n",
		o.threads, o.connections, o.rounds, o.duration, o.warmup)
	fmt.Fprintf(w, "%-42s %9s %10s %10s %12s %12s   %s\n", "configuration", "req/s", "p50", "p99", "p50 @rate", "p99 @rate", "req/s per round")
	for _, c := range r.configs {
		s := c.summary()
		var rounds []string
		for _, v := range s.perRound {
			rounds = append(rounds, fmt.Sprintf("%.0f", v))
		}
		fmt.Fprintf(w, "%-42s %9.0f %10s %10s %12s %12s   %s\n", c.title, s.rps, ms(s.p50), ms(s.p99), ms(c.paced50), ms(c.paced99), strings.Join(rounds, " "))
	}
	fmt.Fprintf(w, "(req/s, p50, p99: wrk, saturating; @rate: %d req/s from 4 connections for %v, below saturation)\n", o.rate, o.rateDuration)
	fmt.Fprintln(w)
	for _, f := range r.findings() {
		if f.target == "" {
			fmt.Fprintf(w, "%-52s %12s\n", f.what, f.value)
			continue
		}
		fmt.Fprintf(w, "%-52s %12s   target %-12s %s\n", f.what, f.value, f.target, metWord(f.met))
	}
	fmt.Fprintf(w, "\nTraefik RSS after the run (three entry points): %s", mib(r.traefikRSS))
	if r.oauth2ProxyRSS > 0 {
		fmt.Fprintf(w, "; oauth2-proxy RSS: %s", mib(r.oauth2ProxyRSS))
	}
	fmt.Fprintln(w)
	if m := r.memory; m != nil {
		fmt.Fprintf(w, "\nmemory check (a Traefik per configuration; live heap after a forced GC):\n")
		for _, s := range m.steps {
			fmt.Fprintf(w, "  %-60s RSS %10s   live heap %10s\n", s.what, mib(s.rss), mib(s.heap))
		}
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
	fmt.Fprintf(w, "Load: wrk, %d thread(s), %d connections, %d round(s) of %v per configuration in rotating order after %v of warm-up.\n\n",
		o.threads, o.connections, o.rounds, o.duration, o.warmup)
	fmt.Fprintf(w, "| configuration | requests/s | p50 | p99 | p50 at %d req/s | p99 at %d req/s |\n", o.rate, o.rate)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
	for _, c := range r.configs {
		s := c.summary()
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s |\n", strings.TrimSpace(c.title[2:]), s.rps, ms(s.p50), ms(s.p99), ms(c.paced50), ms(c.paced99))
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
	fmt.Fprintf(w, "| Traefik RSS after the run (three entry points) | %s | |\n", mib(r.traefikRSS))
	if m := r.memory; m != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| memory check | RSS | live heap after GC |")
		fmt.Fprintln(w, "|---|---:|---:|")
		for _, s := range m.steps {
			fmt.Fprintf(w, "| %s | %s | %s |\n", s.what, mib(s.rss), mib(s.heap))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| sign-in | callback p50 | callback mean | whole sign-in mean |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, s := range r.signIns {
		fmt.Fprintf(w, "| %s (%d sign-ins) | %s | %s | %s |\n", s.what, s.n, ms(s.callbackP50), ms(s.callbackMean), ms(s.total))
	}
}
