package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
	"github.com/tfa-plugin/entraauth/jwt"
	"github.com/tfa-plugin/entraauth/session"
)

// The soak test: through the real Traefik, soakWorkers browsers, signed in
// as soakUsers different users, make signed-in requests as fast as they
// can for SOAK_DURATION (longer if needed to reach soakMinRequests), mixed
// with sign-outs, new sign-ins and anonymous calls. Half of them use a
// router with the shortest lifetime and an access token for an API
// (upstreamAccessToken), whose sessions they age past the lifetime every
// soakAgeEvery operations, so that renewals and tokens are soaked too.
// Every answer must be the expected one for the browser's user (their
// identity and, with tokens, their own token, never another user's), and
// Traefik's goroutines and memory must be back where they were once the
// load stops: in particular the live heap may not grow by more than
// soakHeapPerRequest per request.
//
// It runs only when SOAK_DURATION is set (make soak: 60s; make soak-short:
// 10s, part of make test), so that `go test ./...` in this module does not
// run it by accident; when it is set, the test runs and fails on any error,
// it never skips.
const (
	soakWorkers = 64
	soakUsers   = 8
	// Every soakLogoutEvery-th operation of a worker signs out, checks that
	// it is signed out, and signs in again; every soakNavigateEvery-th is a
	// page navigation rather than an API call; every soakAnonymousEvery-th
	// is a call without cookies.
	soakLogoutEvery    = 50
	soakNavigateEvery  = 7
	soakAnonymousEvery = 23
	soakWarmUp         = 2 * time.Second
	// On the token router, every soakAgeEvery-th operation makes the
	// session older than the lifetime, as time would (a minute is too long
	// for a short soak), and checks that the next request renews it.
	soakAgeEvery  = 20
	soakTokenHost = app2Host
	soakLifetime  = time.Minute
	soakTokenAPI  = "api://soak-orders"

	// Tolerances for "flat at the end", compared with the state after the
	// warm-up (see checkFlat for why these values).
	soakGoroutineSlack = 4
	soakHeapSlack      = 16 << 20
	soakHeapPerRequest = 512
	soakHeapPerRenewal = 32 << 10
	soakRSSSlack       = 96 << 20
	// soakMinRequests is enough load for soakHeapPerRequest to stand
	// above the noise of the live heap (about a megabyte either way) and
	// the bounded caches filling with the sign-ins of the load; a slow
	// machine runs longer than SOAK_DURATION to reach it, up to
	// soakMaxExtension more.
	soakMinRequests  = 10000
	soakMaxExtension = 2 * time.Minute
)

// soakUser is the i-th user of the soak's tenant: each with its own object
// ID and a different number of groups, so that sessions differ in size.
func soakUser(i int) entraidtest.User {
	u := entraidtest.User{
		OID:               fmt.Sprintf("50a50000-0000-4000-8000-%012d", i),
		Name:              fmt.Sprintf("Soak User %d", i),
		PreferredUsername: fmt.Sprintf("soak%d@contoso.example", i),
		Email:             fmt.Sprintf("soak%d@contoso.example", i),
		Roles:             []string{"Reader"},
	}
	for g := 0; g < i; g++ {
		u.Groups = append(u.Groups, fmt.Sprintf("60a60000-0000-4000-8000-%06d%06d", i, g))
	}
	return u
}

// soakStats is what the workers count; guarded by mu.
type soakStats struct {
	mu         sync.Mutex
	requests   int
	signIns    int
	logouts    int
	anonymous  int
	renewals   int             // aged sessions renewed in-band
	latencies  []time.Duration // signed-in requests
	unexpected int
	examples   []string
}

