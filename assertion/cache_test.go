package assertion_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
	"github.com/tfa-plugin/entraauth/assertion/assertiontest"
)

// clock is a settable clock for Cache.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingSource issues numbered tokens valid for lifetime (relative to its
// clock), fails while err is set, and blocks while gate is open.
type countingSource struct {
	mu       sync.Mutex
	clock    *clock
	lifetime time.Duration
	err      error
	calls    int
	gate     chan struct{}
	started  chan struct{}
}

func (s *countingSource) Fetch(ctx context.Context) (assertion.Token, error) {
	s.mu.Lock()
	s.calls++
	n, err, gate, started := s.calls, s.err, s.gate, s.started
	s.mu.Unlock()
	if started != nil {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return assertion.Token{}, ctx.Err()
		}
	}
	if err != nil {
		return assertion.Token{}, err
	}
	tok := assertion.Token{Value: fmt.Sprintf("token-%d", n)}
	if s.lifetime > 0 {
		tok.Expires = s.clock.Now().Add(s.lifetime)
	}
	return tok, nil
}

func (s *countingSource) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *countingSource) SetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func newCache(src *countingSource) *assertion.Cache {
	c := assertion.NewCache(src)
	c.Now = src.clock.Now
	return c
}

func TestCacheRefreshesBeforeExpiry(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		reuseFor time.Duration // still the first token after this long
		newAfter time.Duration // a new token after this long
	}{
		{name: "a one-hour token is replaced 5 minutes before it expires", lifetime: time.Hour,
			reuseFor: 54*time.Minute + 59*time.Second, newAfter: 55 * time.Minute},
		{name: "a 24-hour managed identity token is kept almost a day", lifetime: 24 * time.Hour,
			reuseFor: 23*time.Hour + 54*time.Minute, newAfter: 23*time.Hour + 55*time.Minute},
		{name: "a 5-minute tsiam token is replaced 1 minute before it expires", lifetime: 5 * time.Minute,
			reuseFor: 3*time.Minute + 59*time.Second, newAfter: 4 * time.Minute},
		{name: "a token of exactly 10 minutes follows the 5-minute rule", lifetime: 10 * time.Minute,
			reuseFor: 4*time.Minute + 59*time.Second, newAfter: 5 * time.Minute},
		{name: "a token without expiry is kept 5 minutes", lifetime: 0,
			reuseFor: 4*time.Minute + 59*time.Second, newAfter: 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			start := clk.Now()
			src := &countingSource{clock: clk, lifetime: tt.lifetime}
			c := newCache(src)
			ctx := context.Background()
			first, err := c.Assertion(ctx)
			if err != nil || first != "token-1" {
				t.Fatalf("Assertion = %q, %v", first, err)
			}
			clk.Add(tt.reuseFor)
			if got, _ := c.Assertion(ctx); got != "token-1" {
				t.Errorf("after %v: %q, want the cached token-1", tt.reuseFor, got)
			}
			clk.Add(start.Add(tt.newAfter).Sub(clk.Now()))
			if got, _ := c.Assertion(ctx); got != "token-2" {
				t.Errorf("after %v: %q, want a new token-2", tt.newAfter, got)
			}
			if src.Calls() != 2 {
				t.Errorf("%d fetches, want 2", src.Calls())
			}
		})
	}
}

func TestCacheReusesTheAssertion(t *testing.T) {
	clk := newClock()
	src := &countingSource{clock: clk, lifetime: time.Hour}
	c := newCache(src)
	for i := 0; i < 20; i++ {
		if got, err := c.Assertion(context.Background()); err != nil || got != "token-1" {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
		clk.Add(time.Minute)
	}
	if src.Calls() != 1 {
		t.Errorf("%d fetches, want 1", src.Calls())
	}
}

func TestCacheCollapsesConcurrentCallsIntoOneFetch(t *testing.T) {
	const callers = 50
	clk := newClock()
	src := &countingSource{clock: clk, lifetime: time.Hour, gate: make(chan struct{}), started: make(chan struct{}, 1)}
	c := newCache(src)
	var wg sync.WaitGroup
	results := make(chan string, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Assertion(context.Background())
			if err != nil {
				v = err.Error()
			}
			results <- v
		}()
	}
	<-src.started
	time.Sleep(50 * time.Millisecond) // let the other callers queue behind the fetch
	close(src.gate)
	wg.Wait()
	close(results)
	for v := range results {
		if v != "token-1" {
			t.Errorf("a caller got %q", v)
		}
	}
	if src.Calls() != 1 {
		t.Errorf("%d fetches for %d concurrent callers, want 1", src.Calls(), callers)
	}
}

