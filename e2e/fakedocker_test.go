package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDocker serves the part of the Docker Engine API (v1.51, Docker 28)
// that Traefik's Docker provider uses, on a unix socket: the ping of API
// version negotiation (HEAD, then GET, on the unversioned /_ping),
// /version, the container list, container inspection and the event
// stream. Containers come and go with run and remove, which send the start
// and die events Traefik watches for. Answers have the shapes the Docker
// client library decodes; everything else is Docker's 404.
type fakeDocker struct {
	t        *testing.T
	endpoint string // unix:///.../docker.sock, for providers.docker.endpoint
	srv      *http.Server

	mu         sync.Mutex
	containers []*fakeContainer
	watchers   map[chan fakeEvent]bool
	calls      []string // "GET /containers/json", versions stripped
}

// fakeContainer is a running container: a name, labels and an address on
// its one network.
type fakeContainer struct {
	ID     string
	Name   string
	Labels map[string]string
	IP     string
}

type fakeEvent struct {
	action string
	c      *fakeContainer
}

const fakeDockerAPIVersion = "1.51"

// versioned matches the API version prefix of a path: /v1.51/containers/json.
var versioned = regexp.MustCompile(`^/v[0-9]+\.[0-9]+(/.*)$`)

func newFakeDocker(t *testing.T) *fakeDocker {
	t.Helper()
	// Not t.TempDir: a unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "e2e-docker-")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	d := &fakeDocker{t: t, endpoint: "unix://" + socket, watchers: map[chan fakeEvent]bool{}}
	d.srv = &http.Server{Handler: http.HandlerFunc(d.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = d.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		// Event streams stay open until their client goes: close them.
		_ = d.srv.Close()
		_ = d.srv.Shutdown(ctx)
		os.RemoveAll(dir)
	})
	return d
}

// run starts a container and tells the event watchers.
func (d *fakeDocker) run(name, ip string, labels map[string]string) *fakeContainer {
	sum := sha256.Sum256([]byte(name + time.Now().String()))
	c := &fakeContainer{ID: hex.EncodeToString(sum[:]), Name: name, Labels: labels, IP: ip}
	d.mu.Lock()
	d.containers = append(d.containers, c)
	d.mu.Unlock()
	d.notify(fakeEvent{"start", c})
	return c
}

// remove stops and removes a container: Traefik sees it die.
func (d *fakeDocker) remove(c *fakeContainer) {
	d.mu.Lock()
	for i, x := range d.containers {
		if x == c {
			d.containers = append(d.containers[:i], d.containers[i+1:]...)
			break
		}
	}
	d.mu.Unlock()
	d.notify(fakeEvent{"die", c})
}

func (d *fakeDocker) notify(e fakeEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.watchers {
		select {
		case ch <- e:
		default: // a watcher that does not read loses events, like a slow Docker client
		}
	}
}

// called reports how often the API saw a call, e.g. "HEAD /_ping".
func (d *fakeDocker) called(call string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (d *fakeDocker) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if m := versioned.FindStringSubmatch(path); m != nil {
		path = m[1]
	}
	d.mu.Lock()
	d.calls = append(d.calls, r.Method+" "+path)
	d.mu.Unlock()

	w.Header().Set("Api-Version", fakeDockerAPIVersion)
	w.Header().Set("Docker-Experimental", "false")
	w.Header().Set("Ostype", "linux")
	w.Header().Set("Server", "Docker/28.5.2 (linux)")
	switch {
	case path == "/_ping" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		w.Header().Set("Builder-Version", "2")
		w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
		w.Header().Set("Pragma", "no-cache")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
			return
		}
		_, _ = w.Write([]byte("OK"))
	case path == "/version" && r.Method == http.MethodGet:
		writeDockerJSON(w, http.StatusOK, map[string]interface{}{
			"Platform":      map[string]string{"Name": "Docker Engine - Community"},
			"Version":       "28.5.2",
			"ApiVersion":    fakeDockerAPIVersion,
			"MinAPIVersion": "1.24",
			"GitCommit":     "89c5e8f",
			"GoVersion":     "go1.24.9",
			"Os":            "linux",
			"Arch":          "amd64",
			"KernelVersion": "6.1.0",
			"BuildTime":     "2025-10-08T12:17:42.000000000+00:00",
		})
	case path == "/containers/json" && r.Method == http.MethodGet:
		d.mu.Lock()
		list := make([]interface{}, 0, len(d.containers))
		for _, c := range d.containers {
			list = append(list, c.summary())
		}
		d.mu.Unlock()
		writeDockerJSON(w, http.StatusOK, list)
	case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json") && r.Method == http.MethodGet:
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json")
		d.mu.Lock()
		var found *fakeContainer
		for _, c := range d.containers {
			// Docker accepts a name or any unique prefix of the ID.
			if strings.HasPrefix(c.ID, id) || c.Name == id {
				found = c
			}
		}
		d.mu.Unlock()
		if found == nil {
			writeDockerJSON(w, http.StatusNotFound, map[string]string{"message": "No such container: " + id})
			return
		}
		writeDockerJSON(w, http.StatusOK, found.inspect())
	case path == "/events" && r.Method == http.MethodGet:
		d.streamEvents(w, r)
	default:
		writeDockerJSON(w, http.StatusNotFound, map[string]string{"message": "page not found"})
	}
}

