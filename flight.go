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
// own goroutine (no goroutine is started); the others wait for it, bounded.
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

// flight is one piece of work and, once done is closed, its result.
type flight struct {
	done     chan struct{}
	finished bool        // under the group's lock
	result   interface{} // under the group's lock
	until    time.Time   // the result serves callers until then
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
	f = &flight{done: make(chan struct{})}
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
		close(f.done)
	}()
	result, keep = run()
	return result, true
}

func (g *flightGroup) wait(ctx context.Context, f *flight) (interface{}, bool) {
	timer := time.NewTimer(maxFlightWait)
	defer timer.Stop()
	select {
	case <-f.done:
		g.mu.Lock()
		defer g.mu.Unlock()
		return f.result, true
	case <-ctx.Done():
		return nil, false
	case <-timer.C:
		return nil, false
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