func TestCacheDoesNotKeepAFailureForLong(t *testing.T) {
	clk := newClock()
	boom := errors.New("assertion: tsiam: HTTP 500")
	src := &countingSource{clock: clk, lifetime: time.Hour, err: boom}
	c := newCache(src)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if _, err := c.Assertion(ctx); err != boom {
			t.Fatalf("call %d: %v, want the source's error", i, err)
		}
	}
	if src.Calls() != 1 {
		t.Errorf("a burst of failures made %d fetches, want 1", src.Calls())
	}
	src.SetErr(nil)
	clk.Add(4 * time.Second)
	if _, err := c.Assertion(ctx); err != boom {
		t.Errorf("4 s later: %v, want the remembered failure", err)
	}
	clk.Add(time.Second)
	if got, err := c.Assertion(ctx); err != nil || got != "token-2" {
		t.Errorf("5 s later: %q, %v, want a fresh fetch", got, err)
	}
}

func TestCacheServesTheCurrentAssertionWhenARefreshFails(t *testing.T) {
	clk := newClock()
	src := &countingSource{clock: clk, lifetime: time.Hour}
	c := newCache(src)
	ctx := context.Background()
	c.Assertion(ctx)
	src.SetErr(errors.New("IMDS is down"))
	clk.Add(56 * time.Minute) // in the refresh window, still valid
	if got, err := c.Assertion(ctx); err != nil || got != "token-1" {
		t.Errorf("failed refresh: %q, %v, want the still-valid token-1", got, err)
	}
	clk.Add(3*time.Minute + 40*time.Second) // 20 s left: too close to expiry
	if _, err := c.Assertion(ctx); err == nil || err.Error() != "IMDS is down" {
		t.Errorf("near expiry: %v, want the source's error", err)
	}
}

func TestCacheRefusesAnExpiredOrEmptyAssertion(t *testing.T) {
	tests := []struct {
		name string
		tok  assertion.Token
		want string
	}{
		{name: "an expired assertion", tok: assertion.Token{Value: "x", Expires: time.Now().Add(-time.Minute)}, want: "check the clock"},
		{name: "an empty assertion", tok: assertion.Token{}, want: "returned an empty assertion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := assertion.NewCache(fixedSource{tt.tok})
			if _, err := c.Assertion(context.Background()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Assertion error = %v, want %q", err, tt.want)
			}
		})
	}
}

type fixedSource struct{ tok assertion.Token }

func (s fixedSource) Fetch(ctx context.Context) (assertion.Token, error) { return s.tok, nil }

func TestCacheWaiterGivesUpWithItsContext(t *testing.T) {
	clk := newClock()
	src := &countingSource{clock: clk, lifetime: time.Hour, gate: make(chan struct{}), started: make(chan struct{}, 1)}
	c := newCache(src)
	leader := make(chan error, 1)
	go func() {
		_, err := c.Assertion(context.Background())
		leader <- err
	}()
	<-src.started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Assertion(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter: %v, want its deadline", err)
	}
	close(src.gate)
	if err := <-leader; err != nil {
		t.Errorf("leader: %v", err)
	}
}

