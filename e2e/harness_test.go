// Package e2e runs the plugin inside a real Traefik binary, the way users run
// it: loaded from plugins-local by Yaegi, configured through the file
// provider, in front of an upstream echo server, signing in against the fake
// Entra tenant of entraid/entraidtest.
//
// The tests need the Traefik binary built by `make tools` (or TRAEFIK_BIN)
// and, for the browser test, Chromium; both are installed by `make e2e`.
// A missing tool fails the tests: a skipped end-to-end suite proves nothing.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

const (
	moduleName = "github.com/tfa-plugin/entraauth"

	// pluginKey is the plugin's name in the static configuration, and
	// authMiddleware the middleware that uses it in the dynamic one.
	pluginKey      = "entraauth"
	authMiddleware = "auth"

	appHost  = "app.example.test"
	app2Host = "app2.example.test"
	authHost = "auth.example.test"

	// Bounds for every wait, so that a hang fails a test instead of the run.
	startTimeout  = 90 * time.Second // Traefik start, including Yaegi loading the plugin
	reloadTimeout = 30 * time.Second // one dynamic configuration change
	stopTimeout   = 15 * time.Second
	requestLimit  = 20 * time.Second
)

// Identities of the fake tenant; tests compare the headers the upstream
// receives with these.
var (
	alice = entraidtest.User{
		OID:               "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
		Name:              "Alice Example",
		PreferredUsername: "alice@contoso.example",
		Email:             "alice@contoso.example",
		Groups:            []string{"0d9a8b7c-1111-4c2d-9e3f-4a5b6c7d8e9f", "1e2f3a4b-2222-4c5d-8e6f-7a8b9c0d1e2f"},
		Roles:             []string{"Reader"},
	}
	bob = entraidtest.User{
		OID:               "7a2b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c5d",
		Name:              "Bob Example",
		PreferredUsername: "bob@contoso.example",
		Email:             "bob@contoso.example",
	}
)

// sessionSecret is the secret most tests seal cookies with (>= 32 chars).
const sessionSecret = "e2e-session-secret-0123456789-abcdefghijklmnop"

// sessionCookieName is the session cookie of the main portal over HTTPS
// without cookieDomain: __Host- before the configured name.
const sessionCookieName = "__Host-entraauth_main"

// repoRoot is the plugin's repository: the parent of this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(b, []byte("module "+moduleName+"\n")) {
		t.Fatalf("%s is not the plugin repository (go.mod: %v)", root, err)
	}
	return root
}

// traefikBinary is the Traefik to test against: TRAEFIK_BIN or the one
// `make tools` builds.
func traefikBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("TRAEFIK_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot(t), ".cache", "traefik-v3.6.12", "traefik")
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("no Traefik binary at %s (run `make tools`, or set TRAEFIK_BIN): %v", bin, err)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
}

// testCerts is a self-signed certificate for every host the tests use; the
// client trusts it as its only root, so TLS and SNI are checked for real.
type testCerts struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

