package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// upstreamBody is the upstream's whole answer: small, so that the benchmark
// measures the proxy and not the transfer.
const upstreamBody = "ok\n"

// refusedPrefix is the path under which the plugin's entry point has a
// router whose rule refuses the benchmark's user: nothing under it may
// reach the upstream.
const refusedPrefix = "/refused/"

// upstream is the fast service behind every configuration, and the
// witness of what each one let through. Requests are told apart by entry
// point (Traefik sets X-Forwarded-Port from the Host header); for each, it
// counts the requests and how many looked exactly as the configuration
// promises (its view): the signed-in user's identity headers with the
// right values and in no other spelling, the Cookie header without the
// plugin's cookie, the do-nothing plugin's header. The bench then proves
// that every measured request was a signed-in one that reached it as
// promised, and not a redirect to the sign-in page or a request the plugin
// mangled.
type upstream struct {
	srv   *http.Server
	url   string
	views sync.Map // port -> *view
}

// view is what the upstream must see on the requests of one entry point,
// and the counts of what it saw.
type view struct {
	title string
	want  expectation
	total atomic.Int64
	ok    atomic.Int64
	// firstBad says what was wrong with the first request that was not
	// as promised.
	firstBad atomic.Value
}

// expectation is what every request of a configuration must look like at
// the upstream.
type expectation struct {
	// identity maps each identity header the upstream must see to its
	// value ("" for any non-empty value); every other spelling of these
	// headers, and every other identity header, must be absent.
	identity map[string]string
	// cookie is the Cookie header the upstream must see ("" for none),
	// when checkCookie is set.
	cookie      string
	checkCookie bool
	// noop: the do-nothing plugin's X-Noop: 1 must be there.
	noop bool
}

func startUpstream() (*upstream, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{url: "http://" + l.Addr().String()}
	u.srv = &http.Server{Handler: http.HandlerFunc(u.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = u.srv.Serve(l) }()
	return u, nil
}

// expect registers what the requests of the entry point on port must look
// like, and resets its counts.
func (u *upstream) expect(port int, title string, want expectation) {
	u.views.Store(strconv.Itoa(port), &view{title: title, want: want})
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	if v, ok := u.views.Load(r.Header.Get("X-Forwarded-Port")); ok {
		v := v.(*view)
		v.total.Add(1)
		if bad := v.want.check(r); bad == "" {
			v.ok.Add(1)
		} else {
			v.firstBad.CompareAndSwap(nil, bad)
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, upstreamBody)
}

// check returns what is wrong with r, or "".
func (e *expectation) check(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, refusedPrefix) {
		return "a request that a rule refuses reached the upstream: " + r.URL.Path
	}
	h := r.Header
	for k, vs := range h {
		name := identityHeader(k)
		if name == "" {
			continue
		}
		want, expected := e.identity[name]
		switch {
		case !expected:
			return fmt.Sprintf("%s: %q reached the upstream", k, vs)
		case k != name:
			return fmt.Sprintf("%s, a spelling of %s, reached the upstream: %q", k, name, vs)
		case len(vs) != 1 || vs[0] == "" || want != "" && vs[0] != want:
			return fmt.Sprintf("%s: %q, want %q", k, vs, want)
		}
	}
	for name := range e.identity {
		if len(h[name]) == 0 {
			return fmt.Sprintf("no %s: the request did not reach the upstream signed in", name)
		}
	}
	if e.checkCookie {
		got, sent := h["Cookie"]
		if e.cookie == "" && sent || e.cookie != "" && (len(got) != 1 || got[0] != e.cookie) {
			return fmt.Sprintf("Cookie %q reached the upstream, want %q", got, e.cookie)
		}
	}
	if e.noop && h.Get("X-Noop") != "1" {
		return "no X-Noop: the do-nothing plugin did not run"
	}
	return ""
}

// identityHeaders are, folded (lower case, '_' for '-'), the headers that
// tell an upstream who is signed in: the plugin's defaults and
// oauth2-proxy's.
var identityHeaders = map[string]string{
	"x-forwarded-user":                  "X-Forwarded-User",
	"x-forwarded-email":                 "X-Forwarded-Email",
	"x-forwarded-name":                  "X-Forwarded-Name",
	"x-forwarded-preferred-username":    "X-Forwarded-Preferred-Username",
	"x-forwarded-groups":                "X-Forwarded-Groups",
	"x-forwarded-roles":                 "X-Forwarded-Roles",
	"x-auth-request-user":               "X-Auth-Request-User",
	"x-auth-request-email":              "X-Auth-Request-Email",
	"x-auth-request-preferred-username": "X-Auth-Request-Preferred-Username",
	"x-auth-request-groups":             "X-Auth-Request-Groups",
}

// identityHeader returns the identity header that k spells, whatever its
// case and its '_' for '-', or "".
func identityHeader(k string) string {
	if len(k) < len("X-Forwarded-User") || len(k) > len("X-Auth-Request-Preferred-Username") || k[0] != 'X' && k[0] != 'x' {
		return ""
	}
	return identityHeaders[strings.ToLower(strings.ReplaceAll(k, "_", "-"))]
}

// counts returns the requests the entry point on port received and how
// many of them were as promised, to subtract later ones from.
func (u *upstream) counts(port int) (total, ok int64) {
	v, found := u.views.Load(strconv.Itoa(port))
	if !found {
		return 0, 0
	}
	return v.(*view).total.Load(), v.(*view).ok.Load()
}

// bad says what was wrong with the first request of the entry point on
// port that was not as promised.
func (u *upstream) bad(port int) string {
	if v, found := u.views.Load(strconv.Itoa(port)); found {
		if s, _ := v.(*view).firstBad.Load().(string); s != "" {
			return s
		}
	}
	return "no request was wrong"
}

// wrkResult is what one wrk run reports.
type wrkResult struct {
	requests     int64
	seconds      float64
	rps          float64
	p50, p99     time.Duration
	non2xx3xx    int64
	socketErrors int64
}

// runWrk loads rawURL with wrk for d, sending the header lines with every
// request. wrk keeps its connections open and reads every response in
// full.
func runWrk(ctx context.Context, bin string, threads, connections int, d time.Duration, rawURL string, lines []string) (*wrkResult, error) {
	args := []string{
		"-t" + strconv.Itoa(threads),
		"-c" + strconv.Itoa(connections),
		// wrk takes whole seconds.
		"-d" + strconv.Itoa(int((d+time.Second-1)/time.Second)) + "s",
		"--timeout", "10s",
		"--latency",
	}
	out, err := runLoad(ctx, "wrk", bin, args, lines, d, rawURL)
	if err != nil {
		return nil, err
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v:\n%s", rawURL, err, out)
	}
	return res, nil
}

// runLoad runs the load generator bin (named name) with args, a -H
// argument for each header line and rawURL, for d and at most 30 s more,
// and returns its output.
func runLoad(ctx context.Context, name, bin string, args, lines []string, d time.Duration, rawURL string) ([]byte, error) {
	for _, line := range lines {
		args = append(args, "-H", line)
	}
	args = append(args, rawURL)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", name, rawURL, err, out)
	}
	return out, nil
}

