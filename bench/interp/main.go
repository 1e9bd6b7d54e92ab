// Command interp runs the plugin under Yaegi the way Traefik loads it
// (one interpreter per plugin, the standard library's symbols, the plugin
// imported from a GOPATH, New called through reflection, ServeHTTP through
// the http.Handler Yaegi hands back), without Traefik around it, so that
// what the interpreted code costs per request and what the interpreter
// holds for it are measured alone, steadily, and under a profiler.
//
// It loads the do-nothing plugin of bench/noop next to entraauth, and
// times both on the same signed-in request, in alternating rounds:
//
//	interp -repo ..                   # µs/request and allocations, both plugins
//	interp -repo .. -cpuprofile dir   # and a CPU profile of each
//	interp -repo .. -only entraauth -n 20000
//	                                  # a fixed count, for valgrind --tool=callgrind
//	interp -repo .. -memory           # heap held per loaded package
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/bench/browser"
	"github.com/tfa-plugin/entraauth/session"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
)

const (
	pluginModule = "github.com/tfa-plugin/entraauth"
	noopModule   = "github.com/tfa-plugin/noop"
	// cookieName is the plugin's session cookie for the default portal
	// over HTTPS: the __Host- prefix before entraauth_main.
	cookieName = "__Host-entraauth_main"
	tenantID   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID   = "11111111-1111-1111-1111-111111111111"
	userOID    = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
)

func main() {
	repo := flag.String("repo", "..", "the plugin's repository")
	rounds := flag.Int("rounds", 5, "rounds; each times both plugins, in alternating order")
	only := flag.String("only", "", `"entraauth", "noop" or "none" (no plugin): run that -n times and nothing else (for valgrind)`)
	n := flag.Int("n", 20000, "requests with -only")
	minimal := flag.Bool("minimal", false, "send only Host and Cookie, not a browser's headers")
	cpuProfiles := flag.String("cpuprofile", "", "write a CPU profile of each plugin's requests to this directory")
	memory := flag.Bool("memory", false, "measure the heap an interpreter holds per package loaded, and exit")
	heapProfile := flag.String("heapprofile", "", "with -memory: write a heap profile with the whole plugin loaded to this file")
	allocProfile := flag.String("allocprofile", "", "with -only: record every allocation of the -n requests in this profile (go tool pprof -sample_index=alloc_objects)")
	flag.Parse()

	abs, err := filepath.Abs(*repo)
	if err == nil {
		err = run(abs, *rounds, *only, *n, *minimal, *cpuProfiles, *memory, *heapProfile, *allocProfile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "interp: FAIL:", err)
		os.Exit(1)
	}
}

func run(repo string, rounds int, only string, n int, minimal bool, cpuProfiles string, memory bool, heapProfile, allocProfile string) error {
	gopath, err := os.MkdirTemp("", "entraauth-interp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(gopath)
	for module, dir := range map[string]string{pluginModule: repo, noopModule: filepath.Join(repo, "bench", "noop")} {
		link := filepath.Join(gopath, "src", filepath.FromSlash(module))
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(dir, link); err != nil {
			return err
		}
	}
	if memory {
		return measureMemory(gopath, heapProfile)
	}

	secret := "bench-interp-secret-with-at-least-32-characters"
	cookie, err := sealedCookie(secret)
	if err != nil {
		return err
	}
	plugins := []*plugin{
		{name: "noop", module: noopModule},
		{name: "entraauth", module: pluginModule, config: map[string]string{
			"MicrosoftEntraID.TenantID":     tenantID,
			"MicrosoftEntraID.ClientID":     clientID,
			"MicrosoftEntraID.ClientSecret": "not-a-real-secret",
			"Session.Secret":                secret,
		}},
	}
	template := browser.Navigation("app.example.com", browser.CookieHeader(cookie))
	if minimal {
		template = http.Header{"Cookie": {cookie}}
	}
	for _, p := range plugins {
		if only != "" && p.name != only {
			continue
		}
		if err := p.load(gopath); err != nil {
			return err
		}
		if p.module == pluginModule {
			// The plugin moves the whole sealed session into its memory
			// and answers with the small cookie later requests carry.
			if cookie, err = p.movedCookie(cookie); err != nil {
				return err
			}
			template = browser.Navigation("app.example.com", browser.CookieHeader(cookie))
			if minimal {
				template = http.Header{"Cookie": {cookie}}
			}
		}
		if err := p.check(template); err != nil {
			return err
		}
	}
	if only == "none" {
		p := &plugin{name: "none"}
		p.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.passed++ })
		plugins = append(plugins, p)
	}
	if only != "" {
		for _, p := range plugins {
			if p.name == only {
				if allocProfile != "" {
					runtime.MemProfileRate = 1
				}
				start := time.Now()
				p.serve(template, n)
				fmt.Printf("%s: %d requests in %v\n", p.name, n, time.Since(start))
				if allocProfile != "" {
					return writeProfile("allocs", allocProfile)
				}
				return nil
			}
		}
		return fmt.Errorf("-only %q: no such plugin", only)
	}

	if cpuProfiles != "" {
		if err := os.MkdirAll(cpuProfiles, 0o755); err != nil {
			return err
		}
		for _, p := range plugins {
			if err := p.profile(template, filepath.Join(cpuProfiles, p.name+".pprof")); err != nil {
				return err
			}
		}
	}
	clone := testing.Benchmark(func(b *testing.B) {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/reports/2026", nil)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r.Header = template.Clone()
		}
	})
	for r := 0; r < rounds; r++ {
		for i := range plugins {
			p := plugins[(r+i)%len(plugins)]
			res := testing.Benchmark(func(b *testing.B) {
				b.ReportAllocs()
				p.serve(template, b.N)
			})
			p.results = append(p.results, res)
		}
	}
	fmt.Printf("Yaegi %s, %s, %d CPUs, GOMAXPROCS %d; %d rounds; request: %s\n", yaegiVersion(), runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0), rounds, describe(minimal, template))
	fmt.Printf("each request's headers are a fresh copy (%.2f µs, %d allocations, subtracted below)\n\n", float64(clone.NsPerOp())/1e3, clone.AllocsPerOp())
	fmt.Printf("%-10s %12s %12s %12s   %s\n", "plugin", "µs/request", "allocs", "bytes", "µs per round")
	medians := map[string]float64{}
	for _, p := range plugins {
		var us []float64
		var rounds []string
		for _, res := range p.results {
			v := float64(res.NsPerOp()-clone.NsPerOp()) / 1e3
			us = append(us, v)
			rounds = append(rounds, fmt.Sprintf("%.2f", v))
		}
		last := p.results[len(p.results)-1]
		medians[p.name] = median(us)
		fmt.Printf("%-10s %12.2f %12d %12d   %s\n", p.name, medians[p.name], last.AllocsPerOp()-clone.AllocsPerOp(), last.AllocedBytesPerOp()-clone.AllocedBytesPerOp(), strings.Join(rounds, " "))
	}
	fmt.Printf("\nentraauth's signed-in path beyond the do-nothing plugin: %.2f µs/request\n", medians["entraauth"]-medians["noop"])
	return nil
}

