// Command bench measures what the entraauth plugin costs a signed-in
// request, side by side with Traefik alone, with a plugin that does nothing
// and with Traefik's forwardAuth in front of oauth2-proxy, in one run on
// this machine.
//
// It starts a small upstream, the fake Entra tenant of
// entraid/entraidtest, oauth2-proxy (an OIDC client of that tenant) and one
// Traefik with four HTTPS entry points on 127.0.0.1 (a self-signed
// certificate made for the run):
//
//  1. alone: no middleware, the limit;
//  2. do-nothing plugin: the Yaegi plugin of bench/noop, which sets one
//     header and calls the next handler, loaded as a second local plugin:
//     what any Yaegi plugin costs, the floor of this one;
//  3. plugin: the plugin from this repository in local mode;
//  4. oauth2-proxy: forwardAuth to oauth2-proxy's /oauth2/auth.
//
// It signs in for real (through Traefik for the plugin, through
// oauth2-proxy's login flow for it), checks that each configuration does
// what it promises (the upstream sees the user's identity and no plugin
// cookie; spoofed identity headers and a rule's refusal are honoured), then
// loads each entry point with wrk in turn, for equal durations, over
// several rounds in rotating order, each request a browser's navigation
// (Chromium's headers, the session cookie among two of the site's own;
// -minimal sends Host and Cookie only), and the upstream checks every
// request as it arrives. Then the HTTP/2 set (h2.go): the same Traefik
// loaded by h2load over HTTP/2, each route with the cookies a browser
// sends it, for users in 2, 50 and 200 groups. It then prints requests/s
// and latency, each configuration's share of Traefik alone and of the
// do-nothing plugin, the plugin's cookies after sign-ins of users in 2 to
// 200 groups (cookies.go), Traefik's memory, a memory check (Traefik alone
// against Traefik with the plugin after many signed-in requests, and with
// 10,000 and 100,000 distinct sessions) and what a sign-in callback costs.
//
// Every process it starts listens on 127.0.0.1 on a port chosen at run
// time, and is stopped on exit, on Ctrl-C and at the -timeout.
//
// wrk and not hey: wrk is an event loop in C that keeps its connections
// open and reads every response; one wrk thread saturates Traefik here with
// a small share of one core, where hey's goroutines and net/http client cost
// several times more CPU per request, CPU taken from Traefik on a 2-core
// machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tfa-plugin/entraauth/bench/browser"
	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

type options struct {
	repo, traefik, oauth2Proxy, wrk, h2load string

	smoke, minimal       bool
	duration, warmup     time.Duration
	rounds               int
	threads, connections int
	memRequests          int
	memSessions          []int
	h2Clients, h2Streams int
	memConnections       int
	signIns              int
	rate                 int
	rateDuration         time.Duration
	timeout              time.Duration
	markdown             string
	headers              string
	cpuProfiles          string
	instructions         int
	callgrindDir         string
}

func parseOptions() *options {
	o := &options{}
	flag.StringVar(&o.repo, "repo", "..", "the plugin's repository (loaded by Traefik in local plugin mode)")
	flag.StringVar(&o.traefik, "traefik", "", "Traefik binary (default: <repo>/.cache/traefik-v3.6.12/traefik)")
	flag.StringVar(&o.oauth2Proxy, "oauth2-proxy", "", `oauth2-proxy binary (default: <repo>/.cache/bin/oauth2-proxy); "none" leaves configuration 4 out, refused when CI=true`)
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	flag.StringVar(&o.h2load, "h2load", "h2load", `h2load binary (nghttp2's), the HTTP/2 load; "none" leaves the HTTP/2 set out, refused when CI=true`)
	flag.IntVar(&o.h2Clients, "h2-clients", 4, "h2load connections of the HTTP/2 set, kept open")
	flag.IntVar(&o.h2Streams, "h2-streams", 4, "concurrent requests on each h2load connection")
	flag.BoolVar(&o.smoke, "smoke", false, "check that the benchmark works and every configuration behaves, quickly: short runs, one round, small memory check")
	flag.BoolVar(&o.minimal, "minimal", false, "send Host and Cookie only, not a browser's navigation headers")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load per configuration and round")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unrecorded load per configuration before the first round (durations are whole seconds)")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds; each loads every configuration once, in rotating order (the shares are the median of the rounds)")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.IntVar(&o.connections, "connections", 16, "wrk connections, kept open")
	flag.IntVar(&o.memRequests, "mem-requests", 200000, "signed-in requests before the memory check")
	memSessions := flag.String("mem-sessions", "10000,100000", "distinct sessions the memory check measures the plugin's Traefik at, ascending, comma-separated")
	flag.IntVar(&o.memConnections, "mem-connections", 8, "connections of the memory check's client")
	flag.IntVar(&o.signIns, "sign-ins", 50, "sign-ins timed per configuration")
	flag.IntVar(&o.rate, "rate", 500, "requests/s of the latency measure, below every configuration's saturation")
	flag.DurationVar(&o.rateDuration, "rate-duration", 10*time.Second, "length of the latency measure per configuration")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "the whole run stops after this")
	flag.StringVar(&o.headers, "headers", "", "the plugin's identity headers, Name=claim pairs separated by commas (default: its six defaults)")
	flag.StringVar(&o.markdown, "markdown", "", "also write the results as Markdown to this file")
	flag.IntVar(&o.instructions, "instructions", 0, "instead of the load: run Traefik under valgrind's callgrind and print the instructions it executes per request of each configuration, over this many requests each")
	flag.StringVar(&o.callgrindDir, "callgrind-dir", "", "with -instructions: keep callgrind's dumps, one per configuration, in this directory (callgrind_annotate reads them)")
	flag.StringVar(&o.cpuProfiles, "cpuprofiles", "", "write a CPU profile of Traefik under each configuration's first round to this directory (go tool pprof <traefik> <file>)")
	flag.Parse()
	o.memSessions = parseCounts(*memSessions)
	if o.smoke {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		defaults := []struct {
			name string
			set  func()
		}{
			{"duration", func() { o.duration = 2 * time.Second }},
			{"warmup", func() { o.warmup = time.Second }},
			{"rounds", func() { o.rounds = 1 }},
			{"mem-requests", func() { o.memRequests = 5000 }},
			{"mem-sessions", func() { o.memSessions = []int{500, 1000} }},
			{"sign-ins", func() { o.signIns = 5 }},
			{"rate-duration", func() { o.rateDuration = time.Second }},
			{"timeout", func() { o.timeout = 5 * time.Minute }},
		}
		for _, d := range defaults {
			if !set[d.name] {
				d.set()
			}
		}
	}
	return o
}

