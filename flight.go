package entraauth

import (
	"context"
	"sync"
	"time"
)

// flightGroup runs work for a key once however many requests ask for it at
// the same time, and remembers the result for a while: the renewal of one
// session that a page's twenty parallel fetches all need, the access token
// of one session for the upstream. The first caller does the work on its
// own goroutine (no goroutine is started); the others wait for it, bounded,
// by polling (see wait).
//
// Groups are package-level, like the session cache, so that they outlive
// Traefik's reloads (a renewal must not run twice because a reload came in
// between), and bounded by max entries: when full, results past their time
// go first, then every finished one.
type flightGroup struct {
	mu    sync.Mutex
	calls map[string]*flight
	max   int
}

// flight is one piece of work and, once finished, its result (all under
// the group's lock).
type flight struct {
	finished bool
	result   interface{}
	until    time.Time // the result serves callers until then
}

func newFlightGroup(max int) *flightGroup {
	return &flightGroup{calls: map[string]*flight{}, max: max}
}

// maxFlightWait bounds how long a request waits for another's work: a bit
// more than a call to Entra ID may take.
const maxFlightWait = 20 * time.Second

// do returns the result for key: a remembered one, the result of work in
// flight, or that of run, which it calls. run returns the result and how
// long to remember it. ok is false when the wait for another caller's work
// ended first (ctx done, or maxFlightWait). A panic in run reaches the
// caller, and the waiters get a nil result.
func (g *flightGroup) do(ctx context.Context, key string, now time.Time, run func() (interface{}, time.Duration)) (result interface{}, ok bool) {
	g.mu.Lock()
	f := g.calls[key]
	if f != nil && f.finished && !now.Before(f.until) {
		delete(g.calls, key)
		f = nil
	}
	if f != nil && f.finished {
		r := f.result
		g.mu.Unlock()
		return r, true
	}
	if f != nil {
		g.mu.Unlock()
		return g.wait(ctx, f)
	}
	f = &flight{}
	g.addLocked(key, f, now)
	g.mu.Unlock()

	var keep time.Duration
	defer func() {
		g.mu.Lock()
		f.finished = true
		f.result = result
		f.until = now.Add(keep)
		if keep <= 0 && g.calls[key] == f {
			delete(g.calls, key)
		}
		g.mu.Unlock()
	}()
	result, keep = run()
	return result, true
}

// wait polls f until it is finished, ctx ends or maxFlightWait passes.
//
// It does not select on a channel and ctx.Done(): Yaegi v0.16.1 keeps one
// list of cases per select statement, shared by every goroutine executing
// it, so that concurrent requests would wait on each other's channels (see
// entraid's acquire). The pause grows from 50µs to 5ms: a waiter notices
// within 5 ms, and a hundred waiters cost little.
func (g *flightGroup) wait(ctx context.Context, f *flight) (interface{}, bool) {
	deadline := time.Now().Add(maxFlightWait)
	pause := 50 * time.Microsecond
	for {
		g.mu.Lock()
		finished := f.finished
		result := f.result
		g.mu.Unlock()
		if finished {
			return result, true
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, false
		}
		time.Sleep(pause)
		if pause < 5*time.Millisecond {
			pause *= 2
		}
	}
}

func (g *flightGroup) addLocked(key string, f *flight, now time.Time) {
	if len(g.calls) >= g.max {
		for k, c := range g.calls {
			if c.finished && !now.Before(c.until) {
				delete(g.calls, k)
			}
		}
	}
	if len(g.calls) >= g.max {
		for k, c := range g.calls {
			if c.finished {
				delete(g.calls, k)
			}
		}
	}
	g.calls[key] = f
}

// len is the number of keys remembered or in flight.
func (g *flightGroup) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}