// streamEvents answers /events as Docker does: 200 at once, then one JSON
// object per event, until the client goes.
func (d *fakeDocker) streamEvents(w http.ResponseWriter, r *http.Request) {
	ch := make(chan fakeEvent, 16)
	d.mu.Lock()
	d.watchers[ch] = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.watchers, ch)
		d.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case e := <-ch:
			now := time.Now()
			_ = enc.Encode(map[string]interface{}{
				"status": e.action, "id": e.c.ID, "from": "traefik/whoami",
				"Type": "container", "Action": e.action,
				"Actor": map[string]interface{}{
					"ID":         e.c.ID,
					"Attributes": withName(e.c.Labels, e.c.Name),
				},
				"scope": "local", "time": now.Unix(), "timeNano": now.UnixNano(),
			})
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// withName is an event's Actor attributes: the labels, the image and the
// container's name.
func withName(labels map[string]string, name string) map[string]string {
	a := map[string]string{"image": "traefik/whoami", "name": name}
	for k, v := range labels {
		a[k] = v
	}
	return a
}

func (c *fakeContainer) networks() map[string]interface{} {
	return map[string]interface{}{
		"bridge": map[string]interface{}{
			"NetworkID":   "7b1f2d3c4e5a",
			"EndpointID":  "3e4f5a6b7c8d",
			"Gateway":     "",
			"IPAddress":   c.IP,
			"IPPrefixLen": 8,
			"MacAddress":  "02:42:ac:11:00:02",
		},
	}
}

// summary is the container in the /containers/json list.
func (c *fakeContainer) summary() map[string]interface{} {
	return map[string]interface{}{
		"Id":              c.ID,
		"Names":           []string{"/" + c.Name},
		"Image":           "traefik/whoami",
		"ImageID":         "sha256:0f6d2f8c1e5b",
		"Command":         "/whoami",
		"Created":         time.Now().Add(-time.Minute).Unix(),
		"Ports":           []interface{}{map[string]interface{}{"PrivatePort": 80, "Type": "tcp"}},
		"Labels":          c.Labels,
		"State":           "running",
		"Status":          "Up About a minute",
		"HostConfig":      map[string]string{"NetworkMode": "bridge"},
		"NetworkSettings": map[string]interface{}{"Networks": c.networks()},
		"Mounts":          []interface{}{},
	}
}

// inspect is the container as /containers/{id}/json shows it.
func (c *fakeContainer) inspect() map[string]interface{} {
	started := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	return map[string]interface{}{
		"Id":      c.ID,
		"Created": started,
		"Path":    "/whoami",
		"Args":    []string{},
		"State": map[string]interface{}{
			"Status": "running", "Running": true, "Paused": false, "Restarting": false,
			"OOMKilled": false, "Dead": false, "Pid": 4242, "ExitCode": 0, "Error": "",
			"StartedAt": started, "FinishedAt": "0001-01-01T00:00:00Z",
		},
		"Image":        "sha256:0f6d2f8c1e5b",
		"Name":         "/" + c.Name,
		"RestartCount": 0,
		"Driver":       "overlay2",
		"Platform":     "linux",
		"HostConfig":   map[string]interface{}{"NetworkMode": "bridge"},
		"Config": map[string]interface{}{
			"Hostname":     c.ID[:12],
			"Image":        "traefik/whoami",
			"Labels":       c.Labels,
			"ExposedPorts": map[string]interface{}{"80/tcp": map[string]interface{}{}},
		},
		"NetworkSettings": map[string]interface{}{
			"Ports":    map[string]interface{}{"80/tcp": nil},
			"Networks": c.networks(),
		},
	}
}

func writeDockerJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