// parseCounts reads "10000,100000": positive and ascending, or nil.
func parseCounts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || len(out) > 0 && n <= out[len(out)-1] {
			return nil
		}
		out = append(out, n)
	}
	return out
}

func main() {
	o := parseOptions()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	err := run(ctx, o)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: FAIL:", err)
		os.Exit(1)
	}
}

// config is one of the configurations under load.
type config struct {
	title string
	ep    *entrypoint
	// lines are the header lines of every request (wrk's -H), the Cookie
	// header included.
	lines []string
	// want is what every request must look like at the upstream.
	want   expectation
	rounds []*wrkResult
	// paced50 and paced99 are the latency percentiles at the fixed rate.
	paced50, paced99 time.Duration
}

// alice is the user who signs in.
var alice = entraidtest.User{
	OID:               "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
	Name:              "Alice Example",
	PreferredUsername: "alice@contoso.example",
	Email:             "alice@contoso.example",
	Groups:            []string{"0d9a8b7c-1111-4c2d-9e3f-4a5b6c7d8e9f", "1e2f3a4b-2222-4c5d-8e6f-7a8b9c0d1e2f"},
	Roles:             []string{"Reader"},
}

// defaultHeaders are the plugin's default identity headers and their
// claims.
var defaultHeaders = map[string]string{
	"X-Forwarded-User":               "oid",
	"X-Forwarded-Email":              "email",
	"X-Forwarded-Name":               "name",
	"X-Forwarded-Preferred-Username": "preferred_username",
	"X-Forwarded-Groups":             "groups",
	"X-Forwarded-Roles":              "roles",
}

// groupsUser is a user in n groups, with IDs of Entra's form: up to 200
// come in the ID token (more are an overage).
func groupsUser(n int) entraidtest.User {
	u := entraidtest.User{
		OID:               fmt.Sprintf("7a0b1c2d-%04d-4e5f-8a6b-7c8d9e0f1a2b", n),
		Name:              fmt.Sprintf("Member of %d", n),
		PreferredUsername: fmt.Sprintf("groups%d@contoso.example", n),
		Email:             fmt.Sprintf("groups%d@contoso.example", n),
		Roles:             []string{"Reader"},
	}
	for i := 0; i < n; i++ {
		u.Groups = append(u.Groups, fmt.Sprintf("%08x-%04x-4a5b-8c6d-%012x", 0x9e000000+n, i, 0x7e8f9a0b1c2d+i))
	}
	return u
}

// groupCounts are the users of the cookie-size table: alice's 2 groups,
// then users in more, up to the 200 an ID token holds; the HTTP/2 set
// loads the plugin with the 50 and 200 ones as well.
var groupCounts = []int{2, 20, 50, 150, 200}

// refreshTokenSizes are the refresh tokens of the cookie-size table:
// Entra's usual size, and a large one.
var refreshTokenSizes = []int{1800, 4000}

// claimsOf are u's claims as identity header values.
func claimsOf(u entraidtest.User) map[string]string {
	return map[string]string{
		"oid":                u.OID,
		"email":              u.Email,
		"name":               u.Name,
		"preferred_username": u.PreferredUsername,
		"groups":             strings.Join(u.Groups, ","),
		"roles":              strings.Join(u.Roles, ","),
	}
}

// aliceClaims are alice's claims as identity header values.
var aliceClaims = claimsOf(alice)

// identityValues are the values the upstream must see for u's identity
// headers.
func identityValues(headers map[string]string, u entraidtest.User) map[string]string {
	claims := claimsOf(u)
	values := map[string]string{}
	for name, claim := range headers {
		values[name] = claims[claim]
	}
	return values
}

// identityHeadersOf parses -headers ("Name=claim,..."; "" for the
// plugin's defaults) into the headers option and the values the upstream
// must see for alice.
func identityHeadersOf(option string) (map[string]string, map[string]string, error) {
	headers := defaultHeaders
	if option != "" {
		headers = map[string]string{}
		for _, pair := range strings.Split(option, ",") {
			name, claim, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || aliceClaims[claim] == "" {
				return nil, nil, fmt.Errorf("-headers: %q is not Name=claim with a claim of %v", pair, []string{"oid", "email", "name", "preferred_username", "groups", "roles"})
			}
			headers[http.CanonicalHeaderKey(name)] = claim
		}
	}
	return headers, identityValues(headers, alice), nil
}

// portal is the plugin's portal in the bench: the default.
const portal = "main"

// nobodyOID is the only user the refusing rule allows.
const nobodyOID = "00000000-0000-4000-8000-00000000dead"

