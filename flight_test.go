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
		waiter := make(chan interface{}, 1)
		go func() {
			v, ok := g.do(context.Background(), "k", time.Now(), func() (interface{}, time.Duration) { return "unexpected", 0 })
			if !ok {
				waiter <- "gave up"
				return
			}
			waiter <- v
		}()
		time.Sleep(20 * time.Millisecond)
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
		go g.do(context.Background(), "slow", time.Now(), func() (interface{}, time.Duration) {
			<-release
			return "late", time.Second
		})
		time.Sleep(10 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, ok := g.do(ctx, "slow", time.Now(), func() (interface{}, time.Duration) { return "unexpected", 0 }); ok {
			t.Error("the waiter did not give up")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("giving up took %v", took)
		}
		close(release)
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
