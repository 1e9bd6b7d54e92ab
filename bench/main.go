// Command bench measures what the entraauth plugin costs a signed-in
// request, side by side with Traefik alone and with Traefik's forwardAuth
// in front of oauth2-proxy, in one run on this machine.
//
// It starts a small upstream, the fake Entra tenant of
// entraid/entraidtest, oauth2-proxy (an OIDC client of that tenant) and one
// Traefik with three plain-HTTP entry points on 127.0.0.1 (no TLS, so that
// no handshake is measured):
//
//  1. alone: no middleware, the limit;
//  2. plugin: the plugin from this repository in local mode;
//  3. oauth2-proxy: forwardAuth to oauth2-proxy's /oauth2/auth.
//
// It signs in for real (through Traefik for the plugin, through
// oauth2-proxy's login flow for it), then loads each entry point with wrk
// in turn, for equal durations, over several rounds, each request carrying
// the valid session cookie (the plugin's for 1 and 2). It then prints
// requests/s and latency, the ratios, Traefik's memory, a memory check
// (Traefik alone against Traefik with the plugin after many signed-in
// requests and many distinct sessions) and what a sign-in callback costs.
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
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/session"
)

type options struct {
	repo, traefik, oauth2Proxy, wrk string

	smoke                bool
	duration, warmup     time.Duration
	rounds               int
	threads, connections int
	memRequests          int
	memSessions          int
	memConnections       int
	signIns              int
	rate                 int
	rateDuration         time.Duration
	timeout              time.Duration
	markdown             string
	cpuProfiles          string
}

func parseOptions() *options {
	o := &options{}
	flag.StringVar(&o.repo, "repo", "..", "the plugin's repository (loaded by Traefik in local plugin mode)")
	flag.StringVar(&o.traefik, "traefik", "", "Traefik binary (default: <repo>/.cache/traefik-v3.6.12/traefik)")
	flag.StringVar(&o.oauth2Proxy, "oauth2-proxy", "", `oauth2-proxy binary (default: <repo>/.cache/bin/oauth2-proxy); "none" leaves configuration 3 out`)
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	flag.BoolVar(&o.smoke, "smoke", false, "check that the benchmark works, quickly: short runs, one round, small memory check")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load per configuration and round")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unrecorded load per configuration before the first round (durations are whole seconds)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each loads every configuration once, in rotating order")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.IntVar(&o.connections, "connections", 16, "wrk connections, kept open")
	flag.IntVar(&o.memRequests, "mem-requests", 200000, "signed-in requests before the memory check")
	flag.IntVar(&o.memSessions, "mem-sessions", 20000, "distinct sessions per step of the memory check (two steps)")
	flag.IntVar(&o.memConnections, "mem-connections", 8, "connections of the memory check's client")
	flag.IntVar(&o.signIns, "sign-ins", 50, "sign-ins timed per configuration")
	flag.IntVar(&o.rate, "rate", 500, "requests/s of the latency measure, below every configuration's saturation")
	flag.DurationVar(&o.rateDuration, "rate-duration", 10*time.Second, "length of the latency measure per configuration")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "the whole run stops after this")
	flag.StringVar(&o.markdown, "markdown", "", "also write the results as Markdown to this file")
	flag.StringVar(&o.cpuProfiles, "cpuprofiles", "", "write a CPU profile of Traefik under each configuration's first round to this directory (go tool pprof <traefik> <file>)")
	flag.Parse()
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
			{"mem-sessions", func() { o.memSessions = 500 }},
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