func run(ctx context.Context, o *options) (err error) {
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		// An interrupt or the -timeout shows up as whatever it cut short.
		if ctx.Err() != nil {
			err = fmt.Errorf("stopped: %v (Ctrl-C or -timeout); every process it started is stopped", ctx.Err())
		}
	}()
	if err := o.resolvePaths(); err != nil {
		return err
	}
	m := machine()
	progress("machine: %s", m)

	dir, err := os.MkdirTemp("", "entraauth-bench-")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	cert, err := newCertificate(dir)
	if err != nil {
		return err
	}

	up, err := startUpstream()
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { up.srv.Close() })
	s := newSite(o.traefik, o.repo, up.url, cert)

	users := []entraidtest.User{alice}
	for _, n := range groupCounts[1:] {
		users = append(users, groupsUser(n))
	}
	tenant := entraidtest.NewTenant(entraidtest.Options{Users: users, SignIn: alice.PreferredUsername})
	cleanups = append(cleanups, tenant.Close)

	headers, aliceHeaders, err := identityHeadersOf(o.headers)
	if err != nil {
		return err
	}
	secret := randomString(48)
	// The session cookie's name over HTTPS without cookieDomain: the
	// __Host- prefix before entraauth_<portal>.
	const cookieName = "__Host-entraauth_" + portal
	pluginConfig := func(rules map[string]interface{}) map[string]interface{} {
		c := map[string]interface{}{
			"microsoftEntraID": map[string]interface{}{
				"tenantID":      tenant.TenantID,
				"clientID":      tenant.ClientID,
				"clientSecret":  tenant.ClientSecret,
				"authorityHost": tenant.URL,
			},
			"session": map[string]interface{}{"secret": secret},
			"headers": headers,
		}
		for k, v := range rules {
			c[k] = v
		}
		return map[string]interface{}{"plugin": map[string]interface{}{pluginKey: c}}
	}
	pluginMiddleware := pluginConfig(nil)

	var o2p *oauth2Proxy
	if o.oauth2Proxy != "" {
		progress("starting oauth2-proxy")
		o2p, err = startOAuth2Proxy(ctx, o.oauth2Proxy, filepath.Join(dir, "oauth2-proxy"), tenant.Issuer(), tenant.ClientID, tenant.ClientSecret)
		if err != nil {
			return err
		}
		cleanups = append(cleanups, o2p.stop)
	}

	noopMiddleware := map[string]interface{}{"plugin": map[string]interface{}{noopKey: map[string]interface{}{"value": "1"}}}
	alone := &config{title: "1. Traefik alone", ep: &entrypoint{name: "alone"}}
	noop := &config{title: "2. Traefik + do-nothing Yaegi plugin", ep: &entrypoint{name: "noop", middleware: noopMiddleware}}
	plugin := &config{title: "3. Traefik + entraauth plugin", ep: &entrypoint{
		name:       "plugin",
		middleware: pluginMiddleware,
		// A rule that refuses alice: the same sessions, another verdict.
		prefixes: []prefixRoute{{name: "refused", prefix: refusedPrefix, middleware: pluginConfig(map[string]interface{}{"allowedUsers": []string{nobodyOID}})}},
	}}
	configs := []*config{alone, noop, plugin}
	var viaO2P *config
	if o2p != nil {
		viaO2P = &config{title: "4. Traefik + forwardAuth to oauth2-proxy", ep: &entrypoint{
			name: "oauth2proxy",
			middleware: map[string]interface{}{"forwardAuth": map[string]interface{}{
				"address":             o2p.url("/oauth2/auth"),
				"authResponseHeaders": []string{"X-Auth-Request-User", "X-Auth-Request-Email"},
			}},
		}}
		configs = append(configs, viaO2P)
	}
	eps := make([]*entrypoint, 0, len(configs))
	for _, c := range configs {
		eps = append(eps, c.ep)
	}
	var h2 *h2Set
	if o.h2load != "" {
		h2 = newH2Set(noop, plugin, noopMiddleware, pluginMiddleware)
		eps = append(eps, h2.noopSite.ep, h2.plugin50.ep, h2.plugin200.ep)
	}
	// The cookie-size table's sign-ins: an entry point of their own, whose
	// requests the upstream does not check.
	cookiesEP := &entrypoint{name: "cookies", middleware: pluginMiddleware}
	eps = append(eps, cookiesEP)
	if o.instructions > 0 {
		s.callgrindDir = o.callgrindDir
		if s.callgrindDir == "" {
			s.callgrindDir = filepath.Join(dir, "callgrind")
		}
		if s.callgrindDir, err = filepath.Abs(s.callgrindDir); err != nil {
			return err
		}
		if err := os.MkdirAll(s.callgrindDir, 0o755); err != nil {
			return err
		}
		if s.wrap, s.env, err = callgrind(s.callgrindDir); err != nil {
			return err
		}
		progress("starting Traefik under callgrind (slow)")
	}
	progress("starting Traefik with %d HTTPS entry points", len(eps))
	tr, err := startTraefik(ctx, s, "traefik", filepath.Join(dir, "traefik"), eps)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, tr.stop)

	// Real sign-ins give the cookies the load carries; the timed ones are
	// the callback's cost.
	progress("signing in (%d times per configuration)", o.signIns)
	signedIn, pluginSignIns, err := repeatSignIn(ctx, o.signIns, func() (*signIn, error) {
		return pluginSignIn(ctx, cert, plugin.ep, cookieName)
	})
	if err != nil {
		return fmt.Errorf("plugin sign-in: %v", err)
	}
	// 1, 2 and 3 send the same bytes; the upstream sees them unchanged
	// behind 1 and 2, and without the session cookie behind 3.
	lines := o.requestLines(signedIn.cookie)
	for _, c := range []*config{alone, noop, plugin} {
		c.lines = lines
	}
	sent, kept := o.cookies(signedIn.cookie)
	alone.want = expectation{cookie: sent, checkCookie: true}
	noop.want = expectation{cookie: sent, checkCookie: true, noop: true}
	plugin.want = expectation{identity: aliceHeaders, cookie: kept, checkCookie: true}
	var o2pSignIns []*signIn
	if o2p != nil {
		var si *signIn
		si, o2pSignIns, err = repeatSignIn(ctx, o.signIns, func() (*signIn, error) { return oauth2ProxySignIn(ctx, cert, o2p) })
		if err != nil {
			return fmt.Errorf("oauth2-proxy sign-in: %v", err)
		}
		viaO2P.lines = o.requestLines(si.cookie)
		// oauth2-proxy tells the user by email and by its own user ID.
		viaO2P.want = expectation{identity: map[string]string{"X-Auth-Request-Email": alice.Email, "X-Auth-Request-User": ""}}
	}
	checked := configs
	if h2 != nil {
		if err := h2.signIn(ctx, o, cert, tenant, headers, cookieName, noop, plugin); err != nil {
			return err
		}
		checked = append(append([]*config(nil), configs...), h2.noopSite, h2.plugin50, h2.plugin200)
	}
	for _, c := range checked {
		up.expect(c.ep.port, c.title, c.want)
	}
	if err := checkBehaviour(ctx, cert, up, checked, plugin, lines); err != nil {
		return err
	}
	progress("cookie sizes: signing in users in %v groups with refresh tokens of %v characters", groupCounts, refreshTokenSizes)
	sizes, err := measureCookieSizes(ctx, cert, tenant, cookiesEP, cookieName)
	if err != nil {
		return err
	}

	if o.instructions > 0 {
		per, err := countInstructions(ctx, o, tr, up, configs, o.instructions, false, 0)
		if err != nil {
			return err
		}
		printInstructions(os.Stdout, "HTTP/1.1", configs, per, alone, noop, o.instructions, o.minimal)
		if h2 != nil {
			per2, err := countInstructions(ctx, o, tr, up, h2.configs(), o.instructions, true, len(per))
			if err != nil {
				return err
			}
			printInstructions(os.Stdout, "HTTP/2", h2.configs(), per2, h2.noopSite, h2.noopSame, o.instructions, o.minimal)
		}
		return nil
	}

	wrk := func(ctx context.Context, c *config, d time.Duration) (*wrkResult, error) {
		return runWrk(ctx, o.wrk, o.threads, o.connections, d, c.ep.url("/"), c.lines)
	}
	if err := loadRounds(ctx, o, tr, up, configs, "", o.connections, wrk); err != nil {
		return err
	}
	if h2 != nil {
		h2load := func(ctx context.Context, c *config, d time.Duration) (*wrkResult, error) {
			return runH2load(ctx, o.h2load, o.h2Clients, o.h2Streams, d, c.ep.url("/"), c.lines, dir)
		}
		if err := loadRounds(ctx, o, tr, up, h2.configs(), "HTTP/2 ", o.h2Clients*o.h2Streams, h2load); err != nil {
			return err
		}
	}
	rss, err := tr.rss()
	if err != nil {
		return err
	}
	// Latency below saturation: what a middleware adds to one request,
	// where the rounds above measure what it costs the machine.
	if err := measureLatency(ctx, o, cert, up, configs, false); err != nil {
		return err
	}
	if h2 != nil {
		if err := measureLatency(ctx, o, cert, up, h2.configs(), true); err != nil {
			return err
		}
	}
	rep := &report{machine: m, opts: o, configs: configs, alone: alone, noop: noop, plugin: plugin, oauth2Proxy: viaO2P, traefikRSS: rss, h2: h2, cookieSizes: sizes}
	if o2p != nil {
		if rep.oauth2ProxyRSS, err = o2p.rss(); err != nil {
			return err
		}
	}
	rep.signIns = append(rep.signIns, summarizeSignIns("entraauth plugin (through Traefik)", pluginSignIns))
	if o2p != nil {
		rep.signIns = append(rep.signIns, summarizeSignIns("oauth2-proxy", o2pSignIns))
		o2p.stop()
	}
	tr.stop()

	if rep.memory, err = memoryCheck(ctx, o, s, dir, up, pluginMiddleware, aliceHeaders, signedIn.cookie, secret, cookieName, tenant.TenantID); err != nil {
		return err
	}
	rep.loadAfter = loadAverage()
	rep.print(os.Stdout)
	if o.markdown != "" {
		f, err := os.Create(o.markdown)
		if err != nil {
			return err
		}
		rep.markdown(f)
		if err := f.Close(); err != nil {
			return err
		}
		progress("wrote %s", o.markdown)
	}
	if o.smoke {
		fmt.Println("bench smoke: ok (every configuration served signed-in requests as it promises, spoofed identity headers were dropped and a refusing rule refused)")
		if o2p == nil {
			fmt.Println(o2pMissing)
		}
		if h2 == nil {
			fmt.Println(h2Missing)
		}
	}
	return nil
}

