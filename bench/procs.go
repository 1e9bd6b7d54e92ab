package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds for every wait, so that a hang ends the run with a message.
const (
	startTimeout = 3 * time.Minute // Traefik start, including Yaegi loading the plugin (under valgrind too)
	stopTimeout  = 10 * time.Second
)

// process is a child process that dies with the bench: it gets SIGKILL if
// the bench itself is killed (Pdeathsig), and stop ends it otherwise.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string // its stdout and stderr
	exited chan struct{}
}

func startProcess(name, dir, logFile string, env []string, argv ...string) (*process, error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	// Its own process group keeps a Ctrl-C in the terminal for the bench,
	// which then stops the children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logFile, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	return p, nil
}

// stop ends the process: SIGTERM, then SIGKILL. It may be called twice.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// rss is the process's resident memory (VmRSS) in bytes.
func (p *process) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) != 3 || f[2] != "kB" {
				break
			}
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
}

func (p *process) logTail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + p.name + " log (tail) ---\n" + strings.Join(lines, "\n")
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// entrypoint is one HTTPS entry point of a Traefik under test with the
// router on it: its middleware (nil for none), the routers on some path
// prefixes in front of it, and the port it got.
type entrypoint struct {
	name       string
	middleware map[string]interface{} // the middleware's dynamic configuration
	prefixes   []prefixRoute
	port       int
}

// prefixRoute is a router for the paths under prefix, with its own
// middleware, on an entry point.
type prefixRoute struct {
	name, prefix string
	middleware   map[string]interface{}
}

func (e *entrypoint) url(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", e.port, path)
}

// traefik is a running Traefik with one router per entry point, all in
// front of the same upstream.
type traefik struct {
	*process
	site    *site
	apiPort int
	eps     []*entrypoint
}

// site is what every Traefik of a run shares: the binary, the plugins it
// loads in local mode, the certificate of its entry points and the
// upstream behind them.
type site struct {
	bin      string
	plugins  map[string]string // plugin key in the static configuration -> module name
	sources  map[string]string // module name -> directory
	cert     *certificate
	upstream string
	// wrap and env run Traefik under another program (valgrind) with
	// more environment; callgrindDir holds callgrind's dumps.
	wrap, env    []string
	callgrindDir string
}

const (
	pluginKey  = "entraauth"
	noopKey    = "noop"
	moduleName = "github.com/tfa-plugin/entraauth"
	noopModule = "github.com/tfa-plugin/noop"
)

func newSite(bin, repo, upstream string, cert *certificate) *site {
	return &site{
		bin:      bin,
		plugins:  map[string]string{pluginKey: moduleName, noopKey: noopModule},
		sources:  map[string]string{moduleName: repo, noopModule: filepath.Join(repo, "bench", "noop")},
		cert:     cert,
		upstream: upstream,
	}
}

