package entraauth

import (
	"context"
	"fmt"
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
			v, ok := g.do(context.Background(), "key", now, func() (interface{}, time.Duration) {
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
	g.do(context.Background(), "key", now.Add(59*time.Second), func() (interface{}, time.Duration) {
		atomic.AddInt64(&runs, 1)
		return "again", time.Minute
	})
	if runs != 1 {
		t.Error("a remembered result ran again")
	}
	v, _ := g.do(context.Background(), "key", now.Add(time.Minute), func() (interface{}, time.Duration) {
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
			v, ok := g.do(context.Background(), key, time.Now(), func() (interface{}, time.Duration) {
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
			g.do(context.Background(), "k", time.Now(), func() (interface{}, time.Duration) {
				close(started)
				<-release
				panic("boom")
			})
		}()
		<-started
		ctx := newWatchedContext()
		waiter := make(chan interface{}, 1)
		go func() {
			v, ok := g.do(ctx, "k", time.Now(), func() (interface{}, time.Duration) { return "unexpected", 0 })
			if !ok {
				waiter <- "gave up"
				return
			}
			waiter <- v
		}()
		ctx.awaitWaiting(t, release)
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
		started := make(chan struct{})
		release := make(chan struct{})
		defer close(release)
		go g.do(context.Background(), "slow", time.Now(), func() (interface{}, time.Duration) {
			close(started)
			<-release
			return "late", time.Second
		})
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, ok := g.do(ctx, "slow", time.Now(), func() (interface{}, time.Duration) { return "unexpected", 0 }); ok {
			t.Error("the waiter did not give up")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("giving up took %v", took)
		}
	})
	t.Run("work in flight stays when the group is full", func(t *testing.T) {
		g := newFlightGroup(4)
		started := make(chan struct{})
		release := make(chan struct{})
		first := make(chan interface{}, 1)
		go func() {
			v, _ := g.do(context.Background(), "in flight", time.Now(), func() (interface{}, time.Duration) {
				close(started)
				<-release
				return "the first call's", time.Minute
			})
			first <- v
		}()
		<-started
		// More finished work than the group holds: it evicts.
		for i := 0; i < 10; i++ {
			g.do(context.Background(), fmt.Sprintf("done-%d", i), time.Now(), func() (interface{}, time.Duration) { return i, time.Hour })
		}
		// A second caller of the work in flight joins it, rather than run
		// it again: a renewal would redeem a refresh token twice.
		ctx := newWatchedContext()
		second := make(chan interface{}, 1)
		ranAgain := make(chan struct{})
		go func() {
			v, _ := g.do(ctx, "in flight", time.Now(), func() (interface{}, time.Duration) {
				close(ranAgain)
				return "a second call's", time.Minute
			})
			second <- v
		}()
		// Only closed channels in the select: under Yaegi a select that
		// returns may still take a value sent later to one of its cases.
		select {
		case <-ctx.waiting:
		case <-ranAgain:
			close(release)
			t.Fatal("a second caller of the work in flight ran it again: the group dropped it when full")
		case <-time.After(10 * time.Second):
			close(release)
			t.Fatal("the second caller neither waited nor ran")
		}
		close(release)
		if v := <-second; v != "the first call's" {
			t.Errorf("the second caller got %v, want the first call's result", v)
		}
		<-first
		if n := g.len(); n > 4 {
			t.Errorf("%d entries, want at most 4", n)
		}
	})
	t.Run("the group stays within its bound", func(t *testing.T) {
		g := newFlightGroup(8)
		for i := 0; i < 100; i++ {
			g.do(context.Background(), fmt.Sprintf("k%d", i), time.Now(), func() (interface{}, time.Duration) { return i, time.Hour })
		}
		if n := g.len(); n > 8 {
			t.Errorf("%d entries, want at most 8", n)
		}
	})
}

// watchedContext is a context that tells, by closing waiting, that a
// caller of do consults it: the caller is waiting for another's work.
// Tests wait for that state rather than for a time.
type watchedContext struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func newWatchedContext() *watchedContext {
	return &watchedContext{Context: context.Background(), waiting: make(chan struct{})}
}

func (c *watchedContext) seen() { c.once.Do(func() { close(c.waiting) }) }

func (c *watchedContext) Err() error {
	c.seen()
	return c.Context.Err()
}

func (c *watchedContext) Done() <-chan struct{} {
	c.seen()
	return c.Context.Done()
}

// awaitWaiting returns once the caller with c waits; after a bound it
// closes release, so that nothing stays blocked, and fails.
func (c *watchedContext) awaitWaiting(t *testing.T, release chan struct{}) {
	t.Helper()
	select {
	case <-c.waiting:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the second caller never waited for the work in flight")
	}
}