func (s *soakStats) fail(format string, args ...interface{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unexpected++
	if len(s.examples) < 10 {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

// soakClient is one browser of the soak. Its methods report failures to
// the stats instead of failing the test: they run on worker goroutines.
type soakClient struct {
	e     *env
	c     *client
	stats *soakStats
	app   string
	user  entraidtest.User // who this browser signs in as
	// ager, on the token router, ages the browser's session; nil on the
	// other router, which sets no token.
	ager *sessionAger
}

// sessionAger makes a browser's session look older than the lifetime: it
// opens the session cookie with the soak's secret and seals it again,
// issued a lifetime and a second ago. The session cookie is the one that
// opens under its own name's binding (session.AAD), whatever it is called.
type sessionAger struct {
	sealer *session.Sealer
	tenant *entraidtest.Tenant
}

func (a *sessionAger) age(jar http.CookieJar, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	r := &http.Request{Header: http.Header{}}
	for _, c := range jar.Cookies(u) {
		r.AddCookie(c)
	}
	now := time.Now()
	for _, c := range jar.Cookies(u) {
		value, err := session.ReadChunked(r, c.Name)
		if err != nil {
			continue
		}
		aad := session.AAD(c.Name, a.tenant.URL, a.tenant.TenantID, a.tenant.ClientID)
		plain, err := a.sealer.Open(value, aad, now)
		if err != nil {
			continue
		}
		if handle, ok := strings.CutPrefix(string(plain), "h:"); ok {
			// The cookie names the session by its handle: the whole
			// session is in the portal cookie, sealed under the handle.
			if plain, err = a.portalSession(jar, u, c.Name, handle, now); err != nil {
				return err
			}
		}
		s, err := session.Unmarshal(plain)
		if err != nil {
			return err
		}
		// Sealed whole under the session cookie's name, the form of a
		// session from before the handle: the plugin reads it once and
		// moves it, aged, into a new handle and portal cookie.
		s.IssuedAt = now.Add(-soakLifetime - time.Second).Unix()
		b, err := s.Marshal()
		if err != nil {
			return err
		}
		sealed, err := a.sealer.Seal(b, aad, time.Unix(s.Expires, 0))
		if err != nil {
			return err
		}
		h := http.Header{}
		opts := session.CookieOptions{Name: c.Name, Path: "/", Secure: true, MaxAge: int(time.Hour / time.Second), SameSite: http.SameSiteLaxMode}
		if err := session.SetChunked(h, r, opts, sealed); err != nil {
			return err
		}
		jar.SetCookies(u, (&http.Response{Header: h}).Cookies())
		return nil
	}
	return fmt.Errorf("no session cookie opens among %d cookies", len(jar.Cookies(u)))
}

// portalSession opens the portal cookie (Path /portals/main/) that holds
// the whole session of handle, for the session cookie named name.
func (a *sessionAger) portalSession(jar http.CookieJar, app *url.URL, name, handle string, now time.Time) ([]byte, error) {
	portal := strings.TrimPrefix(name, "__Host-") + "_full"
	pu, err := app.Parse("/portals/main/session")
	if err != nil {
		return nil, err
	}
	r := &http.Request{Header: http.Header{}}
	for _, c := range jar.Cookies(pu) {
		r.AddCookie(c)
	}
	value, err := session.ReadChunked(r, portal)
	if err != nil {
		return nil, fmt.Errorf("the portal cookie %s: %v", portal, err)
	}
	aad := session.AAD(portal, a.tenant.URL, a.tenant.TenantID, a.tenant.ClientID) + "\x00" + handle
	return a.sealer.Open(value, aad, now)
}

// exchange sends one request and reads the answer; requests counts it.
func (sc *soakClient) exchange(hc *http.Client, method, rawURL string, header http.Header, body string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	sc.stats.mu.Lock()
	sc.stats.requests++
	sc.stats.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b, err
}

// signedInEcho checks that an answer is the upstream's echo for the
// browser's user: their object ID, no session cookie and, on the token
// router, an access token for the API of that user.
func (sc *soakClient) signedInEcho(resp *http.Response, body []byte) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s: %.200s", resp.Status, body)
	}
	var e echoed
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("not the upstream's echo: %.200s", body)
	}
	if got := e.Header.Get("X-Forwarded-User"); got != sc.user.OID {
		return fmt.Errorf("upstream X-Forwarded-User = %q, want %q", got, sc.user.OID)
	}
	if strings.Contains(e.Header.Get("Cookie"), "entraauth_") {
		return fmt.Errorf("the session cookie reached the upstream")
	}
	if sc.ager == nil {
		if auth := e.Header.Get("Authorization"); auth != "" {
			return fmt.Errorf("upstream Authorization %.20q on a router without tokens", auth)
		}
		return nil
	}
	auth := e.Header.Get("Authorization")
	tok, err := jwt.Parse(strings.TrimPrefix(auth, "Bearer "))
	if err != nil || !strings.HasPrefix(auth, "Bearer ") {
		return fmt.Errorf("upstream Authorization %.40q: want a bearer token (%v)", auth, err)
	}
	if tok.String("oid") != sc.user.OID || tok.String("aud") != soakTokenAPI {
		return fmt.Errorf("upstream token of %q for %q, want %s's for %s", tok.String("oid"), tok.String("aud"), sc.user.OID, soakTokenAPI)
	}
	return nil
}

