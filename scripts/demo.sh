#!/usr/bin/env bash
# `make demo`: the plugin in a local Traefik, in front of a small app that
# shows the identity headers it receives.
#
#   https://app.localhost:8443    any signed-in user
#   https://admin.localhost:8443  only members of one group (allowedGroups):
#                                 alice passes, bob gets the 403 page
#   (HTTPS with a generated self-signed certificate; browsers resolve
#   *.localhost to loopback)
#
# Without configuration it signs in against the dev tenant (cmd/devtenant, a
# fake Entra ID with users alice and bob). With ENTRA_TENANT_ID,
# ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET set it uses that real tenant; its
# app registration needs the redirect URIs printed below, and the admin
# router needs ENTRA_ADMIN_GROUP (a group object ID).
#
# Everything lives in .cache/demo (DEMO_DIR); Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DEMO=${DEMO_DIR:-$ROOT/.cache/demo}
TRAEFIK_BIN=${TRAEFIK_BIN:-$ROOT/.cache/traefik-v3.6.12/traefik}
HOST=${DEMO_HOST:-app.localhost}
ADMIN_HOST=${DEMO_ADMIN_HOST:-admin.localhost}
PORT=${DEMO_PORT:-8443}
API_PORT=${DEMO_API_PORT:-8090}
TENANT_PORT=${DEMO_TENANT_PORT:-8091}
APP_PORT=${DEMO_APP_PORT:-8092}
MODULE=github.com/tfa-plugin/entraauth

die() { echo "demo: $*" >&2; exit 1; }

[ -x "$TRAEFIK_BIN" ] || die "no Traefik at $TRAEFIK_BIN: run \`make tools\` first"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_get PORT PATH: a plain HTTP/1.0 GET with bash alone (no curl needed).
http_get() {
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
	cat <&3
	exec 3<&-
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local seconds=$1 what=$2
	shift 2
	for _ in $(seq $((seconds * 5))); do
		if "$@"; then return 0; fi
		sleep 0.2
	done
	die "$what did not come up within ${seconds}s (logs in $DEMO)"
}

for p in "$PORT" "$API_PORT" "$APP_PORT"; do
	port_open "$p" && die "port $p is in use (set DEMO_PORT, DEMO_API_PORT or DEMO_APP_PORT)"
done

mkdir -p "$DEMO/bin" "$DEMO/plugins-local/src/$(dirname "$MODULE")"
# Traefik loads local plugins from ./plugins-local/src/<module> relative to
# its working directory.
ln -sfn "$ROOT" "$DEMO/plugins-local/src/$MODULE"

echo "demo: building cmd/devtenant and cmd/demoapp"
go build -buildvcs=false -o "$DEMO/bin/" ./cmd/devtenant ./cmd/demoapp

echo "demo: generating a self-signed certificate for $HOST and $ADMIN_HOST"
(cd "$DEMO" && go run "$(go env GOROOT)/src/crypto/tls/generate_cert.go" \
	--host "$HOST,$ADMIN_HOST,localhost,127.0.0.1" --ecdsa-curve P256 --duration 720h >/dev/null 2>&1) ||
	die "cannot generate a certificate"

# The session secret survives restarts, so do sessions.
if [ ! -s "$DEMO/session-secret" ]; then
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DEMO/session-secret")
fi

# redirect_uris HOST: the redirect URIs an app registration needs for HOST,
# one a line: the callback (sign-in) and the signed-out page (sign-out's
# post_logout_redirect_uri, which Entra ID accepts only when registered).
redirect_uris() {
	echo "https://$1:$PORT/portals/main/oauth2/callback"
	echo "https://$1:$PORT/portals/main/signed-out"
}