// startTraefik runs Traefik in a fresh directory under dir and waits until
// every router and middleware is enabled. Traefik loads a plugin when a
// middleware uses it, or when its key is in load.
func startTraefik(ctx context.Context, s *site, name, dir string, eps []*entrypoint, load ...string) (*traefik, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Traefik loads local plugins from ./plugins-local/src/<module> of its
	// working directory; Yaegi follows the symlinks.
	for module, src := range s.sources {
		pluginDir := filepath.Join(dir, "plugins-local", "src", filepath.FromSlash(module))
		if err := os.MkdirAll(filepath.Dir(pluginDir), 0o755); err != nil {
			return nil, err
		}
		if err := os.Symlink(src, pluginDir); err != nil {
			return nil, err
		}
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	entryPoints := map[string]interface{}{
		"traefik": map[string]interface{}{"address": fmt.Sprintf("127.0.0.1:%d", apiPort)},
	}
	routers := map[string]interface{}{}
	middlewares := map[string]interface{}{}
	used := map[string]bool{}
	for _, key := range load {
		used[key] = true
	}
	addRouter := func(name, rule, ep string, middleware map[string]interface{}) {
		router := map[string]interface{}{
			"rule":        rule,
			"entryPoints": []string{ep},
			"service":     "upstream",
			"tls":         map[string]interface{}{},
		}
		if middleware != nil {
			middlewares[name] = middleware
			router["middlewares"] = []string{name}
			if plugin, ok := middleware["plugin"].(map[string]interface{}); ok {
				for key := range plugin {
					used[key] = true
				}
			}
		}
		routers[name] = router
	}
	for _, ep := range eps {
		if ep.port, err = freePort(); err != nil {
			return nil, err
		}
		entryPoints[ep.name] = map[string]interface{}{
			"address":   fmt.Sprintf("127.0.0.1:%d", ep.port),
			"transport": map[string]interface{}{"lifeCycle": map[string]interface{}{"graceTimeOut": "1s"}},
		}
		addRouter(ep.name, "PathPrefix(`/`)", ep.name, ep.middleware)
		for _, pr := range ep.prefixes {
			// Longer rules win: the prefix's router comes first.
			addRouter(pr.name, "PathPrefix(`"+pr.prefix+"`)", ep.name, pr.middleware)
		}
	}
	static := map[string]interface{}{
		"global":      map[string]interface{}{"checkNewVersion": false, "sendAnonymousUsage": false},
		"entryPoints": entryPoints,
		// The API tells when the routers are up; debug adds pprof, whose
		// heap endpoint can force a garbage collection.
		"api":       map[string]interface{}{"insecure": true, "dashboard": false, "debug": true},
		"providers": map[string]interface{}{"file": map[string]interface{}{"filename": filepath.Join(dir, "dynamic.yaml")}},
		// ERROR only: the benchmark measures requests, not logging.
		"log": map[string]interface{}{"level": "ERROR", "noColor": true},
	}
	httpConfig := map[string]interface{}{
		"routers": routers,
		"services": map[string]interface{}{
			"upstream": map[string]interface{}{
				"loadBalancer": map[string]interface{}{
					"servers": []interface{}{map[string]interface{}{"url": s.upstream}},
				},
			},
		},
	}
	// An empty middlewares section is an error for the file provider.
	if len(middlewares) > 0 {
		httpConfig["middlewares"] = middlewares
	}
	certificate := map[string]interface{}{"certFile": s.cert.certFile, "keyFile": s.cert.keyFile}
	dynamic := map[string]interface{}{
		"http": httpConfig,
		"tls": map[string]interface{}{
			"stores": map[string]interface{}{"default": map[string]interface{}{"defaultCertificate": certificate}},
		},
	}
	// Only the plugins a Traefik uses (or is told to load) are loaded:
	// Traefik alone is then Traefik without Yaegi.
	local := map[string]interface{}{}
	for key := range used {
		module, ok := s.plugins[key]
		if !ok {
			return nil, fmt.Errorf("no local plugin %q", key)
		}
		local[key] = map[string]interface{}{"moduleName": module}
	}
	if len(local) > 0 {
		static["experimental"] = map[string]interface{}{"localPlugins": local}
	}
	// YAML is a superset of JSON; the .yaml names pick Traefik's decoder.
	for file, v := range map[string]interface{}{"traefik.yaml": static, "dynamic.yaml": dynamic} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		if strings.Contains(string(b), "{{") {
			return nil, errors.New("the file provider would read {{ as a template")
		}
		if err := os.WriteFile(filepath.Join(dir, file), b, 0o600); err != nil {
			return nil, err
		}
	}
	argv := append(append([]string(nil), s.wrap...), s.bin, "--configFile="+filepath.Join(dir, "traefik.yaml"))
	p, err := startProcess(name, dir, filepath.Join(dir, "traefik.log"), s.env, argv...)
	if err != nil {
		return nil, err
	}
	var names []string
	for router := range routers {
		names = append(names, router)
	}
	tr := &traefik{process: p, site: s, apiPort: apiPort, eps: eps}
	if err := tr.waitReady(ctx, names, middlewares); err != nil {
		tr.stop()
		return nil, fmt.Errorf("%s: %v\n%s", name, err, tr.logTail(40))
	}
	return tr, nil
}

