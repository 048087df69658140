#!/bin/sh
# Hostile peers and credentials, with real certificates on loopback:
# carved refuses a control plane whose certificate is not from its pinned
# CA or not for the name it dialled; carve-cp refuses a wrong bootstrap
# token, agent calls without a client certificate and expired client
# certificates; carved renews its certificate before it expires.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/e2e.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"

tmpdir_setup
tap_at_exit cp_stop
tap_at_exit carved_stop_all
node="test://$top_srcdir/tests/node-small.xml"
cp_err() { ctl_json status | jq -r '.control_plane.last_error // ""'; }
registered() { [ "$(cp_admin GET "/v1/nodes/$1" >/dev/null; echo "$(cp_code)")" = 200 ]; }

# -- a control plane whose certificate is from another CA -----------------------
cp_setup
cp_start --cert-seconds 8 || tap_bail "carve-cp did not start"
"$CARVECP_BIN" init --dir "$TEST_TMPDIR/otherca" >/dev/null
carved_setup wrongca "$node" "[control_plane]
url = $CP_URL
ca_file = $TEST_TMPDIR/otherca/ca.crt
bootstrap_token_file = $CP_DIR/bootstrap.token"
carved_start || tap_bail "carved did not start"
tap_ok "carved reports a certificate error" wait_for "error" 15 sh -c \
    "'$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json status | jq -e '.control_plane.last_error | test(\"certificate|SSL|verify\"; \"i\")'"
registered wrongca
tap_is "$?" 1 "and never talked to the control plane"
carved_stop

# -- a control plane whose certificate is for another name ----------------------
"$CARVECP_BIN" init --dir "$TEST_TMPDIR/cpother" --name other.example >/dev/null
oport=$(free_port)
"$CARVECP_BIN" serve --dir "$TEST_TMPDIR/cpother" --listen "127.0.0.1:$oport" \
    >"$TEST_TMPDIR/cpother.log" 2>&1 &
opid=$!
tap_at_exit "kill $opid 2>/dev/null"
sleep 0.5
carved_setup wrongname "$node" "[control_plane]
url = https://127.0.0.1:$oport
ca_file = $TEST_TMPDIR/cpother/ca.crt
bootstrap_token_file = $TEST_TMPDIR/cpother/bootstrap.token"
carved_start || tap_bail "carved did not start"
tap_ok "carved refuses a certificate for another name" wait_for "error" 15 sh -c \
    "'$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json status | jq -e '.control_plane.last_error | test(\"name|host|match|certificate\"; \"i\")'"
tap_is "$(grep -c 'enrol' "$TEST_TMPDIR/cpother.log" | tr -d ' ')" 0 "no enrolment reached that server"
carved_stop

# -- a wrong bootstrap token -------------------------------------------------------
echo "0000000000000000000000000000000000000000000000000000000000000000" > "$TEST_TMPDIR/bad.token"
chmod 0600 "$TEST_TMPDIR/bad.token"
carved_setup badtoken "$node" "[control_plane]
url = $CP_URL
ca_file = $CP_DIR/ca.crt
bootstrap_token_file = $TEST_TMPDIR/bad.token"
carved_start || tap_bail "carved did not start"
tap_ok "a wrong bootstrap token is refused (unauthenticated)" wait_for "401" 15 sh -c \
    "'$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json status | jq -e '.control_plane.last_error | test(\"unauthenticated|401\")'"
tap_is "$(grep -c "$(cat "$TEST_TMPDIR/bad.token")" "$CARVED_DIR/carved.log" | tr -d ' ')" 0 "the token never appears in carved's log"
registered badtoken
tap_is "$?" 1 "and the node is not registered"
carved_stop

# -- the good path, renewal and expiry ----------------------------------------------
carved_setup_cp good "$node"
carved_start || tap_bail "carved did not start"
tap_ok "with the right CA, name and token the node comes up" cp_wait_node_up good
# Every host holds the bootstrap token: it must not let one host enrol as
# another that exists already.
mkdir -p "$TEST_TMPDIR/impostor/state"
sed -e "s#$TEST_TMPDIR/good/#$TEST_TMPDIR/impostor/#g" "$TEST_TMPDIR/good/carved.conf" > "$TEST_TMPDIR/impostor/carved.conf"
carved_use impostor
carved_start || tap_bail "impostor carved did not start"
tap_ok "enrolling under an existing node's name is refused (conflict)" wait_for "409" 15 sh -c \
    "'$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json status | jq -e '.control_plane.last_error | test(\"already enrolled|conflict\")'"
carved_stop
carved_use good
crt=$TEST_TMPDIR/good/state/client.crt
serial1=$(openssl x509 -in "$crt" -noout -serial)
cp "$crt" "$TEST_TMPDIR/old.crt"
cp "$TEST_TMPDIR/good/state/client.key" "$TEST_TMPDIR/old.key"
tap_ok "carved renews its 8-second certificate before it expires" wait_for "renewal" 20 sh -c \
    "[ \"\$(openssl x509 -in '$crt' -noout -serial)\" != '$serial1' ]"
sleep 1
tap_ok "and stays up with the new one" cp_wait_node_up good
sleep 8   # the old certificate is now expired
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CP_DIR/ca.crt" \
    --cert "$TEST_TMPDIR/old.crt" --key "$TEST_TMPDIR/old.key" \
    -X POST -d '{"seq":1,"full":true,"vms":[],"removed":[],"capacity":{}}' \
    "$CP_URL/v1/nodes/good/heartbeat")
case "$code" in
000|401|403) tap_pass "an expired client certificate is refused ($code)" ;;
*) tap_fail "an expired client certificate is refused" "got HTTP $code" ;;
esac
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CP_DIR/ca.crt" \
    -X PUT -d '{}' "$CP_URL/v1/nodes/good")
tap_like "$code" "40[13]" "an agent call without a client certificate is refused"
tap_is "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CP_DIR/ca.crt" "$CP_URL/v1/vms")" 401 "an admin call without the token is 401"
tap_is "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CP_DIR/ca.crt" -H 'Authorization: Bearer nope' "$CP_URL/v1/vms")" 401 "an admin call with a wrong token is 401"
tap_done
