package e2e

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoTimeout bounds `make demo`'s start: two go builds, a certificate and
// Traefik loading the plugin, on a busy machine.
const demoTimeout = 4 * time.Minute

// lockedOutput collects a process's output while it runs.
type lockedOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *lockedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *lockedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// demo is scripts/demo.sh (what `make demo` runs) on ports of the test's
// choosing, in a directory of its own.
type demo struct {
	dir                string
	port               int
	appHost, adminHost string
	output             *lockedOutput
	certs              *testCerts
}

func startDemo(t *testing.T) *demo {
	t.Helper()
	return startDemoWith(t, filepath.Join(repoRoot(t), "scripts", "demo.sh"))
}

// startDemoWith starts the demo with a command line of the caller's.
func startDemoWith(t *testing.T, command ...string) *demo {
	t.Helper()
	d := &demo{dir: t.TempDir(), port: freePort(t), appHost: "app.localhost", adminHost: "admin.localhost", output: &lockedOutput{}}
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(os.Environ(),
		"TRAEFIK_BIN="+traefikBinary(t),
		"DEMO_DIR="+d.dir,
		fmt.Sprintf("DEMO_PORT=%d", d.port),
		fmt.Sprintf("DEMO_API_PORT=%d", freePort(t)),
		fmt.Sprintf("DEMO_TENANT_PORT=%d", freePort(t)),
		fmt.Sprintf("DEMO_APP_PORT=%d", freePort(t)),
		// The dev tenant, whatever the environment says.
		"ENTRA_TENANT_ID=", "ENTRA_CLIENT_ID=", "ENTRA_CLIENT_SECRET=",
	)
	cmd.Stdout = d.output
	cmd.Stderr = d.output
	// A process group of its own: the script, the dev tenant, the app and
	// Traefik end together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start scripts/demo.sh: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// Ctrl-C: the script stops what it started.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		// Ctrl-C is a stop, not a crash: no process "exited" in the output.
		if out := d.output.String(); !strings.Contains(out, "demo: stopping") || strings.Contains(out, "exited") {
			t.Errorf("after Ctrl-C, make demo's output should end with \"demo: stopping\" and name no process that exited:\n%s", tail(out, 8))
		}
		if t.Failed() {
			t.Logf("--- make demo output ---\n%s", d.output)
		}
	})

	ready := waitFor(demoTimeout, 200*time.Millisecond, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		return strings.Contains(d.output.String(), "Ctrl-C stops everything.")
	})
	select {
	case <-exited:
		t.Fatalf("make demo exited before it was ready:\n%s", d.output)
	default:
	}
	if !ready {
		t.Fatalf("make demo was not ready within %v:\n%s", demoTimeout, d.output)
	}

	// Trust the demo's self-signed certificate, and nothing else.
	pem, err := os.ReadFile(filepath.Join(d.dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	d.certs = &testCerts{pool: x509.NewCertPool()}
	if !d.certs.pool.AppendCertsFromPEM(pem) {
		t.Fatal("the demo's cert.pem holds no certificate")
	}
	return d
}

// logFiles are the files the demo's instructions name under "Logs".
func (d *demo) logFiles() []string {
	var files []string
	in := false
	for _, line := range strings.Split(d.output.String(), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 2 && fields[0] == "Logs":
			in = true
			files = append(files, fields[1])
		case in && len(fields) >= 1 && strings.HasPrefix(fields[0], "/"):
			files = append(files, fields[0])
		default:
			in = false
		}
	}
	return files
}

func (d *demo) url(host, path string) string {
	return fmt.Sprintf("https://%s:%d%s", host, d.port, path)
}

// pickAccount opens rawURL in c and signs in by choosing username on the
// dev tenant's account picker, as a person would; it returns the page the
// sign-in ends on.
func (c *client) pickAccount(rawURL, username string) *response {
	c.t.Helper()
	start := c.visit(rawURL)
	authorize, err := url.Parse(start.location())
	if start.StatusCode != http.StatusFound || err != nil {
		c.t.Fatalf("%s: got %s to %q, want a redirect to the tenant", rawURL, start.Status, start.location())
	}
	picker := c.visit(authorize.String())
	if picker.StatusCode != http.StatusOK || !strings.Contains(string(picker.body), `value="`+username+`"`) {
		c.t.Fatalf("the dev tenant's account picker (%s) does not offer %s: %.300s", picker.Status, username, picker.body)
	}
	form := authorize.Query()
	form.Set("login", username)
	post := c.request(http.MethodPost, authorize.Scheme+"://"+authorize.Host+authorize.Path, navigationHeader())
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body := form.Encode()
	post.Body = io.NopCloser(strings.NewReader(body))
	post.ContentLength = int64(len(body))
	chosen := c.do(post)
	if chosen.StatusCode != http.StatusFound {
		c.t.Fatalf("choosing %s: got %s, want a redirect to the callback: %.300s", username, chosen.Status, chosen.body)
	}
	final, hops := c.navigate(chosen.location())
	c.t.Logf("%s at %s: %v", username, rawURL, hopURLs(hops))
	return final
}