// renews ages the session, then checks that the next signed-in request
// renews it: the upstream's echo for the user, with a new session cookie.
func (sc *soakClient) renews() {
	if err := sc.ager.age(sc.c.jar, sc.app); err != nil {
		sc.stats.fail("ageing the session: %v", err)
		return
	}
	resp, body, err := sc.exchange(sc.c.hc, http.MethodGet, sc.app+"api/renew", apiHeader(), "")
	if err == nil {
		err = sc.signedInEcho(resp, body)
	}
	if err == nil && !setsCookie(resp) {
		err = fmt.Errorf("no renewed session cookie")
	}
	if err != nil {
		sc.stats.fail("renewal: %v", err)
		return
	}
	sc.stats.mu.Lock()
	sc.stats.renewals++
	sc.stats.mu.Unlock()
}

// setsCookie reports whether resp sets a cookie with a value (a session).
func setsCookie(resp *http.Response) bool {
	for _, c := range resp.Cookies() {
		if c.Value != "" && c.MaxAge >= 0 {
			return true
		}
	}
	return false
}

// signIn follows the sign-in from a navigation to the app back to it,
// choosing the browser's user on the tenant's sign-in page.
func (sc *soakClient) signIn() bool {
	next := sc.app + "sign-in"
	for hop := 0; hop < 6; hop++ {
		method, header, form := http.MethodGet, navigationHeader(), ""
		if strings.HasSuffix(strings.SplitN(next, "?", 2)[0], "/oauth2/v2.0/authorize") {
			// The button of the user on the sign-in page.
			method, form = http.MethodPost, url.Values{"login": {sc.user.PreferredUsername}}.Encode()
			header["Content-Type"] = []string{"application/x-www-form-urlencoded"}
		}
		resp, body, err := sc.exchange(sc.c.hc, method, next, header, form)
		if err != nil {
			sc.stats.fail("sign-in hop %d %s: %v", hop, next, err)
			return false
		}
		if resp.StatusCode == http.StatusFound {
			u, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				sc.stats.fail("sign-in hop %d: bad Location %q", hop, resp.Header.Get("Location"))
				return false
			}
			next = u.String()
			continue
		}
		if err := sc.signedInEcho(resp, body); err != nil {
			sc.stats.fail("sign-in ended at %s: %v", next, err)
			return false
		}
		sc.stats.mu.Lock()
		sc.stats.signIns++
		sc.stats.mu.Unlock()
		return true
	}
	sc.stats.fail("sign-in: too many redirects")
	return false
}

// call is a signed-in API call (or page navigation), timed.
func (sc *soakClient) call(navigation bool) {
	header := apiHeader()
	if navigation {
		header = navigationHeader()
	}
	start := time.Now()
	resp, body, err := sc.exchange(sc.c.hc, http.MethodGet, sc.app+"api/items?n=1", header, "")
	took := time.Since(start)
	if err == nil {
		err = sc.signedInEcho(resp, body)
	}
	if err != nil {
		sc.stats.fail("signed-in request: %v", err)
		return
	}
	sc.stats.mu.Lock()
	sc.stats.latencies = append(sc.stats.latencies, took)
	sc.stats.mu.Unlock()
}