// parseWrk reads wrk's report (wrk 4, --latency).
func parseWrk(out string) (*wrkResult, error) {
	r := &wrkResult{}
	var haveRequests, haveP50, haveP99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			n, err1 := strconv.ParseInt(f[0], 10, 64)
			d, err2 := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad line %q", line)
			}
			r.requests, r.seconds, haveRequests = n, d.Seconds(), true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return nil, fmt.Errorf("bad line %q", line)
			}
			if f[0] == "50%" {
				r.p50, haveP50 = d, true
			} else {
				r.p99, haveP99 = d, true
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad line %q", line)
			}
			r.non2xx3xx = n
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("bad line %q", line)
				}
				r.socketErrors += n
			}
		}
	}
	if !haveRequests || !haveP50 || !haveP99 {
		return nil, fmt.Errorf("no request count or latency distribution in wrk's output")
	}
	if r.seconds > 0 {
		r.rps = float64(r.requests) / r.seconds
	}
	return r, nil
}

// parseWrkDuration reads wrk's durations: 635.91us, 1.20ms, 10.00s, 1.50m.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err != nil {
				return 0, err
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("no unit in %q", s)
}

// client is an HTTP client of the bench's Traefiks: at most conc
// connections, kept open, trusting the run's certificate.
func client(cert *certificate, conc int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true, TLSClientConfig: cert.clientTLS()}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// h2Client is an HTTP/2 client of the bench's Traefiks, as a browser is:
// ALPN h2, every request a stream of one connection.
func h2Client(cert *certificate) *http.Client {
	tr := &http.Transport{ForceAttemptHTTP2: true, DisableCompression: true, TLSClientConfig: cert.clientTLS()}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// newRequest is a GET of rawURL with the header lines ("Name: value", as
// given to wrk: names keep their spelling) and cookie, when not empty.
func newRequest(ctx context.Context, rawURL string, lines []string, cookie string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	for _, line := range lines {
		if i := strings.Index(line, ": "); i > 0 {
			req.Header[line[:i]] = append(req.Header[line[:i]], line[i+2:])
		}
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	return req
}

// drive sends n GET requests to rawURL with c from conc goroutines, with the
// header lines, request i carrying cookies[i%len(cookies)], reading every
// body so that the connections are reused. It returns how many answered
// 200.
func drive(ctx context.Context, c *http.Client, rawURL string, lines, cookies []string, n, conc int) (int64, error) {
	defer c.CloseIdleConnections()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		w := w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += conc {
				if ctx.Err() != nil {
					return
				}
				cookie := ""
				if len(cookies) > 0 {
					cookie = cookies[i%len(cookies)]
				}
				resp, err := c.Do(newRequest(ctx, rawURL, lines, cookie))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, "status "+resp.Status)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return ok.Load(), err
	}
	if f := failed.Load(); f > 0 {
		return ok.Load(), fmt.Errorf("%d of %d requests failed, the first with %v", f, n, firstErr.Load())
	}
	return ok.Load(), nil
}

// paced sends GET requests with the header lines to rawURL at a fixed rate
// for d, from workers connections, and returns each request's latency,
// from sending it to reading the whole answer. Below saturation, it shows
// what a middleware adds to a request. With h2, the workers' requests are
// streams of one HTTP/2 connection.
func paced(ctx context.Context, cert *certificate, rawURL string, lines []string, rate int, d time.Duration, workers int, h2 bool) ([]time.Duration, error) {
	c := client(cert, workers)
	want := 1
	if h2 {
		c, want = h2Client(cert), 2
	}
	defer c.CloseIdleConnections()
	n := int(d.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	due := make(chan time.Time, n)
	latencies := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range due {
				req := newRequest(ctx, rawURL, lines, "")
				sent := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != want {
					failed.Add(1)
					continue
				}
				l := time.Since(sent)
				mu.Lock()
				latencies = append(latencies, l)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(t))
		due <- t
	}
	close(due)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%s: %d of %d paced requests failed", rawURL, f, n)
	}
	return latencies, nil
}

// percentile returns the p-th percentile (0 to 100) of ds, sorting them.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}