// plugin is one plugin loaded in its own interpreter, as Traefik does.
type plugin struct {
	name, module string
	config       map[string]string // field path to value, set on CreateConfig's
	handler      http.Handler
	passed       int
	results      []testing.BenchmarkResult
}

// load imports the plugin into a new interpreter and builds its handler
// with New, in front of a next handler that counts the requests it gets.
func (p *plugin) load(gopath string) error {
	i, err := newInterpreter(gopath, p.module)
	if err != nil {
		return err
	}
	pkg := filepath.Base(p.module)
	newFn, err := i.Eval(pkg + ".New")
	if err != nil {
		return err
	}
	createConfig, err := i.Eval(pkg + ".CreateConfig")
	if err != nil {
		return err
	}
	cfg := createConfig.Call(nil)[0]
	for path, v := range p.config {
		f := cfg.Elem()
		for _, name := range strings.Split(path, ".") {
			f = f.FieldByName(name)
		}
		if !f.IsValid() {
			return fmt.Errorf("%s config: no field %s", p.name, path)
		}
		f.SetString(v)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.passed++ })
	out := newFn.Call([]reflect.Value{reflect.ValueOf(context.Background()), reflect.ValueOf(next), cfg, reflect.ValueOf(p.name)})
	if err, _ := out[1].Interface().(error); err != nil {
		return fmt.Errorf("%s New: %v", p.name, err)
	}
	h, ok := out[0].Interface().(http.Handler)
	if !ok {
		return fmt.Errorf("%s New returned %T", p.name, out[0].Interface())
	}
	p.handler = h
	return nil
}

// newInterpreter is Traefik's (pkg/plugins/middlewareyaegi.go) without
// its provider symbols and logging.
func newInterpreter(gopath, module string) (*interp.Interpreter, error) {
	i := interp.New(interp.Options{GoPath: gopath, Env: os.Environ(), Stdout: os.Stderr, Stderr: os.Stderr})
	if err := i.Use(stdlib.Symbols); err != nil {
		return nil, err
	}
	if _, err := i.Eval(fmt.Sprintf(`import %q`, module)); err != nil {
		return nil, fmt.Errorf("import %s: %v", module, err)
	}
	return i, nil
}