# The processes started, and for each (by process ID) its name and log.
pids=()
declare -A proc_name proc_log
started() { # started NAME LOG: the process just put in the background
	pids+=($!)
	proc_name[$!]=$1
	proc_log[$!]=$2
}
cleanup() {
	trap - EXIT INT TERM
	if [ ${#pids[@]} -gt 0 ]; then
		echo
		echo "demo: stopping"
		kill "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

authority_line=""
admin_credential=""
lifetime=${DEMO_LIFETIME:-1h}
upstream_scope=${ENTRA_UPSTREAM_SCOPE:-}
if [ -n "${ENTRA_TENANT_ID:-}${ENTRA_CLIENT_ID:-}${ENTRA_CLIENT_SECRET:-}" ]; then
	[ -n "${ENTRA_TENANT_ID:-}" ] && [ -n "${ENTRA_CLIENT_ID:-}" ] && [ -n "${ENTRA_CLIENT_SECRET:-}" ] ||
		die "set all of ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET, or none"
	mode="your tenant $ENTRA_TENANT_ID"
	tenant_id=$ENTRA_TENANT_ID
	client_id=$ENTRA_CLIENT_ID
	admin_group=${ENTRA_ADMIN_GROUP:-}
	(umask 077 && printf '%s' "$ENTRA_CLIENT_SECRET" >"$DEMO/client-secret")
else
	port_open "$TENANT_PORT" && die "port $TENANT_PORT is in use (set DEMO_TENANT_PORT)"
	mode="the dev tenant"
	tenant_id=9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a
	client_id=3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a9f
	client_secret=dev-tenant-client-secret-not-for-production
	# cmd/devtenant's engineering group: alice is in it, bob is not.
	admin_group=0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d
	(umask 077 && printf '%s' "$client_secret" >"$DEMO/client-secret")
	# Registered like in a real app registration: the callbacks and the
	# signed-out pages of both hosts.
	uris=()
	for uri in $(redirect_uris "$HOST") $(redirect_uris "$ADMIN_HOST"); do
		uris+=(-redirect-uri "$uri")
	done
	# The admin router signs in with a certificate instead of the secret
	# (clientCertificateFile): the dev tenant makes one and trusts it.
	rm -f "$DEMO/entra-cert.pem"
	"$DEMO/bin/devtenant" -addr "127.0.0.1:$TENANT_PORT" -tenant-id "$tenant_id" \
		-client-id "$client_id" -client-secret "$client_secret" -certificate-file "$DEMO/entra-cert.pem" \
		"${uris[@]}" >"$DEMO/devtenant.log" 2>&1 &
	started "the dev tenant" "$DEMO/devtenant.log"
	wait_for 15 "the dev tenant" port_open "$TENANT_PORT"
	wait_for 15 "the dev tenant's certificate" test -s "$DEMO/entra-cert.pem"
	admin_credential="clientCertificateFile: \"$DEMO/entra-cert.pem\""
	authority_line="  authorityHost: \"http://127.0.0.1:$TENANT_PORT\""
	# Short sessions, so that renewal shows within minutes, and an access
	# token of the user for the dev tenant's demo API, for the app.
	lifetime=${DEMO_LIFETIME:-2m}
	upstream_scope=api://entraauth-demo-api/.default
fi

"$DEMO/bin/demoapp" -addr "127.0.0.1:$APP_PORT" >"$DEMO/demoapp.log" 2>&1 &
started "the demo app" "$DEMO/demoapp.log"

cat >"$DEMO/traefik.yml" <<EOF
global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  websecure:
    address: "127.0.0.1:$PORT"
  traefik:
    address: "127.0.0.1:$API_PORT"
api:
  # The dashboard's web UI is not part of a plain \`go build\` of Traefik.
  dashboard: false
  insecure: true
providers:
  file:
    filename: "$DEMO/dynamic.yml"
    watch: true
experimental:
  localPlugins:
    entraauth:
      moduleName: $MODULE
log:
  level: INFO
  filePath: "$DEMO/traefik.log"
accessLog:
  filePath: "$DEMO/access.log"
EOF

# plugin_config INDENT [CREDENTIAL]: the plugin block both middlewares
# share; CREDENTIAL replaces the client secret file.
plugin_config() {
	sed "s/^/$1/" <<EOF
microsoftEntraID:
  tenantID: "$tenant_id"
  clientID: "$client_id"
  ${2:-clientSecretFile: \"$DEMO/client-secret\"}
$authority_line
session:
  secretFile: "$DEMO/session-secret"
  lifetime: "$lifetime"
$upstream_lines
EOF
}

upstream_lines=""
if [ -n "$upstream_scope" ]; then
	upstream_lines="upstreamAccessToken:
  scope: \"$upstream_scope\""
fi

admin_router="" admin_middleware=""
if [ -n "$admin_group" ]; then
	admin_router="    admin:
      rule: Host(\`$ADMIN_HOST\`)
      entryPoints: [websecure]
      middlewares: [entra-admin]
      service: demoapp
      tls: {}"
	# The same sign-in, plus a rule: members of one group only.
	admin_middleware="    entra-admin:
      plugin:
        entraauth:
$(plugin_config '          ' "$admin_credential")
          allowedGroups: [\"$admin_group\"]"
fi

cat >"$DEMO/dynamic.yml" <<EOF
http:
  routers:
    demo:
      rule: Host(\`$HOST\`)
      entryPoints: [websecure]
      middlewares: [entra]
      service: demoapp
      tls: {}
$admin_router
  middlewares:
    entra:
      plugin:
        entraauth:
$(plugin_config '          ')
$admin_middleware
  services:
    demoapp:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:$APP_PORT"
tls:
  stores:
    default:
      defaultCertificate:
        certFile: "$DEMO/cert.pem"
        keyFile: "$DEMO/key.pem"
EOF

: >"$DEMO/traefik.log"
# Traefik writes its own log to traefik.log (log.filePath); what reaches its
# stdout and stderr is the plugin's own log lines (sign-ins refused, access
# denied, Entra ID's errors) and anything Traefik prints before its log is
# set up: plugin.log.
(cd "$DEMO" && exec "$TRAEFIK_BIN" --configFile="$DEMO/traefik.yml") >"$DEMO/plugin.log" 2>&1 &
started Traefik "$DEMO/traefik.log and $DEMO/plugin.log"

router_enabled() {
	if grep -q "Plugins are disabled" "$DEMO/traefik.log" "$DEMO/plugin.log" 2>/dev/null; then
		grep -h "Plugins are disabled" "$DEMO/traefik.log" "$DEMO/plugin.log" >&2
		die "Traefik could not load the plugin"
	fi
	if grep -q "Error while building configuration\|routerName=demo@file\|routerName=admin@file" "$DEMO/traefik.log" 2>/dev/null; then
		grep -h "Error while building configuration\|routerName=demo@file\|routerName=admin@file" "$DEMO/traefik.log" >&2
		die "Traefik refused the demo configuration"
	fi
	http_get "$API_PORT" /api/http/routers/demo@file 2>/dev/null | grep -q '"status":"enabled"' || return 1
	[ -z "$admin_group" ] || http_get "$API_PORT" /api/http/routers/admin@file 2>/dev/null | grep -q '"status":"enabled"'
}
wait_for 90 "Traefik with the plugin" router_enabled

cat <<EOF

  entraauth demo: signing in with $mode

  Open    https://$HOST:$PORT/     any signed-in user passes
EOF
if [ -n "$admin_group" ]; then
	cat <<EOF
          https://$ADMIN_HOST:$PORT/   only members of group $admin_group (allowedGroups);
                                        others get a 403 page that names them and offers to sign out
EOF
fi
cat <<EOF
          (self-signed certificate: accept the browser's warning once per host)
EOF
if [ -z "$authority_line" ]; then
	echo '  Register these redirect URIs (platform "Web") in the app registration:'
	redirect_uris "$HOST" | sed 's/^/          /'
	if [ -n "$admin_group" ]; then
		redirect_uris "$ADMIN_HOST" | sed 's/^/          /'
	else
		echo "  (set ENTRA_ADMIN_GROUP to a group object ID to serve https://$ADMIN_HOST:$PORT/ too)"
	fi
else
	cat <<EOF
  Users   alice@contoso.example  Alice Example, in groups engineering and operations, role Admin:
                                 passes on both hosts
          bob@contoso.example    Bob Example, no groups: passes on $HOST,
                                 gets the 403 page on $ADMIN_HOST
          (the dev tenant's sign-in page lists them; no password; each host signs in on its own)
EOF
fi
cat <<EOF
  Renewal sessions last $lifetime, then renew by themselves on the next request (no sign-in page,
          even for the page's own fetch calls): the profile page shows when.
EOF
if [ -n "$upstream_scope" ]; then
	cat <<EOF
  Token   the app receives an access token for $upstream_scope in Authorization
          (kept in Traefik's memory, never in the cookie); the app's page shows its claims.
EOF
fi
cat <<EOF
  Pages   https://$HOST:$PORT/portals/main/profile   https://$HOST:$PORT/portals/main/logout
  Traefik http://127.0.0.1:$API_PORT/api/http/routers  (API)
  Logs    $DEMO/traefik.log   Traefik
          $DEMO/plugin.log    the plugin's own lines (refusals, Entra ID's errors)
          $DEMO/access.log    every request

  Ctrl-C stops everything.

EOF

# Stop everything as soon as one of the processes ends. Ctrl-C reaches
# them too, and they end with status 0 (or 128 + the signal): that is a
# stop, said by cleanup ("demo: stopping"). Only a process that ends by
# itself with an error is a failure, named with its log. (Where the demo
# starts with SIGINT ignored, e.g. in the background of a script, bash
# cannot trap it and only the exit statuses tell.)
set +e
wait -n -p exited "${pids[@]}"
status=$?
if [ "$status" -ne 0 ] && [ "$status" -le 128 ]; then
	echo "demo: ${proc_name[$exited]:-a process} exited with status $status; see ${proc_log[$exited]:-the logs in $DEMO}" >&2
	exit "$status"
fi
exit 0