func TestCacheRefetchesWhenTheFetchingCallerGivesUp(t *testing.T) {
	clk := newClock()
	src := &countingSource{clock: clk, lifetime: time.Hour, gate: make(chan struct{}), started: make(chan struct{}, 1)}
	c := newCache(src)
	ctx, cancel := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() {
		_, err := c.Assertion(ctx)
		leader <- err
	}()
	<-src.started
	waiter := make(chan string, 1)
	go func() {
		v, err := c.Assertion(context.Background())
		if err != nil {
			v = err.Error()
		}
		waiter <- v
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Errorf("leader: %v, want context.Canceled", err)
	}
	<-src.started // the waiter fetches itself
	close(src.gate)
	if got := <-waiter; got != "token-2" {
		t.Errorf("waiter: %q, want token-2 from its own fetch", got)
	}
	// A cancelled caller is not the source's failure: nothing was remembered.
	if got, err := c.Assertion(context.Background()); err != nil || got != "token-2" {
		t.Errorf("next call: %q, %v", got, err)
	}
}

func TestCacheSurvivesAPanickingSource(t *testing.T) {
	c := assertion.NewCache(panickingSource{})
	func() {
		defer func() { recover() }()
		c.Assertion(context.Background())
	}()
	if _, err := c.Assertion(context.Background()); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Errorf("after a panic: %v, want the remembered panic error", err)
	}
}

type panickingSource struct{}

func (panickingSource) Fetch(ctx context.Context) (assertion.Token, error) { panic("boom") }

func TestShared(t *testing.T) {
	getenv := env(map[string]string{"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:1"})
	a, err := assertion.Shared("AzureManagedIdentity=44444444-4444-4444-4444-444444444444", "", 0, getenv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		value     string
		authority string
		timeout   time.Duration
		same      bool
	}{
		{"the same value gets the same cache", "AzureManagedIdentity=44444444-4444-4444-4444-444444444444", "", 0, true},
		{"the name's case does not matter", "azuremanagedidentity=44444444-4444-4444-4444-444444444444", "https://login.microsoftonline.com/", 0, true},
		{"another client ID gets another cache", "AzureManagedIdentity=55555555-5555-5555-5555-555555555555", "", 0, false},
		{"another cloud gets another cache", "AzureManagedIdentity=44444444-4444-4444-4444-444444444444", "https://login.microsoftonline.us", 0, false},
		{"another request timeout gets another cache", "AzureManagedIdentity=44444444-4444-4444-4444-444444444444", "", 3 * time.Second, false},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			b, err := assertion.Shared(tt.value, tt.authority, tt.timeout, getenv)
			if err != nil {
				t.Fatal(err)
			}
			if (a == b) != tt.same {
				t.Errorf("same cache = %v, want %v", a == b, tt.same)
			}
			if mi, ok := b.Source().(*assertion.ManagedIdentity); !ok {
				t.Errorf("the source is %T, want a managed identity", b.Source())
			} else if mi.RequestTimeout != tt.timeout {
				t.Errorf("the source's request timeout is %v, want %v", mi.RequestTimeout, tt.timeout)
			}
		})
	}
	if _, err := assertion.Shared("AzureCLI", "", 0, getenv); err == nil {
		t.Error("Shared accepted an unknown source")
	}
}

