# test_cli_help: the command line answers for itself. Walks the command
# table from `easgate --help` down through every group's "commands:" list:
#   - every command and subcommand answers -h and --help with its own usage
#     ("usage: easgate PATH ...") on stdout, exit 0, nothing on stderr, and
#     `easgate help PATH` says the same;
#   - every command run without arguments (so missing what it requires)
#     prints what is missing and its usage on stderr and exits 2, except the
#     few that need nothing (listed below with their status);
#   - `easgate core --help` lists every core subcommand; --version, -V and
#     version print the version; unknown commands exit 2.
# Nothing here starts a server or touches a registry: no command gets far
# enough to open one.
set -u
. "$(dirname "$0")/lib.sh"
# Help, usage and completion do no work worth a leak check, and
# LeakSanitizer's scan at every exit of the few hundred runs here made this
# the slowest test of the ASan/UBSan run (130 s); the sanitizers stay on.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
EG=$BUILD/easgate
[ -x "$EG" ] || eg_fail "no $EG (build first)"
cd "$TMP" || exit 1
unset EASGATE_URL EASGATE_TOKEN EASGATE_ENROLL_URL

# Commands that run fine with no arguments, and the status they end with.
declare -A NEEDS_NOTHING=(
  ["version"]=0          # prints the version
  ["help"]=0             # prints easgate's usage
  ["wbxml decode"]=1     # reads stdin (empty here: not WBXML)
  ["wbxml encode"]=1     # reads stdin (empty here: no root element)
)

LEAVES=()
GROUPS_SEEN=()

# The names in the "commands:" list of a usage text.
subcommands() { awk '/^commands:$/ {on = 1; next} on && /^$/ {on = 0} on {print $1}'; }

walk() {
  local path="easgate${*:+ $*}" out rc
  for flag in --help -h; do
    rc=0
    out=$(timeout 10 "$EG" "$@" "$flag" 2>"$TMP/err") || rc=$?
    [ "$rc" = 0 ] || eg_fail "'$path $flag': exit $rc: $(cat "$TMP/err")"
    [ -s "$TMP/err" ] && eg_fail "'$path $flag' wrote to stderr: $(cat "$TMP/err")"
    case "$(printf '%s\n' "$out" | head -n 1)" in
    "usage: $path"*) ;;
    *) eg_fail "'$path $flag' does not start with 'usage: $path': $(printf '%s\n' "$out" | head -n 3)" ;;
    esac
  done
  rc=0
  [ "$(timeout 10 "$EG" help "$@" 2>&1)" = "$out" ] || rc=1
  [ "$rc" = 0 ] || eg_fail "'easgate help $*' differs from '$path --help'"
  local subs
  subs=$(printf '%s\n' "$out" | subcommands)
  if [ -z "$subs" ]; then
    LEAVES+=("$*")
    return
  fi
  GROUPS_SEEN+=("$path")
  local s
  for s in $subs; do walk "$@" "$s"; done
}
walk
[ "${#LEAVES[@]}" -ge 30 ] || eg_fail "only ${#LEAVES[@]} commands found: ${LEAVES[*]}"
eg_pass "help: ${#GROUPS_SEEN[@]} groups and ${#LEAVES[@]} commands answer -h, --help and help with their usage"

core=$("$EG" core --help)
for c in init-admin init-ca token enroll resync evaluate devices device audit; do
  printf '%s\n' "$core" | subcommands | eg_has -x -- "$c" || eg_fail "easgate core --help does not list $c"
done
eg_pass "easgate core --help lists every core subcommand"

for leaf in "${LEAVES[@]}"; do
  # shellcheck disable=SC2086 # the path is words
  set -- $leaf
  rc=0
  timeout 10 "$EG" "$@" </dev/null >"$TMP/out" 2>"$TMP/err" || rc=$?
  want=${NEEDS_NOTHING[$leaf]:-2}
  [ "$rc" = "$want" ] || eg_fail "'easgate $leaf' with no arguments: exit $rc, want $want: $(cat "$TMP/err")"
  if [ "$want" = 2 ]; then
    grep -q "^usage: easgate $leaf" "$TMP/err" || eg_fail "'easgate $leaf' with no arguments: no usage on stderr: $(cat "$TMP/err")"
    head -n 1 "$TMP/err" | eg_has '^usage:' &&
      eg_fail "'easgate $leaf' with no arguments: usage but no word on what is missing"
  fi
done
# A required option missing while others are given: still the usage, exit 2,
# before any file is opened.
rc=0; "$EG" core token -c "$TMP/none.yaml" 2>"$TMP/err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--user NAME is required" "$TMP/err" && grep -q "^usage: easgate core token" "$TMP/err" ||
  eg_fail "core token without --user: exit $rc: $(cat "$TMP/err")"
rc=0; "$EG" core enroll device DEV1 -c "$TMP/none.yaml" 2>"$TMP/err" || rc=$?
[ "$rc" = 2 ] && grep -q "^usage: easgate core enroll device" "$TMP/err" ||
  eg_fail "core enroll device without --key: exit $rc: $(cat "$TMP/err")"
eg_pass "every command missing what it needs prints its usage and exits 2"

# Help wins wherever it stands, before any work: the usage of the command
# it follows, nothing opened or changed.
out=$("$EG" core device block DEV1 -c "$TMP/none.yaml" --help) || eg_fail "device block --help failed"
printf '%s\n' "$out" | head -n 1 | eg_has "^usage: easgate core device" || eg_fail "device block --help: $out"
out=$("$EG" core -c "$TMP/none.yaml" resync -h) || eg_fail "core -c F resync -h failed"
printf '%s\n' "$out" | head -n 1 | eg_has "^usage: easgate core resync" || eg_fail "core -c F resync -h: $out"
out=$("$EG" admin --json devices -h) || eg_fail "admin --json devices -h failed"
printf '%s\n' "$out" | head -n 1 | eg_has "^usage: easgate admin devices" || eg_fail "admin --json devices -h: $out"
[ ! -e "$TMP/none.yaml" ] || eg_fail "a help request created a file"
eg_pass "-h after other arguments shows that command's usage and does nothing else"

v=$("$EG" --version) && [ "$("$EG" -V)" = "$v" ] && [ "$("$EG" version)" = "$v" ] ||
  eg_fail "--version, -V and version disagree"
printf '%s\n' "$v" | eg_has -E '^easgate [0-9]+\.[0-9]+\.[0-9]+$' || eg_fail "version: '$v'"
for bad in "nosuch" "core nosuch" "core enroll nosuch" "admin --json nosuch" "help nosuch" "help core nosuch"; do
  rc=0
  # shellcheck disable=SC2086
  "$EG" $bad >/dev/null 2>"$TMP/err" </dev/null || rc=$?
  [ "$rc" = 2 ] && grep -q "nosuch" "$TMP/err" || eg_fail "'easgate $bad': exit $rc: $(cat "$TMP/err")"
done
rc=0; "$EG" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || eg_fail "easgate with no command: exit $rc"
eg_pass "--version, -V and version agree; unknown commands exit 2 and name themselves"
