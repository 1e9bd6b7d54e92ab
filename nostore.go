package entraauth

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// privateNoStore is the Cache-Control of every response on which the plugin
// sets or deletes a cookie, its own pages and the upstream's answers alike:
// a shared cache (a CDN, Varnish, nginx's proxy_cache) that stored one
// would hand the user's session to everyone who asks for the same URL.
const privateNoStore = "private, no-store"

// sharedCacheControls are the headers by which CDNs and nginx let an origin
// override Cache-Control for their own caches: they go too.
var sharedCacheControls = []string{"Surrogate-Control", "Cdn-Cache-Control", "Cloudflare-Cdn-Cache-Control", "X-Accel-Expires"}

// makePrivate makes h uncacheable by shared caches, whatever it said.
func makePrivate(h http.Header) {
	h["Cache-Control"] = []string{privateNoStore}
	for _, name := range sharedCacheControls {
		delete(h, name)
	}
}

// privateIfCookie returns w, or, when the plugin has set a cookie on the
// response (a renewed session), w made private: the upstream's caching
// headers are replaced when it writes its header. Only such responses pay
// for the wrapper: the fast path never sets a cookie.
func privateIfCookie(w http.ResponseWriter) http.ResponseWriter {
	if len(w.Header()["Set-Cookie"]) == 0 {
		return w
	}
	return &privateResponse{w: w}
}

// privateResponse passes the upstream's response on, made private when its
// header is written (makePrivate on every WriteHeader, 1xx included, since
// Go sends the header with each). It implements http.Hijacker, so that a
// WebSocket upgrade still works. Under Yaegi, compiled code sees only
// http.ResponseWriter and http.Hijacker on an interpreted writer, so Flush
// is not reached there: the one response per lifetime that carries a
// renewed session is not flushed early.
type privateResponse struct {
	w     http.ResponseWriter
	wrote bool // a final status was written
}

func (p *privateResponse) Header() http.Header { return p.w.Header() }

func (p *privateResponse) WriteHeader(code int) {
	if !p.wrote {
		makePrivate(p.w.Header())
	}
	if code >= 200 {
		p.wrote = true
	}
	p.w.WriteHeader(code)
}

func (p *privateResponse) Write(b []byte) (int, error) {
	if !p.wrote {
		p.WriteHeader(http.StatusOK)
	}
	return p.w.Write(b)
}

// Flush writes the header first, so that a flush never sends it unmade.
func (p *privateResponse) Flush() {
	if !p.wrote {
		p.WriteHeader(http.StatusOK)
	}
	if f, ok := p.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack hands the connection over: the upgrade's 101 has been written
// through WriteHeader, or the handler writes its own.
func (p *privateResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := p.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("entraauth: the response cannot be hijacked")
	}
	return h.Hijack()
}