// h2Missing is said loudly wherever the HTTP/2 set was left out.
const h2Missing = "WARNING: THE HTTP/2 SET WAS NOT MEASURED: h2load was left out"

// o2pMissing is said loudly wherever oauth2-proxy was left out.
const o2pMissing = "WARNING: CONFIGURATION 4 (forwardAuth to oauth2-proxy) WAS NOT MEASURED: oauth2-proxy was left out"

// requestLines are the header lines every request of a configuration
// sends with cookie, the session cookie(s) of one sign-in: a browser's
// navigation with the site's own cookies, or with -minimal the cookie
// alone.
func (o *options) requestLines(cookie string) []string {
	sent, _ := o.cookies(cookie)
	if o.minimal {
		return []string{"Cookie: " + sent}
	}
	return browser.Lines("app.example", sent)
}

// headerLines are requestLines without the Cookie header.
func (o *options) headerLines() []string {
	if o.minimal {
		return nil
	}
	return browser.Lines("app.example", "")
}

// cookies returns the Cookie header sent with the session cookie(s) and
// what must remain of it once the plugin removed its own.
func (o *options) cookies(session string) (sent, kept string) {
	if o.minimal {
		return session, o.siteCookies()
	}
	return browser.CookieHeader(session), o.siteCookies()
}

