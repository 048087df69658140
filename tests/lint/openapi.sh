#!/bin/sh
# Lints api/openapi.yaml, the normative protocol contract, with Redocly's
# OpenAPI linter (rules in api/redocly.yaml: the recommended set as errors,
# plus examples checked against their schemas). Installs nothing: it runs
# only when npx is on PATH (Debian: apt-get install nodejs npm) and skips
# when the pinned linter cannot be fetched (offline build hosts). npm's
# cache lives under the build tree (tests/lint/npm-cache), so a second run
# needs no network. TAP output; run by "make check".
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
: "${top_builddir:=$top_srcdir}"

# Pinned for reproducible results: the newest 1.x may depend on packages
# that are not (yet) published. Override with REDOCLY_CLI=@redocly/cli@X.
cli=${REDOCLY_CLI:-@redocly/cli@1.34.20}
spec="$top_srcdir/api/openapi.yaml"
config="$top_srcdir/api/redocly.yaml"

command -v npx >/dev/null 2>&1 || tap_skip_all "npx not installed (apt-get install nodejs npm)"

npm_config_cache="$top_builddir/tests/lint/npm-cache"
# Use what is cached without asking the registry, and give up quickly when
# it cannot be reached instead of retrying for minutes.
npm_config_prefer_offline=true
npm_config_fetch_retries=1
npm_config_fetch_timeout=30000
npm_config_update_notifier=false
npm_config_audit=false
npm_config_fund=false
# Redocly CLI 1.x sends usage telemetry unless told not to.
REDOCLY_TELEMETRY=off
REDOCLY_SUPPRESS_UPDATE_NOTICE=true
export npm_config_cache npm_config_prefer_offline npm_config_fetch_retries \
    npm_config_fetch_timeout npm_config_update_notifier npm_config_audit \
    npm_config_fund REDOCLY_TELEMETRY REDOCLY_SUPPRESS_UPDATE_NOTICE
mkdir -p "$npm_config_cache" || tap_bail "cannot make $npm_config_cache"

run() {
	if command -v timeout >/dev/null 2>&1; then
		timeout 300 "$@"
	else
		"$@"
	fi
}

tmpdir_setup
log="$TEST_TMPDIR/lint.log"

# Fetching is a separate step, so a host without the registry skips instead
# of failing.
if ! run npx --yes "$cli" --version >"$log" 2>&1; then
	tap_diag "$(tail -n 5 "$log")"
	tap_skip_all "cannot fetch $cli (offline?)"
fi

tap_plan 1
# api/redocly.yaml turns every rule's warning into an error (non-zero
# exit); a problem in the configuration itself (an unknown rule) is only
# printed, so look for that too. Run from the temp dir so no other
# redocly.yaml is picked up.
if (cd "$TEST_TMPDIR" && run npx --yes "$cli" lint --format=stylish \
    --config "$config" "$spec") >"$log" 2>&1 &&
    ! grep -q -e '\[WARNING\]' -e 'Your config has' \
    -e 'You have [0-9]* warning' "$log"; then
	tap_pass "openapi.yaml lints clean"
else
	tap_fail "openapi.yaml lints clean" "$(cat "$log")"
fi
tap_done
