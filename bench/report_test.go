package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A smoke run's figures are shown, not judged: one short round on a busy
// machine says nothing about the targets, and a passing make test must not
// print NOT MET. make bench judges them.
func TestTheReportJudgesTargetsOnlyOutsideASmokeRun(t *testing.T) {
	round := func(rps float64) []*wrkResult {
		return []*wrkResult{{requests: int64(rps), seconds: 1, rps: rps, p50: time.Millisecond, p99: 2 * time.Millisecond}}
	}
	alone := &config{title: "1. Traefik alone", rounds: round(10000)}
	noop := &config{title: "2. Traefik + a do-nothing Yaegi plugin", rounds: round(9000)}
	plugin := &config{title: "3. Traefik + entraauth", rounds: round(6000), paced99: 3 * time.Millisecond}
	o2p := &config{title: "4. Traefik + forwardAuth to oauth2-proxy", rounds: round(3000)}
	tests := []struct {
		name      string
		smoke     bool
		want      []string
		forbidden []string
	}{
		{"make bench", false, []string{"target >= 0.90", "NOT MET"}, []string{"smoke run"}},
		{"make bench-smoke", true, []string{"smoke run: one short round, figures not judged against the targets (make bench does that)", "throughput plugin / do-nothing plugin (3/2)", "0.66"}, []string{"NOT MET", "target >="}},
	}
	for _, tt := range tests {
		tt := tt
		t.Run(tt.name, func(t *testing.T) {
			r := &report{
				machine: "test", opts: &options{smoke: tt.smoke, rate: 500},
				configs: []*config{alone, noop, plugin, o2p},
				alone:   alone, noop: noop, plugin: plugin, oauth2Proxy: o2p,
			}
			var b bytes.Buffer
			r.print(&b)
			for _, want := range tt.want {
				if !strings.Contains(b.String(), want) {
					t.Errorf("the report lacks %q:\n%s", want, b.String())
				}
			}
			for _, no := range tt.forbidden {
				if strings.Contains(b.String(), no) {
					t.Errorf("the report says %q:\n%s", no, b.String())
				}
			}
		})
	}
}