// siteCookies is the Cookie header of a request without the plugin's
// cookies: the site's own, or none with -minimal.
func (o *options) siteCookies() string {
	if o.minimal {
		return ""
	}
	return browser.SiteCookies
}

// checkBehaviour sends a few requests as users and attackers would, and
// checks what the upstream saw: each configuration's request as promised
// (the signed-in user's identity, no plugin cookie, the do-nothing
// plugin's header), spoofed identity headers dropped by the plugin, first
// from authorize and then from its cache, and its refusing rule honoured.
func checkBehaviour(ctx context.Context, cert *certificate, up *upstream, configs []*config, plugin *config, lines []string) error {
	c := client(cert, 1)
	defer c.CloseIdleConnections()
	send := func(cfg *config, path string, lines []string, status int) error {
		total0, ok0 := up.counts(cfg.ep.port)
		req := newRequest(ctx, cfg.ep.url(path), lines, "")
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %v", cfg.title, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != status {
			return fmt.Errorf("%s: GET %s answered %d, want %d: %.200s", cfg.title, path, resp.StatusCode, status, body)
		}
		total1, ok1 := up.counts(cfg.ep.port)
		reached := int64(0)
		if status == http.StatusOK {
			reached = 1
		}
		if total1-total0 != reached || ok1-ok0 != reached {
			return fmt.Errorf("%s: GET %s reached the upstream %d times (want %d), %d as promised: %s", cfg.title, path, total1-total0, reached, ok1-ok0, up.bad(cfg.ep.port))
		}
		return nil
	}
	for _, cfg := range configs {
		if err := send(cfg, "/", cfg.lines, http.StatusOK); err != nil {
			return err
		}
	}
	spoofed := append([]string{
		"X-Forwarded-User: mallory",
		"X_Forwarded_User: mallory",
		"x-forwarded-email: mallory@evil.example",
		"X_FORWARDED_GROUPS: admins",
		"X-Forwarded-Preferred_Username: mallory@contoso.example",
		"X-Forwarded-Roles: Admin",
	}, lines...)
	// Twice: the first may be authorize's, the second is the cache's.
	for i := 0; i < 2; i++ {
		if err := send(plugin, "/", spoofed, http.StatusOK); err != nil {
			return fmt.Errorf("spoofed identity headers: %v", err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := send(plugin, refusedPrefix+"report", lines, http.StatusForbidden); err != nil {
			return fmt.Errorf("a refusing rule: %v", err)
		}
	}
	progress("behaviour checked: identity, cookies, spoofed headers, a refusing rule")
	return nil
}

// resolvePaths applies the defaults that depend on the repository and
// checks the tools are there.
func (o *options) resolvePaths() error {
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil || !strings.HasPrefix(string(b), "module "+moduleName+"\n") {
		return fmt.Errorf("-repo %s is not the plugin's repository", o.repo)
	}
	o.repo = repo
	if o.traefik == "" {
		o.traefik = filepath.Join(repo, ".cache", "traefik-v3.6.12", "traefik")
	}
	switch o.oauth2Proxy {
	case "none":
		if os.Getenv("CI") == "true" {
			return errors.New("-oauth2-proxy none: CI=true, where every configuration must be measured; install oauth2-proxy (make bench does)")
		}
		o.oauth2Proxy = ""
		progress("%s (-oauth2-proxy none)", o2pMissing)
	case "":
		o.oauth2Proxy = filepath.Join(repo, ".cache", "bin", "oauth2-proxy")
	}
	// Absolute paths: the processes run in directories of their own.
	for _, bin := range []*string{&o.traefik, &o.oauth2Proxy} {
		if *bin == "" {
			continue
		}
		if *bin, err = filepath.Abs(*bin); err != nil {
			return err
		}
		if st, err := os.Stat(*bin); err != nil || st.IsDir() {
			return fmt.Errorf("no binary at %s (make bench installs it): %v", *bin, err)
		}
	}
	if o.wrk, err = exec.LookPath(o.wrk); err != nil {
		return fmt.Errorf("no wrk (apt-get install wrk; make bench does it): %v", err)
	}
	if o.h2load == "none" {
		if os.Getenv("CI") == "true" {
			return errors.New("-h2load none: CI=true, where the HTTP/2 set must be measured; install h2load (apt-get install nghttp2-client; make bench does it)")
		}
		o.h2load = ""
		progress("%s (-h2load none)", h2Missing)
	} else if o.h2load, err = exec.LookPath(o.h2load); err != nil {
		return fmt.Errorf("no h2load (apt-get install nghttp2-client; make bench does it): %v", err)
	}
	if o.rounds < 1 || o.duration <= 0 || o.connections < 1 || o.threads < 1 || o.signIns < 1 || o.h2Clients < 1 || o.h2Streams < 1 {
		return errors.New("-rounds, -duration, -connections, -threads, -sign-ins, -h2-clients and -h2-streams must be positive")
	}
	if len(o.memSessions) == 0 {
		return errors.New("-mem-sessions: positive counts in ascending order, comma-separated, e.g. 10000,100000")
	}
	return nil
}

// repeatSignIn signs in n times and returns the first result and all.
func repeatSignIn(ctx context.Context, n int, do func() (*signIn, error)) (*signIn, []*signIn, error) {
	var all []*signIn
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		s, err := do()
		if err != nil {
			return nil, nil, err
		}
		all = append(all, s)
	}
	return all[0], all, nil
}

