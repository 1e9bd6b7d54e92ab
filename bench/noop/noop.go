// Package noop is the benchmark's floor: the least a Yaegi middleware can
// do, set one request header and call the next handler. make bench loads
// it as a second local plugin in the same Traefik as entraauth, so that
// the plugin's cost is measured against what Yaegi costs any plugin, in
// the same run.
package noop

import (
	"context"
	"net/http"
)

// Config is the plugin's configuration: the value of the header it sets.
type Config struct {
	Value string `json:"value,omitempty"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{Value: "1"}
}

// Noop sets X-Noop and calls the next handler.
type Noop struct {
	next  http.Handler
	value string
}

// New builds the middleware.
func New(ctx context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	return &Noop{next: next, value: config.Value}, nil
}

func (n *Noop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// As traefik/plugindemo does: the floor is the simplest plugin, not
	// the most contrived one.
	r.Header.Set("X-Noop", n.value)
	n.next.ServeHTTP(w, r)
}