// logout signs out and checks that the session is gone.
func (sc *soakClient) logout() bool {
	h := navigationHeader()
	h["Content-Type"] = []string{"application/x-www-form-urlencoded"}
	u, _ := url.Parse(sc.app)
	h["Origin"] = []string{sc.e.traefik.origin(u.Hostname())}
	resp, body, err := sc.exchange(sc.c.hc, http.MethodPost, sc.app+"portals/main/logout", h, "rd=%2F")
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		sc.stats.fail("logout: %v %v %.200s", err, statusOf(resp), body)
		return false
	}
	resp, body, err = sc.exchange(sc.c.hc, http.MethodGet, sc.app+"api/items", apiHeader(), "")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		sc.stats.fail("after logout: %v %v %.200s", err, statusOf(resp), body)
		return false
	}
	sc.stats.mu.Lock()
	sc.stats.logouts++
	sc.stats.mu.Unlock()
	return true
}

// anonymous is a call without cookies, which must be refused.
func (sc *soakClient) anonymous(hc *http.Client) {
	resp, body, err := sc.exchange(hc, http.MethodGet, sc.app+"api/items", apiHeader(), "")
	if err != nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		sc.stats.fail("anonymous call: %v %v %.200s", err, statusOf(resp), body)
		return
	}
	sc.stats.mu.Lock()
	sc.stats.anonymous++
	sc.stats.mu.Unlock()
}

func statusOf(resp *http.Response) string {
	if resp == nil {
		return "no answer"
	}
	return resp.Status
}

// run is one worker: sign in, then operations until done says so.
func (sc *soakClient) run(done func() bool) {
	// The same transport without the jar: the anonymous calls.
	anon := &http.Client{Transport: sc.c.hc.Transport, Timeout: requestLimit,
		CheckRedirect: func(req *http.Request, via []*http.Request) error { return http.ErrUseLastResponse }}
	signedIn := sc.signIn()
	for i := 1; !done(); i++ {
		switch {
		case !signedIn:
			signedIn = sc.signIn()
		case i%soakLogoutEvery == 0:
			if sc.logout() {
				signedIn = sc.signIn()
			}
		case i%soakAnonymousEvery == 0:
			sc.anonymous(anon)
		case sc.ager != nil && i%soakAgeEvery == 0:
			sc.renews()
		default:
			sc.call(i%soakNavigateEvery == 0)
		}
	}
}

// processFigures are Traefik's goroutines (after a GC, connections
// closed), live heap after that GC, and resident memory.
type processFigures struct {
	goroutines int
	heap       uint64
	rss        uint64
}

// heapAlloc reads HeapAlloc from Traefik's heap profile, after the GC that
// goroutines() asks for.
func heapAlloc(tr *traefik) (uint64, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?debug=1", tr.apiPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no HeapAlloc in the heap profile")
}

// rss reads VmRSS of Traefik's process.
func rss(tr *traefik) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tr.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", tr.cmd.Process.Pid)
}