func newCerts(t *testing.T) *testCerts {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "entraauth e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"*.example.test", "example.test", "localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &testCerts{
		certFile: filepath.Join(dir, "cert.pem"),
		keyFile:  filepath.Join(dir, "key.pem"),
		pool:     x509.NewCertPool(),
	}
	c.pool.AddCert(cert)
	writeFile(t, c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return c
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// echoed is what the upstream answers: the request as it reached it.
type echoed struct {
	Method   string      `json:"method"`
	Host     string      `json:"host"`
	Path     string      `json:"path"`
	RawQuery string      `json:"rawQuery"`
	Header   http.Header `json:"header"`
}

// upstream is the service behind Traefik: it echoes requests as JSON and
// echoes one websocket message, prefixed with the X-Forwarded-User it saw.
type upstream struct {
	srv *httptest.Server
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	if isWebSocketUpgrade(r) {
		ws, err := wsUpgrade(w, r)
		if err != nil {
			return
		}
		defer ws.Close()
		op, msg, err := ws.ReadMessage(time.Now().Add(requestLimit))
		if err != nil {
			return
		}
		reply := "user=" + r.Header.Get("X-Forwarded-User") + " echo=" + string(msg)
		_ = ws.WriteMessage(op, []byte(reply))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(echoed{
		Method:   r.Method,
		Host:     r.Host,
		Path:     r.URL.Path,
		RawQuery: r.URL.RawQuery,
		Header:   r.Header,
	})
}

// newTenant starts the fake Entra tenant with alice and bob. signIn
// auto-approves that user; "" shows the sign-in page.
func newTenant(t *testing.T, signIn string) *entraidtest.Tenant {
	t.Helper()
	tenant := entraidtest.NewTenant(entraidtest.Options{
		Users:  []entraidtest.User{alice, bob},
		SignIn: signIn,
	})
	t.Cleanup(tenant.Close)
	return tenant
}

// pluginConfig is the middleware configuration for a tenant, as a user
// would write it.
func pluginConfig(tenant *entraidtest.Tenant, secret string) map[string]interface{} {
	return map[string]interface{}{
		"microsoftEntraID": map[string]interface{}{
			"tenantID":      tenant.TenantID,
			"clientID":      tenant.ClientID,
			"clientSecret":  tenant.ClientSecret,
			"authorityHost": tenant.URL,
		},
		"session": map[string]interface{}{
			"secret": secret,
		},
	}
}

// route is one router of the dynamic configuration; every router uses TLS
// on the websecure entry point and the upstream as its service.
type route struct {
	name        string
	hosts       []string
	middlewares []string
}

// dynamicConfig is what the tests put in the file provider's file.
type dynamicConfig struct {
	routes      []route
	middlewares map[string]map[string]interface{} // plugin configuration by middleware name
	upstream    string
}

// traefik is one running Traefik process with its own directory.
type traefik struct {
	t       *testing.T
	dir     string
	port    int // websecure
	apiPort int // traefik entry point: API and pprof
	dynFile string
	logFile string
	certs   *testCerts
	// environ is added to the environment Traefik inherits (e.g. what a
	// federated credential reads: AZURE_CLIENT_ID...); set it before start.
	environ map[string]string
	// docker, when set before start, adds a Docker provider with this
	// endpoint (e.g. unix:///.../docker.sock) that exposes only containers
	// labelled traefik.enable=true.
	docker   string
	mu       sync.Mutex
	revision int
	cmd      *exec.Cmd
	exited   chan struct{}
	// expected are log texts of failures a test provokes on purpose (a
	// configuration New must refuse): lines holding one are no plugin
	// failure.
	expected []string
}

// expectLogLines tells the log checks that lines containing text are a
// failure the test provokes.
func (tr *traefik) expectLogLines(text string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.expected = append(tr.expected, text)
}

// startTraefik runs Traefik with the plugin from this repository and waits
// until every router of cfg is enabled with its middlewares.
func startTraefik(t *testing.T, certs *testCerts, cfg dynamicConfig) *traefik {
	t.Helper()
	tr := newTraefik(t, certs)
	tr.start(cfg)
	return tr
}

// newTraefik prepares a Traefik directory and picks its ports, for tests
// whose configuration needs the port (authHost).
func newTraefik(t *testing.T, certs *testCerts) *traefik {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()

	// Traefik loads local plugins from ./plugins-local/src/<moduleName>
	// relative to its working directory; Yaegi follows the symlink.
	pluginDir := filepath.Join(dir, "plugins-local", "src", filepath.FromSlash(moduleName))
	if err := os.MkdirAll(filepath.Dir(pluginDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, pluginDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "dynamic"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &traefik{
		t:       t,
		dir:     dir,
		port:    freePort(t),
		apiPort: freePort(t),
		dynFile: filepath.Join(dir, "dynamic", "dynamic.yaml"),
		logFile: filepath.Join(dir, "traefik.log"),
		certs:   certs,
		exited:  make(chan struct{}),
	}
}

// start runs Traefik on cfg and waits until it serves it.
func (tr *traefik) start(cfg dynamicConfig) {
	t := tr.t
	t.Helper()
	bin := traefikBinary(t)
	writeFile(t, filepath.Join(tr.dir, "traefik.yaml"), tr.staticConfig())
	tr.writeDynamic(cfg)

	out, err := os.Create(filepath.Join(tr.dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--configFile="+filepath.Join(tr.dir, "traefik.yaml"))
	cmd.Dir = tr.dir
	if len(tr.environ) > 0 {
		// For duplicate keys the last value wins: these override the
		// inherited ones.
		names := make([]string, 0, len(tr.environ))
		for k := range tr.environ {
			names = append(names, k)
		}
		sort.Strings(names)
		cmd.Env = os.Environ()
		for _, k := range names {
			cmd.Env = append(cmd.Env, k+"="+tr.environ[k])
		}
	}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start traefik: %v", err)
	}
	tr.cmd = cmd
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(tr.exited)
	}()
	t.Cleanup(tr.stop)

	tr.waitApplied(cfg, startTimeout)
}

func (tr *traefik) staticConfig() []byte {
	static := map[string]interface{}{
		"global": map[string]interface{}{
			"checkNewVersion":    false,
			"sendAnonymousUsage": false,
		},
		"entryPoints": map[string]interface{}{
			"websecure": map[string]interface{}{
				"address": fmt.Sprintf("127.0.0.1:%d", tr.port),
				"transport": map[string]interface{}{
					"lifeCycle": map[string]interface{}{"graceTimeOut": "1s"},
				},
			},
			"traefik": map[string]interface{}{
				"address": fmt.Sprintf("127.0.0.1:%d", tr.apiPort),
			},
		},
		"api": map[string]interface{}{
			"insecure":  true,
			"dashboard": false,
			"debug":     true,
		},
		"providers": map[string]interface{}{
			// Apply each configuration change at once: the reload test
			// waits for every one of them.
			"providersThrottleDuration": "100ms",
			"file": map[string]interface{}{
				"filename": tr.dynFile,
				"watch":    true,
			},
		},
		"experimental": map[string]interface{}{
			"localPlugins": map[string]interface{}{
				pluginKey: map[string]interface{}{"moduleName": moduleName},
			},
		},
		"log": map[string]interface{}{
			"level":    "DEBUG",
			"filePath": tr.logFile,
			"noColor":  true,
		},
	}
	if tr.docker != "" {
		static["providers"].(map[string]interface{})["docker"] = map[string]interface{}{
			"endpoint":         tr.docker,
			"exposedByDefault": false,
			"watch":            true,
		}
	}
	// YAML is a superset of JSON; the file names say yaml so that Traefik
	// picks its YAML decoder.
	b, err := json.MarshalIndent(static, "", "  ")
	if err != nil {
		tr.t.Fatal(err)
	}
	return b
}

// marker is the host of the router that tells which revision of the dynamic
// configuration Traefik is serving.
func marker(revision int) string {
	return fmt.Sprintf("rev%d", revision)
}

// writeDynamic replaces the dynamic configuration atomically (the file
// provider must never read a half-written file) and returns its revision.
func (tr *traefik) writeDynamic(cfg dynamicConfig) int {
	tr.mu.Lock()
	tr.revision++
	rev := tr.revision
	tr.mu.Unlock()

	routers := map[string]interface{}{
		// A router per revision, so that waitApplied can see which
		// revision is live.
		marker(rev): map[string]interface{}{
			"rule":        "Host(`" + marker(rev) + ".invalid`)",
			"entryPoints": []string{"websecure"},
			"service":     "echo",
			"tls":         map[string]interface{}{},
		},
	}
	for _, r := range cfg.routes {
		rules := make([]string, 0, len(r.hosts))
		for _, h := range r.hosts {
			rules = append(rules, "Host(`"+h+"`)")
		}
		routers[r.name] = map[string]interface{}{
			"rule":        strings.Join(rules, " || "),
			"entryPoints": []string{"websecure"},
			"middlewares": r.middlewares,
			"service":     "echo",
			"tls":         map[string]interface{}{},
		}
	}
	middlewares := map[string]interface{}{}
	for name, pc := range cfg.middlewares {
		middlewares[name] = map[string]interface{}{
			"plugin": map[string]interface{}{pluginKey: pc},
		}
	}
	httpConfig := map[string]interface{}{
		"routers": routers,
		"services": map[string]interface{}{
			"echo": map[string]interface{}{
				"loadBalancer": map[string]interface{}{
					"servers": []interface{}{map[string]interface{}{"url": cfg.upstream}},
				},
			},
		},
	}
	// The file provider refuses an empty middlewares section, which a
	// configuration whose middlewares come from labels has.
	if len(middlewares) > 0 {
		httpConfig["middlewares"] = middlewares
	}
	dyn := map[string]interface{}{
		"http": httpConfig,
		"tls": map[string]interface{}{
			"certificates": []interface{}{map[string]interface{}{
				"certFile": tr.certs.certFile,
				"keyFile":  tr.certs.keyFile,
			}},
			"stores": map[string]interface{}{
				"default": map[string]interface{}{
					"defaultCertificate": map[string]interface{}{
						"certFile": tr.certs.certFile,
						"keyFile":  tr.certs.keyFile,
					},
				},
			},
		},
	}
	b, err := json.MarshalIndent(dyn, "", "  ")
	if err != nil {
		tr.t.Fatal(err)
	}
	// The file provider renders the file as a Go template.
	if bytes.Contains(b, []byte("{{")) {
		tr.t.Fatal("dynamic configuration must not contain {{")
	}
	tmp := filepath.Join(filepath.Dir(tr.dynFile), fmt.Sprintf(".tmp-%d", rev))
	writeFile(tr.t, tmp, b)
	if err := os.Rename(tmp, tr.dynFile); err != nil {
		tr.t.Fatal(err)
	}
	return rev
}

// reload writes cfg and waits until Traefik serves it.
func (tr *traefik) reload(cfg dynamicConfig) {
	tr.t.Helper()
	tr.writeDynamic(cfg)
	tr.waitApplied(cfg, reloadTimeout)
}

// waitApplied waits until the latest revision is live and every router of
// cfg is enabled with its middlewares enabled, failing fast when Traefik
// exits or disables plugins.
func (tr *traefik) waitApplied(cfg dynamicConfig, timeout time.Duration) {
	tr.t.Helper()
	tr.mu.Lock()
	rev := tr.revision
	tr.mu.Unlock()
	var why string
	ok := waitFor(timeout, 100*time.Millisecond, func() bool {
		select {
		case <-tr.exited:
			why = "traefik exited"
			return true
		default:
		}
		if bad := tr.badLogLine(); bad != "" {
			why = "traefik log: " + bad
			return true
		}
		if st, _ := tr.apiStatus("routers", marker(rev)); st == nil {
			why = "revision " + marker(rev) + " not live"
			return false
		}
		for _, r := range cfg.routes {
			st, err := tr.apiStatus("routers", r.name)
			if err != nil {
				why = err.Error()
				return true // a disabled router stays disabled: fail now
			}
			if st == nil {
				why = "router " + r.name + " not there"
				return false
			}
			got, _ := st["middlewares"].([]interface{})
			if len(got) != len(r.middlewares) {
				why = fmt.Sprintf("router %s has middlewares %v", r.name, got)
				return false
			}
			for _, m := range r.middlewares {
				mst, err := tr.apiStatus("middlewares", m)
				if err != nil {
					why = err.Error()
					return true
				}
				if mst == nil {
					why = "middleware " + m + " not there"
					return false
				}
			}
		}
		why = ""
		return true
	})
	if !ok {
		tr.t.Fatalf("traefik did not apply the configuration within %v: %s", timeout, why)
	}
	if why != "" {
		tr.t.Fatalf("traefik did not apply the configuration: %s", why)
	}
}

// errDisabled says Traefik disabled a router or middleware: for the
// plugin, New returned an error.
var errDisabled = errors.New("disabled")

// apiStatus fetches /api/http/<kind>/<name>@file, or <name> as it is when
// it names its provider (app@docker). It returns nil, nil when the object
// does not exist (yet), and errDisabled when Traefik reports it disabled.
func (tr *traefik) apiStatus(kind, name string) (map[string]interface{}, error) {
	if !strings.Contains(name, "@") {
		name += "@file"
	}
	u := fmt.Sprintf("http://127.0.0.1:%d/api/http/%s/%s", tr.apiPort, kind, name)
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil
	}
	var st map[string]interface{}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, nil
	}
	if st["status"] != "enabled" || st["error"] != nil {
		return nil, fmt.Errorf("%w: %s %s: status %v, error %v", errDisabled, kind, name, st["status"], st["error"])
	}
	return st, nil
}

// goroutines reads Traefik's goroutine count from pprof, after a garbage
// collection: some of Traefik's caches (the go-cache janitor of each TLS
// certificate store, rebuilt on every reload) stop their goroutine only in
// a finalizer, so without a GC the count depends on when the last one ran.
func (tr *traefik) goroutines() (int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	// The heap profile runs runtime.GC first when asked with gc=1.
	gc, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1", tr.apiPort))
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, gc.Body)
	gc.Body.Close()
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/goroutine?debug=1", tr.apiPort))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	const prefix = "goroutine profile: total "
	if !strings.HasPrefix(line, prefix) {
		return 0, fmt.Errorf("unexpected pprof output %q", line)
	}
	return strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, prefix)))
}