func TestMakeDemoLetsAliceIntoTheAdminRouterAndShowsBobA403(t *testing.T) {
	d := startDemo(t)
	for _, want := range []string{
		d.url(d.adminHost, "/"),
		"others get a 403 page that names them and offers to sign out",
		"gets the 403 page on " + d.adminHost,
	} {
		if !strings.Contains(d.output.String(), want) {
			t.Errorf("the demo's instructions do not say %q", want)
		}
	}
	const engineering = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d" // cmd/devtenant's group of alice
	// The admin router signs in with the dev tenant's certificate, no secret.
	dyn, err := os.ReadFile(filepath.Join(d.dir, "dynamic.yml"))
	if err != nil {
		t.Fatal(err)
	}
	admin := string(dyn)[strings.Index(string(dyn), "entra-admin:"):]
	if !strings.Contains(admin, "clientCertificateFile: \""+filepath.Join(d.dir, "entra-cert.pem")) || strings.Contains(admin, "clientSecret") {
		t.Errorf("the admin middleware does not sign in with the certificate alone:\n%s", admin)
	}

	t.Run("alice passes on the admin host", func(t *testing.T) {
		page := newClient(t, d.certs).pickAccount(d.url(d.adminHost, "/"), "alice@contoso.example")
		body := string(page.body)
		if page.StatusCode != http.StatusOK || !strings.Contains(body, "Hello, Alice Example") || !strings.Contains(body, engineering) {
			t.Fatalf("got %s, want the demo app greeting alice with her groups: %.600s", page.Status, body)
		}
	})
	t.Run("bob gets the 403 page that names him and offers to sign out", func(t *testing.T) {
		c := newClient(t, d.certs)
		page := c.pickAccount(d.url(d.adminHost, "/"), "bob@contoso.example")
		body := string(page.body)
		if page.StatusCode != http.StatusForbidden {
			t.Fatalf("got %s, want 403: %.600s", page.Status, body)
		}
		for _, want := range []string{"Bob Example (bob@contoso.example)", `<form method=post action="/portals/main/logout"`} {
			if !strings.Contains(body, want) {
				t.Errorf("the 403 page lacks %q: %.600s", want, body)
			}
		}
		out := c.do(logoutRequest(c, d.url(d.adminHost, "/portals/main/logout"), fmt.Sprintf("https://%s:%d", d.adminHost, d.port)))
		if out.StatusCode != http.StatusSeeOther {
			t.Errorf("the sign-out button got %s, want 303", out.Status)
		}
		// The plugin's own line about the refusal is in a log the
		// instructions name.
		files := d.logFiles()
		found := waitFor(5*time.Second, 100*time.Millisecond, func() bool {
			for _, f := range files {
				b, _ := os.ReadFile(f)
				if strings.Contains(string(b), "access refused to ") && strings.Contains(string(b), "bob@contoso.example") {
					return true
				}
			}
			return false
		})
		if len(files) == 0 || !found {
			t.Errorf("no log the demo names (%v) holds the plugin's line refusing bob", files)
		}
	})
	t.Run("the app receives an access token for the demo API, and the sign-out ends on the signed-out page", func(t *testing.T) {
		for _, want := range []string{"renew by themselves", "access token for api://entraauth-demo-api/.default"} {
			if !strings.Contains(d.output.String(), want) {
				t.Errorf("the demo's instructions do not say %q", want)
			}
		}
		c := newClient(t, d.certs)
		page := c.pickAccount(d.url(d.appHost, "/"), "alice@contoso.example")
		body := string(page.body)
		if page.StatusCode != http.StatusOK || !strings.Contains(body, "Access token for this app") || !strings.Contains(body, "Demo.Read") {
			t.Fatalf("got %s, want the app page showing the access token's claims: %.900s", page.Status, body)
		}
		out := c.do(logoutRequest(c, d.url(d.appHost, "/portals/main/logout"), fmt.Sprintf("https://%s:%d", d.appHost, d.port)))
		final, hops := c.navigate(out.location())
		if final.StatusCode != http.StatusOK || final.Request.URL.Path != "/portals/main/signed-out" || !strings.Contains(string(final.body), "Sign in again") {
			t.Fatalf("after sign-out: %s at %s (%v): %.300s", final.Status, final.Request.URL, hopURLs(hops), final.body)
		}
	})
	t.Run("bob passes on the app host, which has no rule", func(t *testing.T) {
		page := newClient(t, d.certs).pickAccount(d.url(d.appHost, "/"), "bob@contoso.example")
		if page.StatusCode != http.StatusOK || !strings.Contains(string(page.body), "Hello, Bob Example") {
			t.Fatalf("got %s, want the demo app greeting bob: %.600s", page.Status, page.body)
		}
	})
}

// Where make demo starts with SIGINT ignored (in the background of a
// script, some CI runners), bash cannot trap Ctrl-C, while Traefik and the
// Go programs still stop on it, with status 0: that is a stop too, not "a
// process exited (0)". (The check is in startDemo's cleanup.)
func TestMakeDemoStopsQuietlyOnCtrlCEvenWhereBashCannotTrapIt(t *testing.T) {
	d := startDemoWith(t, "bash", "-c", `trap '' INT; exec "$0"`, filepath.Join(repoRoot(t), "scripts", "demo.sh"))
	if !strings.Contains(d.output.String(), "Ctrl-C stops everything.") {
		t.Fatalf("the demo did not start:\n%s", d.output)
	}
}