// figures quiesces Traefik (every client's idle connection closed) and
// reads its figures.
func figures(t *testing.T, e *env, clients []*soakClient) processFigures {
	t.Helper()
	for _, sc := range clients {
		sc.c.hc.CloseIdleConnections()
	}
	var f processFigures
	f.goroutines = quiesce(t, e)
	var err error
	if f.heap, err = heapAlloc(e.traefik); err != nil {
		t.Fatalf("heap: %v", err)
	}
	if f.rss, err = rss(e.traefik); err != nil {
		t.Fatalf("RSS: %v", err)
	}
	return f
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

func mb(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func TestSoak(t *testing.T) {
	raw := os.Getenv("SOAK_DURATION")
	if raw == "" {
		t.Skip("the soak test runs with SOAK_DURATION set: make soak, or make soak-short")
	}
	duration, err := time.ParseDuration(raw)
	if err != nil || duration < time.Second {
		t.Fatalf("SOAK_DURATION=%q is not a duration of a second or more", raw)
	}
	users := make([]entraidtest.User, soakUsers)
	for i := range users {
		users[i] = soakUser(i)
	}
	// No auto-approval: each browser picks its user on the sign-in page.
	tenant := newTenantWith(t, "", users...)
	tenant.AddAPI(entraidtest.API{IdentifierURI: soakTokenAPI, Scopes: []string{"Orders.Read"}})
	e := newGuardedEnv(t, tenant, guard{appHost, nil}, guard{soakTokenHost, func(pc map[string]interface{}) {
		sessionSettings(pc)["lifetime"] = soakLifetime.String()
		pc["upstreamAccessToken"] = map[string]interface{}{"scope": soakTokenAPI + "/.default"}
	}})
	sealer, err := session.NewSealer(sessionSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	ager := &sessionAger{sealer: sealer, tenant: tenant}

	stats := &soakStats{}
	clients := make([]*soakClient, soakWorkers)
	for i := range clients {
		// Every user on both routers: workers alternate, users go round.
		sc := &soakClient{e: e, c: newClient(t, e.certs), stats: stats, app: e.traefik.url(appHost, "/"), user: users[(i/2)%soakUsers]}
		if i%2 == 1 {
			sc.app, sc.ager = e.traefik.url(soakTokenHost, "/"), ager
		}
		clients[i] = sc
	}
	// runAll runs every worker for at least d and until minRequests
	// requests were made, but no longer than d + soakMaxExtension.
	runAll := func(d time.Duration, minRequests int) {
		start := time.Now()
		done := func() bool {
			elapsed := time.Since(start)
			if elapsed < d {
				return false
			}
			stats.mu.Lock()
			n := stats.requests
			stats.mu.Unlock()
			return n >= minRequests || elapsed > d+soakMaxExtension
		}
		var wg sync.WaitGroup
		for _, sc := range clients {
			sc := sc
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc.run(done)
			}()
		}
		wg.Wait()
	}

	// Warm-up: every browser signs in and the plugin's caches, Yaegi's
	// and the connection pools reach their working size; the figures
	// after it are the baseline.
	runAll(soakWarmUp, 0)
	if stats.unexpected > 0 {
		t.Fatalf("%d unexpected answers during the warm-up, first: %q", stats.unexpected, stats.examples)
	}
	before := figures(t, e, clients)
	*stats = soakStats{}
	refreshes := tenant.Hits(entraidtest.Refresh)

	start := time.Now()
	runAll(duration, soakMinRequests)
	elapsed := time.Since(start)
	after := figures(t, e, clients)

	sort.Slice(stats.latencies, func(i, j int) bool { return stats.latencies[i] < stats.latencies[j] })
	t.Logf("soak: %v with %d workers through Traefik", elapsed.Round(time.Millisecond), soakWorkers)
	t.Logf("  requests  %d (%.0f/s), %d signed-in calls, p50 %v, p99 %v, max %v",
		stats.requests, float64(stats.requests)/elapsed.Seconds(), len(stats.latencies),
		percentile(stats.latencies, 0.50).Round(time.Microsecond), percentile(stats.latencies, 0.99).Round(time.Microsecond),
		percentile(stats.latencies, 1).Round(time.Microsecond))
	t.Logf("  sign-ins  %d, logouts %d, anonymous calls refused %d, unexpected answers %d", stats.signIns, stats.logouts, stats.anonymous, stats.unexpected)
	t.Logf("  renewals  %d, refresh-token requests %d (renewals and upstream tokens)", stats.renewals, tenant.Hits(entraidtest.Refresh)-refreshes)
	t.Logf("  goroutines %d before, %d after (slack %d)", before.goroutines, after.goroutines, soakGoroutineSlack)
	t.Logf("  live heap  %s before, %s after (slack %s and %d KB per renewal), %d bytes per request besides the renewals (at most %d)", mb(before.heap), mb(after.heap),
		mb(soakHeapSlack), soakHeapPerRenewal>>10, heapPerRequest(before, after, stats.requests, stats.renewals), soakHeapPerRequest)
	t.Logf("  RSS        %s before, %s after (slack %s)", mb(before.rss), mb(after.rss), mb(soakRSSSlack))

	if stats.unexpected > 0 {
		t.Errorf("%d unexpected answers, first: %q", stats.unexpected, stats.examples)
	}
	if stats.requests < soakMinRequests || stats.signIns == 0 || stats.logouts == 0 || stats.renewals == 0 {
		t.Errorf("too little load to prove anything: %d requests (at least %d), %d sign-ins, %d logouts, %d renewals",
			stats.requests, soakMinRequests, stats.signIns, stats.logouts, stats.renewals)
	}
	// Every renewal and every sign-in on the token router asked Entra ID.
	if got := tenant.Hits(entraidtest.Refresh) - refreshes; got < stats.renewals {
		t.Errorf("%d refresh-token requests for %d renewals", got, stats.renewals)
	}
	checkFlat(t, e, before, after, stats.requests, stats.renewals)
}

// heapPerRequest is the live heap's growth, less what the renewals keep
// (soakHeapPerRenewal each), divided by the requests that caused it, 0 if
// it shrank.
func heapPerRequest(before, after processFigures, requests, renewals int) int64 {
	grown := int64(after.heap) - int64(before.heap) - int64(renewals)*soakHeapPerRenewal
	if requests == 0 || grown <= 0 {
		return 0
	}
	return grown / int64(requests)
}

// checkFlat compares Traefik after the load with the baseline after the
// warm-up.
//
//   - Goroutines: with every connection closed, what is left is Traefik's
//     own goroutines and the plugin's HTTP client's idle keep-alive
//     connections to the tenant: Go's default transport keeps at most 2 per
//     host, with 2 goroutines each, so at most soakGoroutineSlack (4) more
//     than the baseline if the baseline had none. A goroutine leaked per
//     request or per sign-in would show as thousands.
//   - Live heap after a GC: the plugin's bounded caches (the session cache,
//     the used login states) fill with the sign-ins of the load, a few
//     megabytes at most; soakHeapSlack (16 MB) allows that and Yaegi's own
//     allocations. Divided by the requests, that filling is about 50 bytes
//     per request (a sign-in every 50 or so requests, 2 to 3 KB each,
//     measured on a 2-core machine); soakHeapPerRequest (512) leaves room
//     for the heap's noise over soakMinRequests requests, and a leak of a
//     kilobyte per request fails even a short soak, whatever its
//     throughput. A renewal keeps more, in bounded caches too: the renewal
//     itself (remembered until its group is full, for the parallel requests
//     of a page) and the session-cache entries of the old and the new
//     cookie, 22 to 31 KB in all (measured: 4.7 MB more for 210 renewals
//     than without; 9.8 MB for 313 renewals and 12,000 requests);
//     soakHeapPerRenewal (32 KB) is allowed per renewal on top of both
//     bounds, and a leak of a kilobyte per request still fails.
//   - RSS: the Go runtime returns freed memory to the system lazily, so RSS
//     follows the peak working set of the load (64 concurrent requests,
//     their TLS buffers) rather than what is live; soakRSSSlack (96 MB) is
//     that headroom. A growing leak shows in the live heap first.
func checkFlat(t *testing.T, e *env, before, after processFigures, requests, renewals int) {
	t.Helper()
	if after.goroutines > before.goroutines+soakGoroutineSlack {
		t.Errorf("goroutines grew from %d to %d under load\n%s", before.goroutines, after.goroutines, e.traefik.goroutineProfile())
	}
	if after.heap > before.heap+soakHeapSlack+uint64(renewals)*soakHeapPerRenewal {
		t.Errorf("live heap grew from %s to %s under load", mb(before.heap), mb(after.heap))
	}
	if per := heapPerRequest(before, after, requests, renewals); per > soakHeapPerRequest {
		t.Errorf("live heap grew from %s to %s over %d requests: %d bytes per request, more than %d", mb(before.heap), mb(after.heap), requests, per, soakHeapPerRequest)
	}
	if after.rss > before.rss+soakRSSSlack {
		t.Errorf("RSS grew from %s to %s under load", mb(before.rss), mb(after.rss))
	}
}
