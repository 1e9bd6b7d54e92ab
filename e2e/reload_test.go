package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

const (
	reloads = 50
	// maxFlowRequests bounds the request loop that runs during reloads.
	maxFlowRequests = 5000
)

// quiesce closes every idle keep-alive connection around Traefik (client to
// Traefik, Traefik to upstream) and returns Traefik's goroutine count once
// it stops changing. With no connection open, what is left is Traefik's own
// goroutines and whatever the plugin started: comparing two quiet counts
// needs no tolerance for net/http's connection goroutines.
func quiesce(t *testing.T, e *env) int {
	t.Helper()
	e.client.hc.CloseIdleConnections()
	e.upstream.srv.CloseClientConnections()
	last, stable := -1, 0
	var n int
	ok := waitFor(10*time.Second, 250*time.Millisecond, func() bool {
		var err error
		n, err = e.traefik.goroutines()
		if err != nil {
			t.Fatalf("goroutine count: %v", err)
		}
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		return stable >= 3
	})
	if !ok {
		t.Logf("goroutine count still moving after 10s; last %d", n)
	}
	return n
}

func TestReloadsKeepRequestsFlowingAndLeakNoGoroutines(t *testing.T) {
	t.Parallel()
	e := newEnv(t, alice.PreferredUsername, nil)
	app := e.traefik.url(appHost, "/flow")
	e.client.signIn(app)
	for i := 0; i < 20; i++ {
		e.client.echoed(e.client.do(e.client.request(http.MethodGet, app, apiHeader())))
	}
	before := quiesce(t, e)
	beforeProfile := e.traefik.goroutineProfile()

	stop := make(chan struct{})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		sent     int
		failures []string
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for sent < maxFlowRequests {
			select {
			case <-stop:
				return
			default:
			}
			req, err := http.NewRequest(http.MethodGet, app, nil)
			if err != nil {
				panic(err)
			}
			req.Header = apiHeader()
			resp, err := e.client.hc.Do(req)
			mu.Lock()
			sent++
			switch {
			case err != nil:
				failures = append(failures, err.Error())
			case resp.StatusCode != http.StatusOK:
				failures = append(failures, resp.Status)
			}
			mu.Unlock()
			if resp != nil {
				resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// Alternate between one and two guarded routers: every reload builds
	// the middleware again (Traefik calls New for each router), and the
	// marker router changes every time.
	for i := 0; i < reloads; i++ {
		cfg := e.cfg
		if i%2 == 0 {
			cfg.routes = append([]route{{name: "app2", hosts: []string{app2Host}, middlewares: []string{authMiddleware}}}, e.cfg.routes...)
		}
		e.traefik.reload(cfg)
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	if sent == 0 {
		t.Fatal("no request was sent during the reloads")
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during %d reloads, first: %v", len(failures), sent, reloads, failures[:minInt(len(failures), 5)])
	}
	t.Logf("%d requests during %d reloads", sent, reloads)
	mu.Unlock()

	// Still signed in on the final configuration.
	e.client.echoed(e.client.do(e.client.request(http.MethodGet, app, apiHeader())))

	var after int
	ok := waitFor(10*time.Second, 500*time.Millisecond, func() bool {
		after = quiesce(t, e)
		return after <= before
	})
	if !ok {
		t.Errorf("goroutines: %d before %d reloads, %d after: something leaks per reload\n%s\n--- before ---\n%s", before, reloads, after, e.traefik.goroutineProfile(), beforeProfile)
	}
	t.Logf("goroutines before %d, after %d", before, after)
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}
