package entraauth

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/assertion"
)

// Traefik calls New for every router on every configuration reload and
// never closes the middlewares it drops. So New must start nothing and
// leave behind nothing that grows: 1,000 reloads prove it.
const reloads = 1000

// packageState is the size of every package-level cache.
type packageState struct {
	clients, usedStates, groupKeys, sessions, sealers int
}

func readPackageState() packageState {
	var s packageState
	clients.Lock()
	s.clients = len(clients.byKey)
	clients.Unlock()
	usedStates.mu.Lock()
	s.usedStates = len(usedStates.seen)
	usedStates.mu.Unlock()
	groupRules.Lock()
	s.groupKeys = len(groupRules.byKey)
	groupRules.Unlock()
	s.sessions = sessions.len()
	sealers.Lock()
	s.sealers = len(sealers.byKey)
	sealers.Unlock()
	return s
}

// settledGoroutines waits for the goroutines of earlier tests (closing
// test servers and their connections) to end, and returns the count.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// reloadConfigs are the configurations a Traefik reload rebuilds: a plain
// one, one with group rules (kept in a package-level registry) and one
// with a client assertion (whose cache is package-level).
func reloadConfigs(i int) *Config {
	c := validConfig()
	switch i % 3 {
	case 1:
		c.AllowedGroups = []string{"a1b2c3d4-0000-4000-8000-000000000001"}
	case 2:
		c.MicrosoftEntraID.ClientSecret = ""
		c.MicrosoftEntraID.ClientAssertion = "tsiam=https://tsiam.reload.example"
	}
	return c
}

func TestReloadsStartNoGoroutineAndGrowNoState(t *testing.T) {
	next := http.NotFoundHandler()
	newMW := func(c *Config, name string) *Middleware {
		ctx, cancel := context.WithCancel(context.Background())
		// Traefik v3.6 cancels the context on the next reload.
		defer cancel()
		h, err := New(ctx, next, c, name)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return h.(*Middleware)
	}
	// One of each first, twice: the caches hold their one entry per
	// configuration. A bounded cache that earlier tests filled starts
	// afresh when full, which can happen during the first round (it then
	// holds only the last configurations); after the second it holds all.
	first := newMW(reloadConfigs(2), "warm")
	newMW(reloadConfigs(0), "warm")
	newMW(reloadConfigs(1), "warm")
	first = newMW(reloadConfigs(2), "warm")
	newMW(reloadConfigs(0), "warm")
	newMW(reloadConfigs(1), "warm")

	goroutines := settledGoroutines()
	state := readPackageState()
	heap := heapAfterGC()
	for i := 0; i < reloads; i++ {
		m := newMW(reloadConfigs(i), "router-"+strconv.Itoa(i))
		if m.client == nil || (i%3 == 2 && m.assertions != first.assertions) {
			t.Fatalf("reload %d got a client or assertion cache of its own", i)
		}
	}
	if after := runtime.NumGoroutine(); after > goroutines {
		// Give anything that did start a moment to show up, then report.
		if after = settledGoroutines(); after > goroutines {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d reloads started %d goroutines:\n%s", reloads, after-goroutines, buf[:n])
		}
	}
	if got := readPackageState(); got != state {
		t.Fatalf("package-level state grew over %d reloads of the same configuration: %+v before, %+v after", reloads, state, got)
	}
	// The dropped middlewares are garbage. The bound is loose (the
	// interpreter and the runtime allocate too); a leak of one middleware
	// per reload would be several megabytes.
	if grown := int64(heapAfterGC()) - int64(heap); grown > 4<<20 {
		t.Errorf("the heap grew by %d bytes over %d reloads", grown, reloads)
	}
}

func TestReloadsWithChangingConfigurationsKeepCachesBounded(t *testing.T) {
	next := http.NotFoundHandler()
	goroutines := settledGoroutines()
	firstAssertion := ""
	var firstCache *assertion.Cache
	for i := 0; i < reloads; i++ {
		c := validConfig()
		// Every reload a new client secret, session secret, group rule and
		// client assertion: every cache keyed by configuration gets a new
		// key each time.
		n := strconv.Itoa(i)
		c.MicrosoftEntraID.ClientSecret = "secret-" + n
		c.Session.Secret = testSecret + "-" + n
		c.AllowedGroups = []string{"a1b2c3d4-0000-4000-8000-" + pad12(i)}
		if i%10 == 0 {
			c.MicrosoftEntraID.ClientSecret = ""
			c.MicrosoftEntraID.ClientAssertion = "tsiam=https://tsiam-" + n + ".reload.example"
		}
		h, err := New(context.Background(), next, c, "router-"+n)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if i == 0 {
			firstAssertion = c.MicrosoftEntraID.ClientAssertion
			firstCache = h.(*Middleware).assertions
		}
	}
	s := readPackageState()
	if s.clients > maxClients || s.sealers > maxSealers || s.groupKeys > maxGroupKeys {
		t.Fatalf("caches beyond their bounds after %d different configurations: %+v", reloads, s)
	}
	groupRules.Lock()
	for key, set := range groupRules.byKey {
		if len(set) > maxGroupsPerKey {
			t.Errorf("group registry %q holds %d groups", key, len(set))
		}
	}
	groupRules.Unlock()
	// 100 client assertions went through the shared registry (at most 16
	// kept): the first one has been dropped, so it is bounded too.
	c := validConfig()
	c.MicrosoftEntraID.ClientSecret = ""
	c.MicrosoftEntraID.ClientAssertion = firstAssertion
	h, err := New(context.Background(), next, c, "again")
	if err != nil {
		t.Fatal(err)
	}
	if h.(*Middleware).assertions == firstCache {
		t.Error("the assertion cache of the first of 100 client assertions is still kept")
	}
	if after := settledGoroutines(); after > goroutines {
		t.Fatalf("%d reloads started %d goroutines", reloads, after-goroutines)
	}
}

func pad12(i int) string {
	s := strconv.Itoa(i)
	for len(s) < 12 {
		s = "0" + s
	}
	return s
}