// checkRun checks that every request of a wrk run succeeded and reached
// the upstream as the configuration promises: a redirect to the sign-in
// page would count as a success for wrk, not for the upstream.
func checkRun(c *config, res *wrkResult, total, ok int64, connections int, bad string) error {
	switch {
	case res.requests == 0:
		return fmt.Errorf("%s: no request completed", c.title)
	case res.non2xx3xx > 0 || res.socketErrors > 0:
		return fmt.Errorf("%s: %d responses not 2xx/3xx and %d socket errors in %d requests", c.title, res.non2xx3xx, res.socketErrors, res.requests)
	case total < res.requests || total > res.requests+int64(4*connections):
		// Requests still in flight when the load stops reach the upstream
		// without being counted: a few per connection (stream) at most.
		return fmt.Errorf("%s: the load completed %d requests, the upstream received %d", c.title, res.requests, total)
	case ok != total:
		return fmt.Errorf("%s: %d of %d requests reached the upstream not as promised; the first: %s", c.title, total-ok, total, bad)
	}
	return nil
}

// memoryResult is the memory check: RSS (and live heap after a forced GC)
// of Traefik alone and of Traefik with the plugin after the same number of
// requests, then with the plugin holding counts[i] distinct sessions.
type memoryResult struct {
	requests int
	counts   []int
	// bound is what the plugin's two session caches may hold at most
	// (the session store's two generations and the fast path's).
	bound int64
	steps []memoryStep
	// after maps a Traefik's name to its step after the requests
	// ("alone", "loaded", "noop", "plugin"), and sessions[i] is the step
	// after counts[i] distinct sessions.
	after    map[string]int
	sessions []int
	// pastBound is what a request with the first session got once all
	// the others had come: 200 while it is remembered, the restore hop
	// once the bound pushed it out.
	pastBound string
}

// sessionCachesBound mirrors the plugin's bounds (sessionstore.go,
// sessioncache.go): two generations of 32 MiB of remembered sessions and
// two of 4 MiB of the fast path's.
const sessionCachesBound = 2*32<<20 + 2*4<<20

type memoryStep struct {
	what      string
	rss, heap int64
}

func memoryCheck(ctx context.Context, o *options, s *site, dir string, up *upstream, pluginMiddleware map[string]interface{}, aliceHeaders map[string]string, cookie, secret, cookieName, tenantID string) (*memoryResult, error) {
	res := &memoryResult{requests: o.memRequests, counts: o.memSessions, bound: sessionCachesBound, after: map[string]int{}}
	measure := func(tr *traefik, what string) error {
		heap, err := tr.heapAfterGC()
		if err != nil {
			return err
		}
		rss, err := tr.rss()
		if err != nil {
			return err
		}
		res.steps = append(res.steps, memoryStep{what: what, rss: rss, heap: heap})
		progress("memory: %-58s RSS %s, live heap %s", what, mib(rss), mib(heap))
		return nil
	}
	lines := o.requestLines(cookie)
	sent, kept := o.cookies(cookie)

	// Traefik alone, without and with Yaegi holding the plugin (loaded, on
	// no router), and with the do-nothing plugin: the second tells the
	// plugin's code from its requests, the third what any plugin costs.
	runs := []struct {
		what, name, key string
		ep              *entrypoint
		want            expectation
		load            []string
	}{
		{"Traefik alone", "traefik-alone", "alone", &entrypoint{name: "alone"}, expectation{cookie: sent, checkCookie: true}, nil},
		{"Traefik alone, plugin loaded and unused", "traefik-loaded", "loaded", &entrypoint{name: "alone"}, expectation{cookie: sent, checkCookie: true}, []string{pluginKey}},
		{"Traefik + do-nothing plugin", "traefik-noop", "noop", &entrypoint{
			name:       "noop",
			middleware: map[string]interface{}{"plugin": map[string]interface{}{noopKey: map[string]interface{}{"value": "1"}}},
		}, expectation{cookie: sent, checkCookie: true, noop: true}, nil},
	}
	for _, r := range runs {
		progress("memory check: %s, %d requests", r.what, o.memRequests)
		tr, err := startTraefik(ctx, s, r.name, filepath.Join(dir, "mem-"+r.name), []*entrypoint{r.ep}, r.load...)
		if err != nil {
			return nil, err
		}
		up.expect(r.ep.port, r.what, r.want)
		err = measure(tr, r.what+", started")
		if err == nil {
			err = drivePromised(ctx, s.cert, up, r.ep, lines, nil, o.memRequests, o.memConnections, r.what)
		}
		if err == nil {
			err = measure(tr, fmt.Sprintf("%s, after %d requests", r.what, o.memRequests))
			res.after[r.key] = len(res.steps) - 1
		}
		tr.stop()
		if err != nil {
			return nil, err
		}
	}

	plugin := &entrypoint{name: "plugin", middleware: pluginMiddleware}
	progress("memory check: Traefik with the plugin, %d signed-in requests, then %v distinct sessions", o.memRequests, o.memSessions)
	tr, err := startTraefik(ctx, s, "traefik-plugin", filepath.Join(dir, "mem-plugin"), []*entrypoint{plugin})
	if err != nil {
		return nil, err
	}
	defer tr.stop()
	// This Traefik never saw the sign-in of cookie, and the load carries
	// no portal cookie for the restore hop: a sign-in of its own
	// (before the upstream checks its requests).
	si, err := pluginSignIn(ctx, s.cert, plugin, cookieName)
	if err != nil {
		return nil, fmt.Errorf("memory check: %v", err)
	}
	lines = o.requestLines(si.cookie)
	up.expect(plugin.port, "Traefik + plugin", expectation{identity: aliceHeaders, cookie: kept, checkCookie: true})
	if err := measure(tr, "Traefik + plugin, started"); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("Traefik + plugin, after %d signed-in requests", o.memRequests)
	if err := drivePromised(ctx, s.cert, up, plugin, lines, nil, o.memRequests, o.memConnections, what); err != nil {
		return nil, err
	}
	if err := measure(tr, what); err != nil {
		return nil, err
	}
	res.after["plugin"] = len(res.steps) - 1
	// Distinct users: their identity headers differ, each must be there.
	anyone := map[string]string{}
	for name := range aliceHeaders {
		anyone[name] = ""
	}
	up.expect(plugin.port, "Traefik + plugin, distinct sessions", expectation{identity: anyone, cookie: kept, checkCookie: true})
	entra := pluginMiddleware["plugin"].(map[string]interface{})[pluginKey].(map[string]interface{})["microsoftEntraID"].(map[string]interface{})
	aad := session.AAD(cookieName, entra["authorityHost"].(string), tenantID, entra["clientID"].(string))
	sealer, err := session.NewSealer(secret, nil)
	if err != nil {
		return nil, err
	}
	var first string
	for done, i := 0, 0; i < len(o.memSessions); i++ {
		n := o.memSessions[i]
		olds, err := sealSessions(sealer, cookieName, aad, tenantID, done, n-done)
		if err != nil {
			return nil, err
		}
		what := fmt.Sprintf("Traefik + plugin, with %d distinct sessions", n)
		handles, err := moveSessions(ctx, o, s.cert, up, plugin, olds, cookieName, what)
		if err != nil {
			return nil, err
		}
		if first == "" {
			first = handles[0]
		}
		done = n
		if err := measure(tr, what); err != nil {
			return nil, err
		}
		res.sessions = append(res.sessions, len(res.steps)-1)
	}
	// The first session, after all the others: served while remembered,
	// else one restore hop (this request carries no portal cookie to
	// take it with), never an error.
	c := client(s.cert, 1)
	defer c.CloseIdleConnections()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	sent, _ = o.cookies(first)
	resp, err := c.Do(newRequest(ctx, plugin.url("/"), o.headerLines(), sent))
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	hop := "/portals/" + portal + "/session?"
	switch loc := resp.Header.Get("Location"); {
	case resp.StatusCode == http.StatusOK:
		res.pastBound = "still remembered: served (200)"
	case resp.StatusCode == http.StatusTemporaryRedirect && strings.HasPrefix(loc, hop):
		res.pastBound = "pushed out by the bound: the restore hop (307 to " + hop + "...)"
	default:
		return nil, fmt.Errorf("memory check: the first of %d sessions, after the others: %s, Location %q; want 200 or the restore hop", o.memSessions[len(o.memSessions)-1], resp.Status, loc)
	}
	progress("memory check: the first session after the others: %s", res.pastBound)
	return res, nil
}