// waitReady polls Traefik's API until every router and middleware is
// enabled, failing fast when Traefik exits or disables plugins.
func (tr *traefik) waitReady(ctx context.Context, routers []string, middlewares map[string]interface{}) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		if !tr.running() {
			return errors.New("traefik exited")
		}
		b, _ := os.ReadFile(tr.log)
		for _, bad := range []string{"Plugins are disabled", "Error while building configuration"} {
			if strings.Contains(string(b), bad) {
				return fmt.Errorf("traefik log: %s", bad)
			}
		}
		ready := true
		for _, name := range routers {
			kinds := []string{"routers"}
			if middlewares[name] != nil {
				kinds = append(kinds, "middlewares")
			}
			for _, kind := range kinds {
				st, err := tr.apiStatus(c, kind, name)
				if err != nil {
					return err
				}
				if st == "" {
					ready = false
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// apiStatus returns "enabled", "" while the object is not there yet, or an
// error when Traefik disabled it.
func (tr *traefik) apiStatus(c *http.Client, kind, name string) (string, error) {
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/api/http/%s/%s@file", tr.apiPort, kind, name))
	if err != nil {
		return "", nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", nil
	}
	var st struct {
		Status string   `json:"status"`
		Error  []string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", nil
	}
	if st.Status != "enabled" || len(st.Error) > 0 {
		return "", fmt.Errorf("%s %s is %s: %v", kind, name, st.Status, st.Error)
	}
	return st.Status, nil
}

// heapAfterGC forces a garbage collection in Traefik (pprof's heap
// endpoint with gc=1) and returns the live heap (HeapAlloc) it reports:
// unlike RSS, it does not keep what the runtime has not returned yet.
func (tr *traefik) heapAfterGC() (int64, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1&debug=1", tr.apiPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, err
	}
	const key = "# HeapAlloc = "
	i := strings.LastIndex(string(b), key)
	if i < 0 {
		return 0, errors.New("no HeapAlloc in the heap profile")
	}
	rest := string(b[i+len(key):])
	if j := strings.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	return strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
}

// memstats are the counters of Traefik's allocations (expvar, with
// api.debug).
type memstats struct {
	Mallocs, TotalAlloc uint64
}

func (tr *traefik) memstats() (*memstats, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/vars", tr.apiPort))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v struct {
		Memstats *memstats `json:"memstats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, fmt.Errorf("/debug/vars: %v", err)
	}
	if v.Memstats == nil {
		return nil, errors.New("/debug/vars: no memstats")
	}
	return v.Memstats, nil
}

// cpuProfile writes a CPU profile of Traefik over d to file.
func (tr *traefik) cpuProfile(ctx context.Context, d time.Duration, file string) error {
	if d < time.Second {
		d = time.Second
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", tr.apiPort, int(d/time.Second)), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// oauth2Proxy is a running oauth2-proxy, an OIDC client of the fake
// tenant, answering Traefik's forwardAuth on /oauth2/auth.
type oauth2Proxy struct {
	*process
	port int
}

func (o *oauth2Proxy) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", o.port, path)
}

func startOAuth2Proxy(ctx context.Context, bin, dir, issuer, clientID, clientSecret string) (*oauth2Proxy, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	o := &oauth2Proxy{port: port}
	o.process, err = startProcess("oauth2-proxy", dir, filepath.Join(dir, "oauth2-proxy.log"), nil, bin,
		"--provider=oidc",
		"--oidc-issuer-url="+issuer,
		"--client-id="+clientID,
		"--client-secret="+clientSecret,
		"--code-challenge-method=S256",
		"--scope=openid profile email",
		"--redirect-url="+o.url("/oauth2/callback"),
		"--http-address=127.0.0.1:"+strconv.Itoa(port),
		"--cookie-secret="+randomString(32),
		// Plain HTTP, as the other configurations.
		"--cookie-secure=false",
		"--email-domain=*",
		// Entra ID tokens carry no email_verified claim.
		"--insecure-oidc-allow-unverified-email=true",
		"--reverse-proxy",
		"--set-xauthrequest",
		"--skip-provider-button",
		"--upstream=static://200",
		// As Traefik's log level: measure requests, not logging.
		"--request-logging=false",
		"--auth-logging=false",
	)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		if !o.running() {
			return nil, fmt.Errorf("oauth2-proxy exited\n%s", o.logTail(20))
		}
		if resp, err := c.Get(o.url("/ping")); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return o, nil
			}
		}
		select {
		case <-ctx.Done():
			o.stop()
			return nil, fmt.Errorf("oauth2-proxy not ready: %v\n%s", ctx.Err(), o.logTail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