func TestSharedSurvivesReloads(t *testing.T) {
	srv := assertiontest.NewTsiam()
	defer srv.Close()
	for i := 0; i < 5; i++ { // what the plugin's New does on every Traefik reload
		c, err := assertion.Shared("tsiam="+srv.URL, "", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Assertion(context.Background()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	if srv.Hits() != 1 {
		t.Errorf("%d token requests over 5 reloads, want 1", srv.Hits())
	}
}

func TestSharedIsBounded(t *testing.T) {
	first, err := assertion.Shared("tsiam=http://127.0.0.1:1/bounded-0", "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 16; i++ {
		if _, err := assertion.Shared(fmt.Sprintf("tsiam=http://127.0.0.1:1/bounded-%d", i), "", 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	again, _ := assertion.Shared("tsiam=http://127.0.0.1:1/bounded-0", "", 0, nil)
	if again == first {
		t.Error("the least recently used cache was not dropped after 16 others")
	}
}

func TestCacheAdvice(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	apiServerToken := assertiontest.UnsignedJWT(map[string]interface{}{
		"iss": "https://oidc.prod-aks.azure.com/abc/", "sub": "system:serviceaccount:traefik:traefik",
		"aud": []string{"https://kubernetes.default.svc.cluster.local"}, "exp": time.Now().Add(time.Hour).Unix(),
	})
	if err := os.WriteFile(path, []byte(apiServerToken), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := assertion.Parse("KubernetesServiceAccountToken="+path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := assertion.NewCache(src)
	if _, err := c.Assertion(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		codes []int
		want  []string
	}{
		{name: "an audience mismatch names the claims and the default-token pitfall", codes: []int{700212},
			want: []string{`issuer "https://oidc.prod-aks.azure.com/abc/", subject "system:serviceaccount:traefik:traefik", audience "https://kubernetes.default.svc.cluster.local"`,
				"default service account token is for the API server", "audience api://AzureADTokenExchange"}},
		{name: "no matching record names the claims", codes: []int{70021}, want: []string{"no federated identity credential matching"}},
		{name: "an issuer mismatch names the claims", codes: []int{700211}, want: []string{`issuer "https://oidc.prod-aks.azure.com/abc/"`}},
		{name: "a subject mismatch names the claims", codes: []int{700213}, want: []string{`subject "system:serviceaccount:traefik:traefik"`}},
		{name: "an expired assertion points at the clock", codes: []int{700024}, want: []string{"check this machine's clock"}},
		{name: "other codes have no advice", codes: []int{50011}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Advice(tt.codes)
			if tt.want == nil && got != "" {
				t.Errorf("Advice = %q, want none", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Advice = %q\ndoes not contain %q", got, w)
				}
			}
		})
	}
}

// shortLivedSource issues tokens that the cache must replace at once, so
// that every call starts or joins a fetch, and takes a moment to do so.
type shortLivedSource struct {
	name string
	n    int64
}

func (s *shortLivedSource) Fetch(ctx context.Context) (assertion.Token, error) {
	time.Sleep(time.Millisecond)
	n := atomic.AddInt64(&s.n, 1)
	return assertion.Token{Value: fmt.Sprintf("%s-%d", s.name, n), Expires: time.Now().Add(30 * time.Second)}, nil
}

// cacheRace is the shared state of TestCacheWaitersUnderConcurrentRequests.
type cacheRace struct {
	caches          []*assertion.Cache
	names           []string
	wrong, finished int64
	firstWrong      atomic.Value
}

// worker calls the caches in turn, rounds times. Every second worker's
// requests give up at once, as requests of clients that went away do; the
// others' must get a token of the cache they asked.
func (r *cacheRace) worker(w, rounds int) {
	defer atomic.AddInt64(&r.finished, 1)
	for i := 0; i < rounds; i++ {
		k := (w + i) % len(r.caches)
		timeout := time.Minute
		if w%2 == 0 {
			timeout = time.Microsecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		v, err := r.caches[k].Assertion(ctx)
		cancel()
		if w%2 != 0 && (err != nil || !strings.HasPrefix(v, r.names[k]+"-")) {
			atomic.AddInt64(&r.wrong, 1)
			r.firstWrong.Store(fmt.Sprintf("cache %s: %q, %v", r.names[k], v, err))
		}
	}
}

// TestCacheWaitersUnderConcurrentRequests: callers of several caches wait
// for each other's fetches while other callers give up. Each gets a token
// of its own cache, and nobody gives up while its context lives. Under
// yaegi test it catches a select shared between concurrent executions
// (see Cache.Assertion).
func TestCacheWaitersUnderConcurrentRequests(t *testing.T) {
	const workers = 128
	r := &cacheRace{}
	for i := 0; i < 16; i++ {
		name := fmt.Sprintf("cache%d", i)
		r.names = append(r.names, name)
		// A concrete variable: under Yaegi, a literal assigned to an
		// interface in a loop is one object for every iteration.
		src := &shortLivedSource{name: name}
		r.caches = append(r.caches, assertion.NewCache(src))
	}
	for w := 0; w < workers; w++ {
		go r.worker(w, 1500)
	}
	deadline := time.Now().Add(30 * time.Second)
	for atomic.LoadInt64(&r.finished) < workers {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d workers hung", workers-atomic.LoadInt64(&r.finished), workers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.wrong != 0 {
		t.Fatalf("%d calls with a live context got no token of their cache, first: %v", r.wrong, r.firstWrong.Load())
	}
}