// check sends one request and checks that it reached next as the plugin
// promises: signed in, without the session cookie.
func (p *plugin) check(template http.Header) error {
	h := p.handler
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/reports/2026", nil)
	r.Header = template.Clone()
	w := httptest.NewRecorder()
	before := p.passed
	h.ServeHTTP(w, r)
	seen := r.Header
	if p.passed != before+1 {
		return fmt.Errorf("%s: the request did not pass: %d %s", p.name, w.Code, w.Body.String())
	}
	if p.module == pluginModule {
		if got := seen.Get("X-Forwarded-User"); got != userOID {
			return fmt.Errorf("%s: X-Forwarded-User %q, want %q", p.name, got, userOID)
		}
		if strings.Contains(seen.Get("Cookie"), cookieName) {
			return fmt.Errorf("%s: the session cookie reached next", p.name)
		}
	}
	return nil
}

// movedCookie sends one request with cookie, a whole sealed session, and
// returns the session cookie ("name=value") the plugin moved it to: a
// handle of the session it now remembers (see the readme's "Where the
// session lives").
func (p *plugin) movedCookie(cookie string) (string, error) {
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/reports/2026", nil)
	r.Header.Set("Cookie", cookie)
	r.Header.Set("Accept", "application/json")
	w := httptest.NewRecorder()
	p.handler.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName && c.MaxAge > 0 {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", fmt.Errorf("%s: the whole session was not moved to a handle: %d %s", p.name, w.Code, w.Body.String())
}

// serve sends n requests, each with a fresh copy of template's headers
// (the plugin edits them).
func (p *plugin) serve(template http.Header, n int) {
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/reports/2026", nil)
	w := httptest.NewRecorder()
	for i := 0; i < n; i++ {
		r.Header = template.Clone()
		p.handler.ServeHTTP(w, r)
	}
}

func (p *plugin) profile(template http.Header, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p.serve(template, 1000)
	}
	pprof.StopCPUProfile()
	return f.Close()
}

// sealedCookie is the session cookie ("name=value") of a signed-in user,
// the whole session sealed as the plugin sealed it before it kept sessions
// in memory: the plugin moves it (movedCookie).
func sealedCookie(secret string) (string, error) {
	sealer, err := session.NewSealer(secret, nil)
	if err != nil {
		return "", err
	}
	now := time.Now()
	s := &session.Session{
		OID:               userOID,
		TID:               tenantID,
		Name:              "Alice Example",
		PreferredUsername: "alice@contoso.example",
		Email:             "alice@contoso.example",
		Groups:            []string{"0d9a8b7c-1111-4c2d-9e3f-4a5b6c7d8e9f", "1e2f3a4b-2222-4c5d-8e6f-7a8b9c0d1e2f"},
		Roles:             []string{"Reader"},
		IssuedAt:          now.Unix(),
		Expires:           now.Add(24 * time.Hour).Unix(),
	}
	plain, err := s.Marshal()
	if err != nil {
		return "", err
	}
	// Bound to the cookie and the app registration, as the plugin seals.
	aad := session.AAD(cookieName, "https://login.microsoftonline.com", tenantID, clientID)
	sealed, err := sealer.Seal(plain, aad, time.Unix(s.Expires, 0))
	if err != nil {
		return "", err
	}
	return cookieName + "=" + sealed, nil
}

func describe(minimal bool, h http.Header) string {
	if minimal {
		return "minimal (Cookie only)"
	}
	var names []string
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return fmt.Sprintf("a browser's navigation, %d headers", len(names))
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func yaegiVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/traefik/yaegi" {
				return d.Version
			}
		}
	}
	return "(unknown version)"
}

// measureMemory loads, each into a fresh interpreter, nothing, the
// do-nothing plugin and each package of the plugin (with what it imports),
// and prints the live heap each interpreter holds once loaded.
func measureMemory(gopath, heapProfile string) error {
	imports := []string{
		"",
		noopModule,
		pluginModule + "/jwt",
		pluginModule + "/session",
		pluginModule + "/entraid",
		pluginModule + "/assertion",
		pluginModule,
	}
	if heapProfile != "" {
		// Every allocation, so that the profile counts objects exactly.
		runtime.MemProfileRate = 1
	}
	fmt.Printf("%-40s %12s %12s\n", "interpreter with", "live heap", "beyond empty")
	var empty int64
	for _, imp := range imports {
		before := liveHeap()
		i := interp.New(interp.Options{GoPath: gopath, Env: os.Environ(), Stdout: os.Stderr, Stderr: os.Stderr})
		if err := i.Use(stdlib.Symbols); err != nil {
			return err
		}
		if imp != "" {
			if _, err := i.Eval(fmt.Sprintf(`import %q`, imp)); err != nil {
				return fmt.Errorf("import %s: %v", imp, err)
			}
		}
		held := liveHeap() - before
		name := imp
		if imp == "" {
			name, empty = "(nothing: stdlib symbols only)", held
		}
		fmt.Printf("%-40s %10.1f MiB %+10.1f MiB\n", name, float64(held)/(1<<20), float64(held-empty)/(1<<20))
		if imp == pluginModule && heapProfile != "" {
			if err := writeProfile("heap", heapProfile); err != nil {
				return err
			}
		}
		runtime.KeepAlive(i)
	}
	return nil
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func writeProfile(name, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