// goroutineProfile is Traefik's goroutine profile, stacks grouped with
// counts, for a test to print when a count is off.
func (tr *traefik) goroutineProfile() string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/goroutine?debug=1", tr.apiPort))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b)
}

// url is an address on the websecure entry point.
func (tr *traefik) url(host, pathAndQuery string) string {
	return fmt.Sprintf("https://%s:%d%s", host, tr.port, pathAndQuery)
}

// origin is the Origin a browser sends for pages of host.
func (tr *traefik) origin(host string) string {
	return fmt.Sprintf("https://%s:%d", host, tr.port)
}

// badLogLine is the first line of Traefik's log or output that shows the
// plugin failing, or "": plugins disabled (the plugin did not load), an
// error building a router or middleware (New failed), a panic, or the
// plugin reporting an internal error on its stderr.
func (tr *traefik) badLogLine() string {
	b, _ := os.ReadFile(tr.logFile)
	out, _ := os.ReadFile(filepath.Join(tr.dir, "stdout.log"))
	tr.mu.Lock()
	expected := append([]string(nil), tr.expected...)
	tr.mu.Unlock()
lines:
	for _, line := range strings.Split(string(b)+"\n"+string(out), "\n") {
		if !isPluginFailure(line) {
			continue
		}
		for _, e := range expected {
			if strings.Contains(line, e) {
				continue lines
			}
		}
		return line
	}
	return ""
}

