package entraauth

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlightGroupRunsOneCallForConcurrentCallers(t *testing.T) {
	g := newFlightGroup(16)
	var runs int64
	now := time.Now()
	const n = 20
	results := make(chan string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, ok := g.do(context.Background(), "key", func() time.Time { return now }, func() (interface{}, time.Duration) {
				atomic.AddInt64(&runs, 1)
				time.Sleep(50 * time.Millisecond)
				return "result", time.Minute
			})
			if !ok {
				results <- "gave up"
				return
			}
			s, _ := v.(string)
			results <- s
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r != "result" {
			t.Errorf("a caller got %q", r)
		}
	}
	if runs != 1 {
		t.Errorf("%d calls ran, want 1", runs)
	}
	// Remembered until its time is up, then run again.
	g.do(context.Background(), "key", func() time.Time { return now.Add(59 * time.Second) }, func() (interface{}, time.Duration) {
		atomic.AddInt64(&runs, 1)
		return "again", time.Minute
	})
	if runs != 1 {
		t.Error("a remembered result ran again")
	}
	v, _ := g.do(context.Background(), "key", func() time.Time { return now.Add(time.Minute) }, func() (interface{}, time.Duration) {
		atomic.AddInt64(&runs, 1)
		return "again", time.Minute
	})
	if runs != 2 || v != "again" {
		t.Errorf("after its time: %v, %d runs", v, runs)
	}
}

