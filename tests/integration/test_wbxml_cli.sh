# test_wbxml_cli: `easgate wbxml decode|encode` as an operator uses it:
# files and stdin, the round trip, "offset N: reason" with exit 1 on bad
# input, exit 2 on bad usage.
set -u
. "$(dirname "$0")/lib.sh"
EASGATE=$BUILD/easgate
[ -x "$EASGATE" ] || eg_fail "no $EASGATE (build first)"
CORPUS=$SRC/tests/data/eas

# Round trip through files and through pipes.
"$EASGATE" wbxml encode "$CORPUS/provision_initial_request.xml" >"$TMP/p.wbxml" ||
  eg_fail "encode failed"
"$EASGATE" wbxml decode "$TMP/p.wbxml" >"$TMP/p.xml" || eg_fail "decode failed"
grep -q '<settings:Model>iPhone15,2</settings:Model>' "$TMP/p.xml" || eg_fail "decoded XML lacks the model"
"$EASGATE" wbxml encode <"$TMP/p.xml" | cmp - "$TMP/p.wbxml" || eg_fail "stdin round trip differs"
head -c 4 "$TMP/p.wbxml" | od -An -tx1 | eg_has '03 01 6a 00' || eg_fail "bad WBXML header"

# Malformed WBXML: truncated inside a string.
printf '\003\001\152\000\105\003abc' >"$TMP/bad.wbxml"
"$EASGATE" wbxml decode "$TMP/bad.wbxml" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] || eg_fail "truncated WBXML: exit $rc, want 1"
grep -qx 'offset 5: unterminated inline string' "$TMP/err" || eg_fail "truncated WBXML: $(cat "$TMP/err")"
[ ! -s "$TMP/out" ] || eg_fail "truncated WBXML: partial output on stdout"

# Unknown code page.
printf '\003\001\152\000\000\032\105\001' | "$EASGATE" wbxml decode >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && grep -qx 'offset 5: unknown code page' "$TMP/err" ||
  eg_fail "unknown page: exit $rc: $(cat "$TMP/err")"

# Malformed XML: a tag not in its namespace.
echo '<Sync xmlns="AirSync"><Bogus/></Sync>' | "$EASGATE" wbxml encode >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q '^offset 23: ' "$TMP/err" || eg_fail "bad XML: exit $rc: $(cat "$TMP/err")"

# Usage and missing files.
"$EASGATE" wbxml frobnicate >/dev/null 2>&1
[ $? -eq 2 ] || eg_fail "unknown subcommand should exit 2"
"$EASGATE" wbxml >/dev/null 2>&1
[ $? -eq 2 ] || eg_fail "no subcommand should exit 2"
"$EASGATE" wbxml decode "$TMP/no-such-file" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && grep -q 'cannot open' "$TMP/err" || eg_fail "missing file: exit $rc"

eg_pass "easgate wbxml decode/encode"