func isPluginFailure(line string) bool {
	lower := strings.ToLower(line)
	switch {
	case strings.Contains(line, "Plugins are disabled"):
		return true
	case strings.Contains(line, " ERR ") && (strings.Contains(lower, "plugin") ||
		strings.Contains(lower, "middleware") || strings.Contains(line, "router.go")):
		return true
	case strings.HasPrefix(line, "panic:") || strings.Contains(line, "runtime error:"):
		return true
	case strings.HasPrefix(line, pluginKey+"[") && strings.Contains(lower, "internal error"):
		return true
	}
	return false
}

func (tr *traefik) logTail(n int) string {
	b, _ := os.ReadFile(tr.logFile)
	out, _ := os.ReadFile(filepath.Join(tr.dir, "stdout.log"))
	lines := strings.Split(strings.TrimRight(string(b)+string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- traefik log (tail) ---\n" + strings.Join(lines, "\n")
}

// stop ends Traefik (SIGTERM, then SIGKILL) and checks its log one last
// time: a plugin failure after start must fail the test too.
func (tr *traefik) stop() {
	if tr.cmd != nil && tr.cmd.Process != nil {
		_ = tr.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-tr.exited:
		case <-time.After(stopTimeout):
			_ = tr.cmd.Process.Kill()
			<-tr.exited
		}
	}
	if bad := tr.badLogLine(); bad != "" {
		tr.t.Errorf("traefik log shows a plugin failure: %s", bad)
	}
	if tr.t.Failed() {
		tr.t.Log(tr.logTail(60))
	}
}

// client is a user agent: a cookie jar, the test CA as its only root, and a
// dialer that sends every host to 127.0.0.1 on the URL's port, so that Host
// headers and SNI carry the real names.
type client struct {
	t   *testing.T
	jar *cookiejar.Jar
	hc  *http.Client
}

func newClient(t *testing.T, certs *testCerts) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return dialer.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		},
		TLSClientConfig:     &tls.Config{RootCAs: certs.pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
	c := &client{
		t:   t,
		jar: jar,
		hc: &http.Client{
			Jar:       jar,
			Transport: tr,
			Timeout:   requestLimit,
			// The tests look at every redirect themselves.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// dial opens a TLS connection to host:port the way the transport does.
func (c *client) dial(u *url.URL) (net.Conn, error) {
	tr := c.hc.Transport.(*http.Transport)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := tr.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}})
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// response is a finished exchange: the response with its body read.
type response struct {
	*http.Response
	body []byte
}

func (r *response) location() string { return r.Header.Get("Location") }

func (c *client) do(req *http.Request) *response {
	c.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return &response{Response: resp, body: body}
}

// request builds a request; header values replace the defaults.
func (c *client) request(method, rawURL string, header http.Header) *http.Request {
	c.t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	return req
}

// navigationHeader is what a browser sends when a user opens a page.
func navigationHeader() http.Header {
	return http.Header{
		"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Sec-Fetch-Mode":  {"navigate"},
		"Sec-Fetch-Dest":  {"document"},
		"User-Agent":      {"entraauth-e2e"},
		"Accept-Language": {"en"},
	}
}

// apiHeader is what a script calling an API sends.
func apiHeader() http.Header {
	return http.Header{
		"Accept":         {"application/json"},
		"Sec-Fetch-Mode": {"cors"},
		"User-Agent":     {"entraauth-e2e"},
	}
}

// visit is a navigation: GET with browser headers, no redirects followed.
func (c *client) visit(rawURL string) *response {
	c.t.Helper()
	return c.do(c.request(http.MethodGet, rawURL, navigationHeader()))
}

// navigate opens rawURL like a browser and follows redirects (at most 10),
// returning the final response and every response on the way, final
// included.
func (c *client) navigate(rawURL string) (*response, []*response) {
	c.t.Helper()
	resp := c.visit(rawURL)
	hops := []*response{resp}
	for i := 0; i < 10; i++ {
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
			http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, hops
		}
		next, err := resp.Request.URL.Parse(resp.location())
		if err != nil {
			c.t.Fatalf("bad Location %q: %v", resp.location(), err)
		}
		resp = c.visit(next.String())
		hops = append(hops, resp)
	}
	c.t.Fatalf("more than 10 redirects: %v", hopURLs(hops))
	return nil, nil
}