// config is one of the three configurations under load.
type config struct {
	title    string
	ep       *entrypoint
	cookie   string
	identity bool // the upstream must see a signed-in user on every request
	rounds   []*wrkResult
	// paced50 and paced99 are the latency percentiles at the fixed rate.
	paced50, paced99 time.Duration
}

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

	up, err := startUpstream()
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { up.srv.Close() })

	alice := entraidtest.User{
		OID:               "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
		Name:              "Alice Example",
		PreferredUsername: "alice@contoso.example",
		Email:             "alice@contoso.example",
		Groups:            []string{"0d9a8b7c-1111-4c2d-9e3f-4a5b6c7d8e9f", "1e2f3a4b-2222-4c5d-8e6f-7a8b9c0d1e2f"},
		Roles:             []string{"Reader"},
	}
	tenant := entraidtest.NewTenant(entraidtest.Options{Users: []entraidtest.User{alice}, SignIn: alice.PreferredUsername})
	cleanups = append(cleanups, tenant.Close)

	secret := randomString(48)
	const cookieName = "entraauth_main"
	pluginMiddleware := map[string]interface{}{
		"plugin": map[string]interface{}{pluginKey: map[string]interface{}{
			"microsoftEntraID": map[string]interface{}{
				"tenantID":      tenant.TenantID,
				"clientID":      tenant.ClientID,
				"clientSecret":  tenant.ClientSecret,
				"authorityHost": tenant.URL,
			},
			"session": map[string]interface{}{"secret": secret, "insecureCookies": true},
		}},
	}

	var o2p *oauth2Proxy
	if o.oauth2Proxy != "" {
		progress("starting oauth2-proxy")
		o2p, err = startOAuth2Proxy(ctx, o.oauth2Proxy, filepath.Join(dir, "oauth2-proxy"), tenant.Issuer(), tenant.ClientID, tenant.ClientSecret)
		if err != nil {
			return err
		}
		cleanups = append(cleanups, o2p.stop)
	}

	configs := []*config{
		{title: "1. Traefik alone", ep: &entrypoint{name: "alone"}},
		{title: "2. Traefik + entraauth plugin", ep: &entrypoint{name: "plugin", middleware: pluginMiddleware}, identity: true},
	}
	if o2p != nil {
		configs = append(configs, &config{title: "3. Traefik + forwardAuth to oauth2-proxy", identity: true, ep: &entrypoint{
			name: "oauth2proxy",
			middleware: map[string]interface{}{"forwardAuth": map[string]interface{}{
				"address":             o2p.url("/oauth2/auth"),
				"authResponseHeaders": []string{"X-Auth-Request-User", "X-Auth-Request-Email"},
			}},
		}})
	}
	eps := make([]*entrypoint, 0, len(configs))
	for _, c := range configs {
		eps = append(eps, c.ep)
	}
	progress("starting Traefik with %d entry points", len(eps))
	tr, err := startTraefik(ctx, "traefik", o.traefik, o.repo, filepath.Join(dir, "traefik"), up.url, eps, false)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, tr.stop)

	// Real sign-ins give the cookies the load carries; the timed ones are
	// the callback's cost.
	progress("signing in (%d times per configuration)", o.signIns)
	plugin, pluginSignIns, err := repeatSignIn(ctx, o.signIns, func() (*signIn, error) {
		return pluginSignIn(ctx, configs[1].ep, cookieName)
	})
	if err != nil {
		return fmt.Errorf("plugin sign-in: %v", err)
	}
	configs[0].cookie = plugin.cookie // the same request bytes as 2
	configs[1].cookie = plugin.cookie
	var o2pSignIns []*signIn
	if o2p != nil {
		var s *signIn
		s, o2pSignIns, err = repeatSignIn(ctx, o.signIns, func() (*signIn, error) { return oauth2ProxySignIn(ctx, o2p) })
		if err != nil {
			return fmt.Errorf("oauth2-proxy sign-in: %v", err)
		}
		configs[2].cookie = s.cookie
	}
	for _, c := range configs {
		if err := checkSignedIn(ctx, up, c); err != nil {
			return err
		}
	}

	progress("warming up (%v per configuration)", o.warmup)
	for _, c := range configs {
		if _, err := runWrk(ctx, o.wrk, o.threads, o.connections, o.warmup, c.ep.url("/"), c.cookie); err != nil {
			return err
		}
	}
	for r := 0; r < o.rounds; r++ {
		for i := range configs {
			c := configs[(r+i)%len(configs)]
			total0, auth0 := up.snapshot(c.ep.port)
			var profiled chan error
			if o.cpuProfiles != "" && r == 0 {
				profiled = make(chan error, 1)
				file := filepath.Join(o.cpuProfiles, c.ep.name+".pprof")
				go func() { profiled <- tr.cpuProfile(ctx, o.duration-time.Second, file) }()
			}
			res, err := runWrk(ctx, o.wrk, o.threads, o.connections, o.duration, c.ep.url("/"), c.cookie)
			if err != nil {
				return err
			}
			if profiled != nil {
				if err := <-profiled; err != nil {
					return fmt.Errorf("cpu profile: %v", err)
				}
			}
			total1, auth1 := up.snapshot(c.ep.port)
			progress("round %d/%d %-42s %9.0f req/s  p50 %-9s p99 %s", r+1, o.rounds, c.title, res.rps, ms(res.p50), ms(res.p99))
			if err := checkRun(c, res, total1-total0, auth1-auth0, o.connections); err != nil {
				return err
			}
			c.rounds = append(c.rounds, res)
		}
	}
	rss, err := tr.rss()
	if err != nil {
		return err
	}
	// Latency below saturation: what a middleware adds to one request,
	// where the rounds above measure what it costs the machine.
	for _, c := range configs {
		total0, auth0 := up.snapshot(c.ep.port)
		ls, err := paced(ctx, c.ep.url("/"), c.cookie, o.rate, o.rateDuration, 4)
		if err != nil {
			return err
		}
		total1, auth1 := up.snapshot(c.ep.port)
		if c.identity && auth1-auth0 != total1-total0 {
			return fmt.Errorf("%s: paced requests reached the upstream without a signed-in user", c.title)
		}
		c.paced50, c.paced99 = percentile(ls, 50), percentile(ls, 99)
		progress("latency at %d req/s %-42s p50 %-9s p99 %s", o.rate, c.title, ms(c.paced50), ms(c.paced99))
	}
	rep := &report{machine: m, opts: o, configs: configs, traefikRSS: rss}
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

	if rep.memory, err = memoryCheck(ctx, o, dir, up, pluginMiddleware, plugin.cookie, secret, cookieName, tenant.TenantID); err != nil {
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
		fmt.Println("bench smoke: ok (every configuration served signed-in requests without an error)")
	}
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
		o.oauth2Proxy = ""
		progress("oauth2-proxy left out (-oauth2-proxy none)")
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
	if o.rounds < 1 || o.duration <= 0 || o.connections < 1 || o.threads < 1 || o.signIns < 1 {
		return errors.New("-rounds, -duration, -connections, -threads and -sign-ins must be positive")
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

// checkSignedIn sends one request as the load will and checks that it
// reached the upstream with an identity where one is required.
func checkSignedIn(ctx context.Context, up *upstream, c *config) error {
	total0, auth0 := up.snapshot(c.ep.port)
	var cookies []string
	if c.cookie != "" {
		cookies = []string{c.cookie}
	}
	if _, err := drive(ctx, c.ep.url("/"), cookies, 1, 1); err != nil {
		return fmt.Errorf("%s: %v", c.title, err)
	}
	total1, auth1 := up.snapshot(c.ep.port)
	if total1-total0 != 1 || c.identity && auth1-auth0 != 1 {
		return fmt.Errorf("%s: the request did not reach the upstream signed in", c.title)
	}
	return nil
}

// checkRun checks that every request of a wrk run succeeded and, where a
// session is required, reached the upstream signed in: a redirect to the
// sign-in page would count as a success for wrk, not for the upstream.
func checkRun(c *config, res *wrkResult, total, authenticated int64, connections int) error {
	switch {
	case res.requests == 0:
		return fmt.Errorf("%s: no request completed", c.title)
	case res.non2xx3xx > 0 || res.socketErrors > 0:
		return fmt.Errorf("%s: %d responses not 2xx/3xx and %d socket errors in %d requests", c.title, res.non2xx3xx, res.socketErrors, res.requests)
	case total < res.requests || total > res.requests+int64(4*connections):
		// Requests still in flight when wrk stops reach the upstream
		// without being counted by wrk: a few per connection at most.
		return fmt.Errorf("%s: wrk completed %d requests, the upstream received %d", c.title, res.requests, total)
	case c.identity && authenticated != total:
		return fmt.Errorf("%s: %d of %d requests reached the upstream without a signed-in user", c.title, total-authenticated, total)
	}
	return nil
}

// memoryResult is the memory check: RSS (and live heap after a forced GC)
// of Traefik alone and of Traefik with the plugin after the same number of
// requests, then with the plugin after two rounds of distinct sessions.
type memoryResult struct {
	requests, sessions int
	steps              []memoryStep
}

type memoryStep struct {
	what      string
	rss, heap int64
}

func memoryCheck(ctx context.Context, o *options, dir string, up *upstream, pluginMiddleware map[string]interface{}, cookie, secret, cookieName, tenantID string) (*memoryResult, error) {
	res := &memoryResult{requests: o.memRequests, sessions: o.memSessions}
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

	// Traefik alone, without and with Yaegi holding the plugin (loaded, on
	// no router): the second tells the plugin's code from its requests.
	for _, loaded := range []bool{false, true} {
		what, name := "Traefik alone", "traefik-alone"
		if loaded {
			what, name = "Traefik alone, plugin loaded and unused", "traefik-loaded"
		}
		progress("memory check: %s, %d requests", what, o.memRequests)
		alone := &entrypoint{name: "alone"}
		tr, err := startTraefik(ctx, name, o.traefik, o.repo, filepath.Join(dir, "mem-"+name), up.url, []*entrypoint{alone}, loaded)
		if err != nil {
			return nil, err
		}
		err = measure(tr, what+", started")
		if err == nil {
			_, err = drive(ctx, alone.url("/"), []string{cookie}, o.memRequests, o.memConnections)
		}
		if err == nil {
			err = measure(tr, fmt.Sprintf("%s, after %d requests", what, o.memRequests))
		}
		tr.stop()
		if err != nil {
			return nil, err
		}
	}

	plugin := &entrypoint{name: "plugin", middleware: pluginMiddleware}
	progress("memory check: Traefik with the plugin, %d signed-in requests, then %d+%d distinct sessions", o.memRequests, o.memSessions, o.memSessions)
	tr, err := startTraefik(ctx, "traefik-plugin", o.traefik, o.repo, filepath.Join(dir, "mem-plugin"), up.url, []*entrypoint{plugin}, false)
	if err != nil {
		return nil, err
	}
	defer tr.stop()
	if err := measure(tr, "Traefik + plugin, started"); err != nil {
		return nil, err
	}
	signedIn := func(cookies []string, n int, what string) error {
		total0, auth0 := up.snapshot(plugin.port)
		if _, err := drive(ctx, plugin.url("/"), cookies, n, o.memConnections); err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		total1, auth1 := up.snapshot(plugin.port)
		if total1-total0 != int64(n) || auth1-auth0 != int64(n) {
			return fmt.Errorf("%s: %d requests, %d reached the upstream, %d signed in", what, n, total1-total0, auth1-auth0)
		}
		return measure(tr, what)
	}
	if err := signedIn([]string{cookie}, o.memRequests, fmt.Sprintf("Traefik + plugin, after %d signed-in requests", o.memRequests)); err != nil {
		return nil, err
	}
	for step := 1; step <= 2; step++ {
		entra := pluginMiddleware["plugin"].(map[string]interface{})[pluginKey].(map[string]interface{})["microsoftEntraID"].(map[string]interface{})
		aad := session.AAD(cookieName, entra["authorityHost"].(string), tenantID, entra["clientID"].(string))
		cookies, err := sealSessions(secret, cookieName, aad, tenantID, o.memSessions)
		if err != nil {
			return nil, err
		}
		// Each session twice: the second request of each is the one a
		// cache would serve.
		cookies = append(cookies, cookies...)
		what := fmt.Sprintf("Traefik + plugin, after %d distinct sessions", step*o.memSessions)
		if err := signedIn(cookies, len(cookies), what); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// sealSessions makes n valid session cookies of n different users, sealed
// as the plugin seals them (same secret, bound to the cookie and the app by
// aad, session.AAD): signing in n times through the tenant would take
// minutes.
func sealSessions(secret, cookieName, aad, tenantID string, n int) ([]string, error) {
	sealer, err := session.NewSealer(secret, nil)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cookies := make([]string, n)
	for i := range cookies {
		s := &session.Session{
			OID:               fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			TID:               tenantID,
			Name:              fmt.Sprintf("User %d", i),
			PreferredUsername: fmt.Sprintf("user%d@contoso.example", i),
			Email:             fmt.Sprintf("user%d@contoso.example", i),
			Groups:            []string{"0d9a8b7c-1111-4c2d-9e3f-4a5b6c7d8e9f", "1e2f3a4b-2222-4c5d-8e6f-7a8b9c0d1e2f"},
			Roles:             []string{"Reader"},
			IssuedAt:          now.Unix(),
			AuthTime:          now.Unix(),
			Expires:           now.Add(time.Hour).Unix(),
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
