package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Instruction counts: with -instructions, Traefik runs under valgrind's
// callgrind, instrumented only while each configuration serves a batch of
// requests, and the bench prints the instructions Traefik executed per
// request, and the allocations: unlike requests/s on a shared machine,
// neither depends on what else runs. The garbage collector is off
// (GOGC=off): its work depends on when it happens to run, and is priced
// by the allocations, counted apart.

// callgrind wraps Traefik's command line: no instrumentation until
// callgrind_control switches it on, Go's asynchronous preemption off
// (callgrind mishandles its signals).
func callgrind(dir string) (wrap, env []string, err error) {
	for _, tool := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, nil, fmt.Errorf("-instructions needs %s (apt-get install valgrind): %v", tool, err)
		}
	}
	wrap = []string{"valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + filepath.Join(dir, "callgrind.out.%p")}
	return wrap, []string{"GODEBUG=asyncpreemptoff=1", "GOGC=off"}, nil
}

// callgrindControl runs callgrind_control with args for pid and returns
// its output.
func callgrindControl(ctx context.Context, pid int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "callgrind_control", append(args, strconv.Itoa(pid))...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("callgrind_control %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// instructionsExecuted dumps the counters of the callgrind run pid, which
// zeroes them, and returns the instructions of the dump: the k-th dump of
// the run, in dir.
func instructionsExecuted(ctx context.Context, dir string, pid, k int) (int64, error) {
	if _, err := callgrindControl(ctx, pid, "--dump"); err != nil {
		return 0, err
	}
	file := filepath.Join(dir, fmt.Sprintf("callgrind.out.%d.%d", pid, k))
	// callgrind writes the dump when it next polls its command file.
	for deadline := time.Now().Add(time.Minute); ; {
		b, err := os.ReadFile(file)
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "totals: "); ok {
					return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				}
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no totals in %s: %v", file, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// countInstructions serves n requests per configuration (after a warm-up
// of n/4) through tr, under callgrind, and returns the instructions per
// request of each, checking that every request reached the upstream as
// promised.
// With h2, the requests are streams of one HTTP/2 connection; dumps
// counts the dumps callgrind made before.
func countInstructions(ctx context.Context, o *options, tr *traefik, up *upstream, configs []*config, n int, h2 bool, dumps int) (map[*config]cost, error) {
	pid := tr.cmd.Process.Pid
	per := map[*config]cost{}
	newClient := func() *http.Client {
		if h2 {
			return h2Client(tr.site.cert)
		}
		return client(tr.site.cert, 4)
	}
	for _, c := range configs {
		if err := drivePromisedWith(ctx, newClient(), up, c.ep, c.lines, nil, n/4+1, 4, c.title+" (warm-up)"); err != nil {
			return nil, err
		}
		before, err := tr.memstats()
		if err != nil {
			return nil, err
		}
		if _, err := callgrindControl(ctx, pid, "--instr=on"); err != nil {
			return nil, err
		}
		if _, err := callgrindControl(ctx, pid, "--zero"); err != nil {
			return nil, err
		}
		if err := drivePromisedWith(ctx, newClient(), up, c.ep, c.lines, nil, n, 4, c.title); err != nil {
			return nil, err
		}
		ir, err := instructionsExecuted(ctx, tr.site.callgrindDir, pid, dumps+len(per)+1)
		if err != nil {
			return nil, err
		}
		if _, err := callgrindControl(ctx, pid, "--instr=off"); err != nil {
			return nil, err
		}
		after, err := tr.memstats()
		if err != nil {
			return nil, err
		}
		k := cost{
			instructions: float64(ir) / float64(n),
			allocs:       float64(after.Mallocs-before.Mallocs) / float64(n),
			bytes:        float64(after.TotalAlloc-before.TotalAlloc) / float64(n),
		}
		per[c] = k
		progress("instructions: %-42s %9.0f per request, %.0f allocations (%.0f bytes); callgrind.out.%d.%d", c.title, k.instructions, k.allocs, k.bytes, pid, dumps+len(per))
	}
	return per, nil
}

// cost is what one request costs Traefik: instructions executed (the
// garbage collector off), allocations and bytes allocated.
type cost struct {
	instructions, allocs, bytes float64
}

// printInstructions prints per's counts, and each configuration's
// over ref1's and ref2's (names "1" and "2": Traefik alone and the
// do-nothing plugin, or H1 and H2).
func printInstructions(w io.Writer, set string, configs []*config, per map[*config]cost, ref1, ref2 *config, n int, minimal bool) {
	request := "a browser's navigation"
	if minimal {
		request = "-minimal requests"
	}
	fmt.Fprintf(w, "\nwhat Traefik spends per request, %s (valgrind --tool=callgrind, GOGC=off, %d requests each from 4 streams or connections, HTTPS, %s):\n", set, n, request)
	fmt.Fprintf(w, "  %-50s %12s %12s %12s %8s %8s %8s\n", "configuration", "instructions", "over "+ref1.number(), "over "+ref2.number(), "share", "allocs", "bytes")
	r1, r2 := per[ref1], per[ref2]
	for _, c := range configs {
		k := per[c]
		fmt.Fprintf(w, "  %-50s %12.0f %+12.0f %+12.0f %8.2f %8.0f %8.0f\n", c.title, k.instructions, k.instructions-r1.instructions, k.instructions-r2.instructions, floor2(r2.instructions/k.instructions), k.allocs, k.bytes)
	}
	fmt.Fprintf(w, "  (share: the instructions of %s over the configuration's)\n", ref2.number())
}