// hopURLs is what a test prints about a redirect chain.
func hopURLs(hops []*response) []string {
	urls := make([]string, 0, len(hops))
	for _, h := range hops {
		urls = append(urls, fmt.Sprintf("%d %s", h.StatusCode, h.Request.URL))
	}
	return urls
}

// signIn signs in through rawURL with the auto-approving tenant and returns
// what the upstream saw on arrival.
func (c *client) signIn(rawURL string) *echoed {
	c.t.Helper()
	resp, hops := c.navigate(rawURL)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("sign-in via %v ended with %s: %.500s", hopURLs(hops), resp.Status, resp.body)
	}
	return c.echoed(resp)
}

// echoed decodes the upstream's echo, failing when the response is not one.
func (c *client) echoed(resp *response) *echoed {
	c.t.Helper()
	var e echoed
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		c.t.Fatalf("%s %s: want the upstream's echo, got %s %q: %.300s", resp.Request.Method, resp.Request.URL, resp.Status, resp.Header.Get("Content-Type"), resp.body)
	}
	if err := json.Unmarshal(resp.body, &e); err != nil || e.Header == nil {
		c.t.Fatalf("%s: not an echo (%v): %.300s", resp.Request.URL, err, resp.body)
	}
	return &e
}

// cookieNames lists the cookies the jar would send to rawURL.
func (c *client) cookieNames(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, ck := range c.jar.Cookies(u) {
		names = append(names, ck.Name)
	}
	sort.Strings(names)
	return names
}