// Concurrent callers of different keys never get each other's results:
// what a shared select would break under Yaegi.
func TestFlightGroupKeepsConcurrentKeysApart(t *testing.T) {
	g := newFlightGroup(64)
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			key := fmt.Sprintf("key-%d", i%8)
			v, ok := g.do(context.Background(), key, time.Now, func() (interface{}, time.Duration) {
				time.Sleep(20 * time.Millisecond)
				return key, time.Second
			})
			if !ok || v != key {
				errs <- fmt.Sprintf("%s got %v (%v)", key, v, ok)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestFlightGroupFailuresAndBounds(t *testing.T) {
	t.Run("a panic reaches its caller, and the waiters are released", func(t *testing.T) {
		g := newFlightGroup(16)
		started := make(chan struct{})
		release := make(chan struct{})
		done := make(chan interface{}, 1)
		go func() {
			defer func() { done <- recover() }()
			g.do(context.Background(), "k", time.Now, func() (interface{}, time.Duration) {
				close(started)
				<-release
				panic("boom")
			})
		}()
		<-started
		waiter := make(chan interface{}, 1)
		go func() {
			v, ok := g.do(context.Background(), "k", time.Now, func() (interface{}, time.Duration) { return "unexpected", 0 })
			if !ok {
				waiter <- "gave up"
				return
			}
			waiter <- v
		}()
		waitFor(t, "the waiter", func() bool { return g.waiting("k") == 1 })
		close(release)
		if p := <-done; fmt.Sprint(p) != "boom" {
			t.Errorf("the caller recovered %v, want the panic", p)
		}
		if v := <-waiter; v != nil {
			t.Errorf("the waiter got %v, want nil", v)
		}
		if g.len() != 0 {
			t.Error("a failed call stayed in the group")
		}
	})
	t.Run("a waiter whose request ends gives up", func(t *testing.T) {
		g := newFlightGroup(16)
		release := make(chan struct{})
		go g.do(context.Background(), "slow", time.Now, func() (interface{}, time.Duration) {
			<-release
			return "late", time.Second
		})
		waitFor(t, "the work", func() bool { return g.len() == 1 })
		ctx, cancel := context.WithCancel(context.Background())
		gaveUp := make(chan bool, 1)
		go func() {
			_, ok := g.do(ctx, "slow", time.Now, func() (interface{}, time.Duration) { return "unexpected", 0 })
			gaveUp <- !ok
		}()
		waitFor(t, "the waiter", func() bool { return g.waiting("slow") == 1 })
		cancel()
		if !<-gaveUp {
			t.Error("the waiter did not give up")
		}
		if n := g.waiting("slow"); n != 0 {
			t.Errorf("%d waiters left", n)
		}
		close(release)
	})
	t.Run("work in flight stays when the group is full", func(t *testing.T) {
		g := newFlightGroup(4)
		started := make(chan struct{})
		release := make(chan struct{})
		first := make(chan interface{}, 1)
		go func() {
			v, _ := g.do(context.Background(), "in flight", time.Now, func() (interface{}, time.Duration) {
				close(started)
				<-release
				return "the first call's", time.Minute
			})
			first <- v
		}()
		<-started
		// More finished work than the group holds: it evicts.
		for i := 0; i < 10; i++ {
			i := i
			g.do(context.Background(), fmt.Sprintf("done-%d", i), time.Now, func() (interface{}, time.Duration) { return i, time.Hour })
		}
		// A second caller of the work in flight joins it, rather than run
		// it again: a renewal would redeem a refresh token twice.
		second := make(chan interface{}, 1)
		go func() {
			v, _ := g.do(context.Background(), "in flight", time.Now, func() (interface{}, time.Duration) {
				return "a second call's", time.Minute
			})
			second <- v
		}()
		deadline := time.Now().Add(10 * time.Second)
		for g.waiting("in flight") != 1 && len(second) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		close(release)
		if v := <-second; v != "the first call's" {
			t.Errorf("the second caller got %v, want the first call's result: the group dropped the work in flight when full", v)
		}
		<-first
		if n := g.len(); n > 4 {
			t.Errorf("%d entries, want at most 4", n)
		}
	})
	t.Run("the group stays within its bound", func(t *testing.T) {
		g := newFlightGroup(8)
		for i := 0; i < 100; i++ {
			g.do(context.Background(), fmt.Sprintf("k%d", i), time.Now, func() (interface{}, time.Duration) { return i, time.Hour })
		}
		if n := g.len(); n > 8 {
			t.Errorf("%d entries, want at most 8", n)
		}
	})
}

// A failure is remembered from when the work ended: work that took a
// timeout (10 s of Entra ID black-holed) to fail must not leave the next
// requests to try again at once, each waiting out a timeout of its own.
func TestFlightGroupRemembersAResultFromTheEndOfTheWork(t *testing.T) {
	g := newFlightGroup(16)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	runs := 0
	slowFailure := func() (interface{}, time.Duration) {
		runs++
		mu.Lock()
		now = now.Add(10 * time.Second)
		mu.Unlock()
		return "failed", 5 * time.Second
	}
	g.do(context.Background(), "k", clock, slowFailure)
	end := clock()
	set := func(t time.Time) {
		mu.Lock()
		now = t
		mu.Unlock()
	}
	for _, after := range []time.Duration{0, time.Second, 4 * time.Second} {
		set(end.Add(after))
		if v, _ := g.do(context.Background(), "k", clock, slowFailure); v != "failed" || runs != 1 {
			t.Fatalf("%v after the failure ended: %v, %d runs; want the remembered failure", after, v, runs)
		}
	}
	set(end.Add(5 * time.Second))
	g.do(context.Background(), "k", clock, slowFailure)
	if runs != 2 {
		t.Errorf("5s after the failure ended: %d runs, want a new attempt", runs)
	}
}

// Hundreds of requests waiting for one slow piece of work all get its
// result when it ends, and each is counted while it waits: waiters sleep
// until the work wakes them (under Yaegi too, with sync.Cond).
func TestFlightGroupWakesManyWaitersWhenTheWorkEnds(t *testing.T) {
	g := newFlightGroup(16)
	release := startSlowWork(g, "slow", "done")
	const n = 300
	results := make(chan interface{}, n)
	for i := 0; i < n; i++ {
		go func() {
			v, ok := g.do(context.Background(), "slow", time.Now, func() (interface{}, time.Duration) { return "ran again", 0 })
			if !ok {
				v = "gave up"
			}
			results <- v
		}()
	}
	waitFor(t, "the waiters", func() bool { return g.waiting("slow") == n })
	close(release)
	for i := 0; i < n; i++ {
		if v := <-results; v != "done" {
			t.Fatalf("a waiter got %v, want done", v)
		}
	}
	if w := g.waiting("slow"); w != 0 {
		t.Errorf("%d waiters left", w)
	}
}

// startSlowWork starts work for key in g that returns result once release
// is closed, and returns when the work runs.
func startSlowWork(g *flightGroup, key string, result interface{}) chan struct{} {
	release := make(chan struct{})
	started := make(chan struct{})
	go g.do(context.Background(), key, time.Now, func() (interface{}, time.Duration) {
		close(started)
		<-release
		return result, time.Second
	})
	<-started
	return release
}

// waitFor polls cond until it holds, failing the test after 10 s: tests
// wait for a state, never for a guessed time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkWaitersOfASlowFlight prints the CPU time that 500 requests
// spend waiting 2 s for one slow piece of work (a renewal while Entra ID is
// slow). Under Yaegi v0.16.1 the polling waiters of before spent 700 ms of
// CPU; sleeping on a sync.Cond they spend none. Run it under Yaegi:
// yaegi test -run XXX -bench WaitersOfASlowFlight -benchtime 1x.
func BenchmarkWaitersOfASlowFlight(b *testing.B) {
	const waiters = 500
	for i := 0; i < b.N; i++ {
		g := newFlightGroup(16)
		release := startSlowWork(g, "slow", "done")
		var wg sync.WaitGroup
		for j := 0; j < waiters; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.do(context.Background(), "slow", time.Now, func() (interface{}, time.Duration) { return "ran again", 0 })
			}()
		}
		for g.waiting("slow") != waiters {
			time.Sleep(time.Millisecond)
		}
		before := processCPU(b)
		time.Sleep(2 * time.Second)
		spent := processCPU(b) - before
		close(release)
		wg.Wait()
		b.ReportMetric(float64(spent/time.Millisecond), "cpu-ms/2s-of-500-waiters")
	}
}

// processCPU is the CPU time (user and system) of this process so far,
// from /proc/self/stat (Linux), in clock ticks of 10 ms.
func processCPU(b *testing.B) time.Duration {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		b.Fatalf("this benchmark reads the process's CPU time from /proc/self/stat (Linux): %v", err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// After the command: state is fields[0], utime fields[11], stime fields[12].
	user, err1 := strconv.ParseInt(fields[11], 10, 64)
	system, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("cannot read /proc/self/stat: %q", s)
	}
	return time.Duration(user+system) * 10 * time.Millisecond
}
