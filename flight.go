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
	until    time.Time  // the result serves callers until then
	done     *sync.Cond // on the group's lock: broadcast when finished
	waiters  int        // callers waiting for the result
}

func newFlightGroup(max int) *flightGroup {
	return &flightGroup{calls: map[string]*flight{}, max: max}
}

// maxFlightWait bounds how long a request waits for another's work: a bit
// more than a call to Entra ID may take.
const maxFlightWait = 20 * time.Second

// do returns the result for key: a remembered one, the result of work in
// flight, or that of run, which it calls. run returns the result and how
// long to remember it, counted from when run returns on clock: a failure
// that took a timeout to come is remembered as long as a quick one. ok is
// false when the wait for another caller's work ended first (ctx done, or
// maxFlightWait). A panic in run reaches the caller, and the waiters get a
// nil result.
func (g *flightGroup) do(ctx context.Context, key string, clock func() time.Time, run func() (interface{}, time.Duration)) (result interface{}, ok bool) {
	now := clock()
	g.mu.Lock()
	f := g.calls[key]
	if f != nil && f.finished && !now.Before(f.until) {
		delete(g.calls, key)
		f = nil
	}
	if f != nil {
		return g.waitLocked(ctx, f)
	}
	f = &flight{done: sync.NewCond(&g.mu)}
	g.addLocked(key, f, now)
	g.mu.Unlock()

	var keep time.Duration
	defer func() {
		end := clock()
		g.mu.Lock()
		f.finished = true
		f.result = result
		f.until = end.Add(keep)
		if keep <= 0 && g.calls[key] == f {
			delete(g.calls, key)
		}
		f.done.Broadcast()
		g.mu.Unlock()
	}()
	result, keep = run()
	return result, true
}

// waitLocked waits, with the group's lock held, until f is finished, ctx
// ends or maxFlightWait passes, and returns with the lock released.
//
// Waiters sleep on f.done, which the work broadcasts when it finishes and
// a timer and ctx's end broadcast to give up: a waiter costs nothing while
// it waits, however long the work takes and however many wait. There is no
// select on a channel and ctx.Done(): Yaegi v0.16.1 keeps one list of
// cases per select statement, shared by every goroutine executing it, so
// that concurrent requests would wait on each other's channels (see
// entraid's acquire). The timer and ctx's callback take the lock before
// they broadcast, and are registered under it: no wake-up is lost before
// the first Wait.
func (g *flightGroup) waitLocked(ctx context.Context, f *flight) (interface{}, bool) {
	if !f.finished {
		timedOut := false
		timer := time.AfterFunc(maxFlightWait, func() {
			g.mu.Lock()
			timedOut = true
			f.done.Broadcast()
			g.mu.Unlock()
		})
		stop := context.AfterFunc(ctx, func() {
			g.mu.Lock()
			f.done.Broadcast()
			g.mu.Unlock()
		})
		f.waiters++
		for !f.finished && !timedOut && ctx.Err() == nil {
			f.done.Wait()
		}
		f.waiters--
		defer timer.Stop()
		defer stop()
	}
	// One assignment per statement: Yaegi can mix up parallel ones.
	finished := f.finished
	result := f.result
	g.mu.Unlock()
	if !finished {
		return nil, false
	}
	return result, true
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

// waiting is the number of callers waiting for key's work.
func (g *flightGroup) waiting(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.calls[key]; f != nil {
		return f.waiters
	}
	return 0
}
