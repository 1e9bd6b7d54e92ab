package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A minimal Chrome DevTools Protocol client: one websocket to the browser,
// one page attached with flat sessions, synchronous calls. Events are read
// while a call waits for its answer and dropped, unless a test listens
// (onEvent); the tests poll the page state with Runtime.evaluate instead,
// which is simpler and just as bounded.

const cdpCallTimeout = 30 * time.Second

// chromiumBinary is CHROMIUM_BIN or /usr/bin/chromium (what `make e2e`
// installs from Debian).
func chromiumBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CHROMIUM_BIN")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no Chromium at %s (run `make chromium`, or set CHROMIUM_BIN): %v", bin, err)
	}
	return bin
}

// browserPage is a headless Chromium with one page.
type browserPage struct {
	t         *testing.T
	ws        *wsConn
	nextID    int
	sessionID string
	// onEvent, when set, sees every event the browser sends while a call
	// waits for its answer: after Network.enable, each request the page
	// sends, with the headers that went on the wire.
	onEvent func(method string, params json.RawMessage)
}

// cdpMessage is a DevTools protocol frame: a call, its answer, or an event.
type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    interface{}     `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// startChromium runs headless Chromium that sends *.example.test to
// 127.0.0.1 and accepts the test certificate, and opens a blank page.
func startChromium(t *testing.T) *browserPage {
	t.Helper()
	bin := chromiumBinary(t)
	profile := t.TempDir()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--window-size=1100,800",
		"--remote-debugging-port=0", "--user-data-dir="+profile,
		"--host-resolver-rules=MAP *.example.test 127.0.0.1",
		"--ignore-certificate-errors",
		"about:blank")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group, so that stopping it also stops its renderer
	// and utility processes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("--- chromium log ---\n%s", tail(string(b), 40))
		}
	})

	// Chromium writes the port it picked and the browser target's path to
	// DevToolsActivePort once it listens.
	var port, path string
	ok := waitFor(30*time.Second, 100*time.Millisecond, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err != nil || len(lines) < 2 {
			return false
		}
		port, path = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
		return true
	})
	if !ok || port == "" {
		t.Fatal("chromium did not start its DevTools server within 30s")
	}
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("bad DevToolsActivePort port %q", port)
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// No Origin header: Chromium refuses DevTools websockets from web
	// origins unless --remote-allow-origins allows them.
	ws, _, err := wsHandshake(conn, addr, path, nil)
	if err != nil {
		conn.Close()
		t.Fatalf("devtools websocket: %v", err)
	}
	t.Cleanup(func() { ws.Close() })

	p := &browserPage{t: t, ws: ws}
	var target struct {
		TargetID string `json:"targetId"`
	}
	p.call("Target.createTarget", map[string]interface{}{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	p.call("Target.attachToTarget", map[string]interface{}{"targetId": target.TargetID, "flatten": true}, &attached)
	p.sessionID = attached.SessionID
	p.call("Page.enable", nil, nil)
	p.call("Runtime.enable", nil, nil)
	return p
}

// call sends a method (to the page once attached) and decodes its result.
func (p *browserPage) call(method string, params interface{}, result interface{}) {
	p.t.Helper()
	if err := p.tryCall(method, params, result); err != nil {
		p.t.Fatal(err)
	}
}

func (p *browserPage) tryCall(method string, params interface{}, result interface{}) error {
	p.nextID++
	id := p.nextID
	msg, err := json.Marshal(cdpMessage{ID: id, Method: method, Params: params, SessionID: p.sessionID})
	if err != nil {
		return err
	}
	if err := p.ws.WriteMessage(wsOpText, msg); err != nil {
		return fmt.Errorf("devtools %s: %w", method, err)
	}
	deadline := time.Now().Add(cdpCallTimeout)
	for {
		_, data, err := p.ws.ReadMessage(deadline)
		if err != nil {
			return fmt.Errorf("devtools %s: %w", method, err)
		}
		var m cdpMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("devtools %s: %w", method, err)
		}
		if m.ID != id {
			// An event, or the answer to an abandoned call.
			if m.ID == 0 && m.Method != "" && p.onEvent != nil {
				var ev struct {
					Params json.RawMessage `json:"params"`
				}
				if json.Unmarshal(data, &ev) == nil {
					p.onEvent(m.Method, ev.Params)
				}
			}
			continue
		}
		if m.Error != nil {
			return fmt.Errorf("devtools %s: %d %s", method, m.Error.Code, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	}
}

// navigate opens a URL in the page.
func (p *browserPage) navigate(rawURL string) {
	p.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	p.call("Page.navigate", map[string]interface{}{"url": rawURL}, &res)
	if res.ErrorText != "" {
		p.t.Fatalf("navigate %s: %s", rawURL, res.ErrorText)
	}
}

// eval runs a JavaScript expression and stores its JSON value in out.
func (p *browserPage) eval(expr string, out interface{}) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := p.tryCall("Runtime.evaluate", map[string]interface{}{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res); err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return errors.New("javascript: " + res.ExceptionDetails.Text)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// pageState is what the tests look at in the page.
type pageState struct {
	URL   string `json:"url"`
	Ready string `json:"ready"`
	Text  string `json:"text"`
	// Marked is true while the document that markDocument marked is
	// still the one shown: a new document (after a reload) is not marked.
	Marked bool `json:"marked"`
}

// markDocument marks the current document, so that waitUntil can tell it
// from the next one.
func (p *browserPage) markDocument() {
	p.t.Helper()
	if err := p.eval(`window.__e2eMarked = true`, nil); err != nil {
		p.t.Fatal(err)
	}
}

func (p *browserPage) state() pageState {
	var s pageState
	// Errors are expected while a navigation replaces the document.
	_ = p.eval(`({url: location.href, ready: document.readyState, text: document.body ? document.body.innerText : "", marked: window.__e2eMarked === true})`, &s)
	return s
}

// waitUntil polls the page until cond holds, within the timeout.
func (p *browserPage) waitUntil(what string, timeout time.Duration, cond func(pageState) bool) pageState {
	p.t.Helper()
	var s pageState
	ok := waitFor(timeout, 200*time.Millisecond, func() bool {
		s = p.state()
		return s.Ready == "complete" && cond(s)
	})
	if !ok {
		p.t.Fatalf("waiting for %s: page at %s (%s): %.500s", what, s.URL, s.Ready, s.Text)
	}
	return s
}

// screenshot saves a PNG of the page.
func (p *browserPage) screenshot(file string) {
	p.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	p.call("Page.captureScreenshot", map[string]interface{}{"format": "png"}, &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", file)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
