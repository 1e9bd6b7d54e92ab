#!/usr/bin/env bash
# Runs every Go fuzz target of the module (func Fuzz... in any package), one
# after another, for FUZZTIME each (default 60s), and prints what each did.
# A failing input is saved by go test under <package>/testdata/fuzz/<target>/,
# where plain `go test` (and so `make test`) replays it from then on: commit
# it with the fix, and name it in a regression test.
#
#   FUZZTIME=5m ./scripts/fuzz.sh           every target
#   FUZZ_ONLY=Validate ./scripts/fuzz.sh    targets whose name matches a regexp
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZ_ONLY=${FUZZ_ONLY:-.}
# Minimizing each new input costs exploring time; a failing input is
# minimized within this bound too.
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-10s}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
summary=()
failed=()
for pkg in $($GO list ./...); do
	targets=$($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' | grep -E -- "$FUZZ_ONLY" || true)
	for target in $targets; do
		echo "=== fuzz $pkg $target for $FUZZTIME"
		if $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" "$pkg" >"$out" 2>&1; then
			status=ok
		else
			status=FAIL
			failed+=("$pkg $target")
			# The whole story of a failure: the input and the property broken.
			grep -v '^fuzz: elapsed' "$out" | grep -v '^entraauth\[' || true
		fi
		# The last progress line: "fuzz: elapsed: 1m0s, execs: 123 (..), new interesting: 4 (total: 20)".
		last=$(grep '^fuzz: elapsed' "$out" | tail -n 1 | sed -e 's/^fuzz: //' -e 's/ ([0-9]*\/sec)//' || true)
		echo "    $status: ${last:-no progress reported}"
		summary+=("$(printf '%-4s %-55s %-22s %s' "$status" "$pkg" "$target" "${last:-}")")
	done
done

echo
echo "fuzz summary ($FUZZTIME per target):"
printf '  %s\n' "${summary[@]}"
if [ ${#summary[@]} -eq 0 ]; then
	echo "fuzz: no target matched $FUZZ_ONLY" >&2
	exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAIL: fuzz: ${failed[*]}" >&2
	exit 1
fi