// env is the usual stack: tenant, upstream, one Traefik with the plugin on
// app.example.test, and a client.
type env struct {
	t        *testing.T
	tenant   *entraidtest.Tenant
	upstream *upstream
	certs    *testCerts
	cfg      dynamicConfig
	traefik  *traefik
	client   *client
}

// newEnv starts the usual stack. signIn is the user the tenant approves
// ("" for its sign-in page); configure, when not nil, changes the plugin
// configuration before Traefik starts.
func newEnv(t *testing.T, signIn string, configure func(map[string]interface{})) *env {
	t.Helper()
	e := &env{t: t, tenant: newTenant(t, signIn), upstream: newUpstream(t), certs: newCerts(t)}
	pc := pluginConfig(e.tenant, sessionSecret)
	if configure != nil {
		configure(pc)
	}
	e.cfg = dynamicConfig{
		routes:      []route{{name: "app", hosts: []string{appHost}, middlewares: []string{authMiddleware}}},
		middlewares: map[string]map[string]interface{}{authMiddleware: pc},
		upstream:    e.upstream.srv.URL,
	}
	e.traefik = startTraefik(t, e.certs, e.cfg)
	e.client = newClient(t, e.certs)
	return e
}

// sessionSettings is the "session" map of a plugin configuration.
func sessionSettings(pc map[string]interface{}) map[string]interface{} {
	return pc["session"].(map[string]interface{})
}

var errNoCookie = errors.New("no such cookie")

// cookie returns the named cookie the jar holds for rawURL.
func (c *client) cookie(rawURL, name string) (*http.Cookie, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == name {
			return ck, nil
		}
	}
	return nil, errNoCookie
}