// moveSessions sends each of the sealed sessions olds (cookies of the
// plugin's earlier format) once, as a browser does after the upgrade: the
// plugin remembers the session and answers with its new session cookie,
// which the next request carries. It returns those cookies, and checks
// that every request reached the upstream as promised.
func moveSessions(ctx context.Context, o *options, cert *certificate, up *upstream, ep *entrypoint, olds []string, cookieName, what string) ([]string, error) {
	total0, ok0 := up.counts(ep.port)
	handles := make([]string, len(olds))
	c := client(cert, o.memConnections)
	defer c.CloseIdleConnections()
	get := func(cookie string) (*http.Response, error) {
		sent, _ := o.cookies(cookie)
		resp, err := c.Do(newRequest(ctx, ep.url("/"), o.headerLines(), sent))
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %s", resp.Status)
		}
		return resp, nil
	}
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < o.memConnections; w++ {
		w := w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(olds) && ctx.Err() == nil && firstErr.Load() == nil; i += o.memConnections {
				resp, err := get(olds[i])
				if err == nil {
					err = fmt.Errorf("no new %s cookie", cookieName)
					for _, ck := range resp.Cookies() {
						if ck.Name == cookieName && ck.Value != "" {
							handles[i], err = ck.Name+"="+ck.Value, nil
						}
					}
				}
				if err == nil {
					_, err = get(handles[i])
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Sprintf("session %d: %v", i, err))
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e := firstErr.Load(); e != nil {
		return nil, fmt.Errorf("%s: %v", what, e)
	}
	total1, ok1 := up.counts(ep.port)
	if n := int64(2 * len(olds)); total1-total0 != n || ok1-ok0 != n {
		return nil, fmt.Errorf("%s: %d requests, %d reached the upstream, %d as promised: %s", what, n, total1-total0, ok1-ok0, up.bad(ep.port))
	}
	return handles, nil
}

// drivePromised sends n requests with drive and checks that every one
// reached the upstream as promised.
func drivePromised(ctx context.Context, cert *certificate, up *upstream, ep *entrypoint, lines, cookies []string, n, conc int, what string) error {
	return drivePromisedWith(ctx, client(cert, conc), up, ep, lines, cookies, n, conc, what)
}

// drivePromisedWith is drivePromised with the client c.
func drivePromisedWith(ctx context.Context, c *http.Client, up *upstream, ep *entrypoint, lines, cookies []string, n, conc int, what string) error {
	total0, ok0 := up.counts(ep.port)
	if _, err := drive(ctx, c, ep.url("/"), lines, cookies, n, conc); err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	total1, ok1 := up.counts(ep.port)
	if total1-total0 != int64(n) || ok1-ok0 != int64(n) {
		return fmt.Errorf("%s: %d requests, %d reached the upstream, %d as promised: %s", what, n, total1-total0, ok1-ok0, up.bad(ep.port))
	}
	return nil
}

// sealSessions makes n valid session cookies of n different users in 2
// groups with a refresh token of Entra's usual size, from the from-th on,
// sealed as the plugin sealed them before it kept sessions
// in memory (same secret, bound to the cookie and the app by aad,
// session.AAD): signing in n times through the tenant would take minutes.
// The plugin moves each into its memory on the first request with it, as
// on the first request after the upgrade, and issues its small cookie.
func sealSessions(sealer *session.Sealer, cookieName, aad, tenantID string, from, n int) ([]string, error) {
	now := time.Now()
	cookies := make([]string, n)
	for i := range cookies {
		u := from + i
		s := &session.Session{
			OID:               fmt.Sprintf("00000000-0000-4000-8000-%012d", u),
			TID:               tenantID,
			Name:              fmt.Sprintf("User %d", u),
			PreferredUsername: fmt.Sprintf("user%d@contoso.example", u),
			Email:             fmt.Sprintf("user%d@contoso.example", u),
			Groups:            []string{"0d9a8b7c-1111-4c2d-9e3f-4a5b6c7d8e9f", "1e2f3a4b-2222-4c5d-8e6f-7a8b9c0d1e2f"},
			Roles:             []string{"Reader"},
			// Entra's usual size: what a session holds with renewal on.
			RefreshToken: "1.A" + randomString(1797),
			IssuedAt:     now.Unix(),
			AuthTime:     now.Unix(),
			Expires:      now.Add(time.Hour).Unix(),
		}
		plain, err := s.Marshal()
		if err != nil {
			return nil, err
		}
		sealed, err := sealer.Seal(plain, aad, time.Unix(s.Expires, 0))
		if err != nil {
			return nil, err
		}
		cookies[i] = cookieName + "=" + sealed
	}
	return cookies, nil
}

// signInSummary is what N sign-ins took.
type signInSummary struct {
	what                string
	n                   int
	callbackP50, cbMax  time.Duration
	callbackMean, total time.Duration
}

func summarizeSignIns(what string, all []*signIn) signInSummary {
	cb := make([]time.Duration, len(all))
	var sumCB, sumTotal time.Duration
	for i, s := range all {
		cb[i] = s.callback
		sumCB += s.callback
		sumTotal += s.total
	}
	sort.Slice(cb, func(i, j int) bool { return cb[i] < cb[j] })
	n := time.Duration(len(all))
	return signInSummary{what: what, n: len(all), callbackP50: cb[len(cb)/2], cbMax: cb[len(cb)-1], callbackMean: sumCB / n, total: sumTotal / n}
}

func progress(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// machine describes this machine: CPUs, CPU model, memory, load.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if i := strings.IndexByte(line, ':'); i >= 0 {
					model = strings.TrimSpace(line[i+1:])
				}
				break
			}
		}
	}
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" {
				var kb int64
				fmt.Sscan(f[1], &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s memory, %s, load average %s", runtime.NumCPU(), model, mem, runtime.GOOS+"/"+runtime.GOARCH, loadAverage())
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// loadRounds warms each configuration up with load, then loads each in
// turn for o.duration, o.rounds times in rotating order, checking that
// every request reached the upstream as promised (inflight requests may
// still be on their way when the load stops). label tells the sets apart
// in the progress lines and the CPU profiles' names.
func loadRounds(ctx context.Context, o *options, tr *traefik, up *upstream, configs []*config, label string, inflight int,
	load func(ctx context.Context, c *config, d time.Duration) (*wrkResult, error)) error {
	progress("%swarming up (%v per configuration)", label, o.warmup)
	for _, c := range configs {
		if _, err := load(ctx, c, o.warmup); err != nil {
			return err
		}
	}
	for r := 0; r < o.rounds; r++ {
		for i := range configs {
			c := configs[(r+i)%len(configs)]
			total0, ok0 := up.counts(c.ep.port)
			var profiled chan error
			if o.cpuProfiles != "" && r == 0 {
				profiled = make(chan error, 1)
				file := filepath.Join(o.cpuProfiles, strings.ToLower(strings.TrimSuffix(strings.ReplaceAll(label, "/", ""), " "))+c.ep.name+".pprof")
				go func() { profiled <- tr.cpuProfile(ctx, o.duration-time.Second, file) }()
			}
			res, err := load(ctx, c, o.duration)
			if err != nil {
				return err
			}
			if profiled != nil {
				if err := <-profiled; err != nil {
					return fmt.Errorf("cpu profile: %v", err)
				}
			}
			total1, ok1 := up.counts(c.ep.port)
			progress("%sround %d/%d %-50s %9.0f req/s  p50 %-9s p99 %s", label, r+1, o.rounds, c.title, res.rps, ms(res.p50), ms(res.p99))
			if err := checkRun(c, res, total1-total0, ok1-ok0, inflight, up.bad(c.ep.port)); err != nil {
				return err
			}
			c.rounds = append(c.rounds, res)
		}
	}
	return nil
}

// measureLatency measures each configuration's latency at o.rate requests
// per second (paced), over HTTP/2 with h2, checking that every request
// reached the upstream as promised.
func measureLatency(ctx context.Context, o *options, cert *certificate, up *upstream, configs []*config, h2 bool) error {
	over := ""
	if h2 {
		over = " over HTTP/2"
	}
	for _, c := range configs {
		total0, ok0 := up.counts(c.ep.port)
		ls, err := paced(ctx, cert, c.ep.url("/"), c.lines, o.rate, o.rateDuration, 4, h2)
		if err != nil {
			return err
		}
		total1, ok1 := up.counts(c.ep.port)
		if ok1-ok0 != total1-total0 {
			return fmt.Errorf("%s: paced requests reached the upstream not as promised: %s", c.title, up.bad(c.ep.port))
		}
		c.paced50, c.paced99 = percentile(ls, 50), percentile(ls, 99)
		progress("latency at %d req/s%s %-42s p50 %-9s p99 %s", o.rate, over, c.title, ms(c.paced50), ms(c.paced99))
	}
	return nil
}

// number is what the configuration's title starts with: "1", "H2".
func (c *config) number() string {
	return strings.TrimSuffix(strings.Fields(c.title)[0], ".")
}
