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

// upstream is the fast service behind every configuration. It counts the
// requests it receives per entry point (Traefik sets X-Forwarded-Port from
// the Host header) and how many of them carried an identity, so that the
// bench can prove every measured request was a signed-in one that reached
// it, and not a redirect to the sign-in page.
type upstream struct {
	srv    *http.Server
	url    string
	counts sync.Map // port -> *counter
}

type counter struct {
	total, authenticated atomic.Int64
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

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	c := u.counter(r.Header.Get("X-Forwarded-Port"))
	c.total.Add(1)
	if r.Header.Get("X-Forwarded-User") != "" || r.Header.Get("X-Auth-Request-User") != "" || r.Header.Get("X-Auth-Request-Email") != "" {
		c.authenticated.Add(1)
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, upstreamBody)
}

func (u *upstream) counter(port string) *counter {
	if c, ok := u.counts.Load(port); ok {
		return c.(*counter)
	}
	c, _ := u.counts.LoadOrStore(port, &counter{})
	return c.(*counter)
}

// snapshot returns the counts of an entry point, to subtract later ones from.
func (u *upstream) snapshot(port int) (total, authenticated int64) {
	c := u.counter(strconv.Itoa(port))
	return c.total.Load(), c.authenticated.Load()
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

// runWrk loads rawURL with wrk for d, sending cookie (when not empty) with
// every request. wrk keeps its connections open and reads every response
// in full.
func runWrk(ctx context.Context, bin string, threads, connections int, d time.Duration, rawURL, cookie string) (*wrkResult, error) {
	args := []string{
		"-t" + strconv.Itoa(threads),
		"-c" + strconv.Itoa(connections),
		// wrk takes whole seconds.
		"-d" + strconv.Itoa(int((d+time.Second-1)/time.Second)) + "s",
		"--timeout", "10s",
		"--latency",
	}
	if cookie != "" {
		args = append(args, "-H", "Cookie: "+cookie)
	}
	args = append(args, rawURL)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v: %s", rawURL, err, out)
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v:\n%s", rawURL, err, out)
	}
	return res, nil
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

// drive sends n GET requests to rawURL from conc connections, request i
// carrying cookies[i%len(cookies)], reading every body so that the
// connections are reused. It returns how many answered 200.
func drive(ctx context.Context, rawURL string, cookies []string, n, conc int) (int64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
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
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
				if len(cookies) > 0 {
					req.Header.Set("Cookie", cookies[i%len(cookies)])
				}
				resp, err := client.Do(req)
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

// paced sends GET requests to rawURL at a fixed rate for d, from workers
// connections, and returns each request's latency, from sending it to
// reading the whole answer. Below saturation, it shows what a middleware
// adds to a request.
func paced(ctx context.Context, rawURL, cookie string, rate int, d time.Duration, workers int) ([]time.Duration, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
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
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
				if cookie != "" {
					req.Header.Set("Cookie", cookie)
				}
				sent := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
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
