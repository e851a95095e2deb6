# test_cli_docs: the man pages and bash completion follow the commands and
# keys they describe.
#   - easgate(8) is generated from the command table (easgate help --man):
#     it names every command, and all three pages render without groff
#     warnings;
#   - easgate.yaml(5) names every key `easgate check` prints as an
#     effective setting, easgate-policy(5) every policy key and every
#     eas_policy setting docs/configuration.md lists (so a new key without a
#     line in its man page fails here);
#   - bash completion (dist/bash-completion/easgate over `easgate complete`)
#     completes commands, subcommands, options, choices and file names, and
#     `easgate complete` refuses to run without "--".
# About 5 s.
source "$(dirname "$0")/lib.sh"
# Help, usage and completion do no work worth a leak check, and
# LeakSanitizer's scan at every exit of the few hundred runs here made this
# the slowest test of the ASan/UBSan run (130 s); the sanitizers stay on.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

EG=$BUILD/easgate
M8=$BUILD/man/easgate.8
[ -f "$M8" ] || eg_fail "no $M8 (the easgate-man target builds it)"
"$EG" help --man | cmp -s - "$M8" || eg_fail "$M8 is not what 'easgate help --man' prints now"
command -v groff >/dev/null || { echo "SKIP: no groff"; exit 77; }
for page in "$M8" "$SRC/man/easgate.yaml.5" "$SRC/man/easgate-policy.5"; do
  groff -man -Tutf8 -ww -z "$page" >"$TMP/groff.log" 2>&1 || eg_fail "groff $page failed"
  [ -s "$TMP/groff.log" ] && eg_fail "groff warns on $page: $(cat "$TMP/groff.log")"
done
eg_pass "the three man pages render without warnings; easgate(8) is the generated one"

# Every command, walked through the help texts.
subcommands() { awk '/^commands:$/ {on = 1; next} on && /^$/ {on = 0} on {print $1}'; }
n=0
walk() {
  local s
  for s in $("$EG" help "$@" | subcommands); do
    grep -q "^\.B easgate${*:+ $*} $s\$" "$M8" || eg_fail "easgate(8) lacks 'easgate${*:+ $*} $s'"
    n=$((n + 1))
    walk "$@" "$s"
  done
}
walk
[ "$n" -ge 40 ] || eg_fail "only $n commands in easgate(8)"
eg_pass "easgate(8) has all $n commands"

# easgate.yaml(5): every key of a full configuration's effective settings.
echo 'correct-horse-battery' | "$EG" init --dir "$TMP/site" --upstream http://127.0.0.1:9 \
  --public-host localhost --listen "127.0.0.1:$(eg_port)" >/dev/null 2>&1 || eg_fail "init"
sed -i 's#^redis:#redis:\n  sentinel: { master: m, nodes: ["127.0.0.1:26379"] }#' "$TMP/site/easgate.yaml"
"$EG" check --offline -c "$TMP/site/easgate.yaml" 2>/dev/null | sed '/^---$/q' |
  grep -oE '^ *-? *[a-z_]+:' | sed 's/[ -]//g; s/://' | sort -u >"$TMP/keys"
[ "$(wc -l <"$TMP/keys")" -ge 60 ] || eg_fail "only $(wc -l <"$TMP/keys") keys from check: $(cat "$TMP/keys")"
man5=$(sed 's/\\-/-/g' "$SRC/man/easgate.yaml.5")
while read -r k; do
  grep -qE "(^|[ .])$k([ ,.:]|$)" <<<"$man5" || eg_fail "easgate.yaml(5) lacks the key '$k'"
done <"$TMP/keys"
eg_pass "easgate.yaml(5) names all $(wc -l <"$TMP/keys") keys check prints"

# easgate-policy(5): the policy's keys, and the eas_policy settings of the reference.
pol=$(sed 's/\\-/-/g' "$SRC/man/easgate-policy.5")
{ "$EG" check -p "$SRC/conf/policy.yaml" 2>/dev/null | grep -oE '^ *-? *[a-z_]+:' | sed 's/[ -]//g; s/://'
  printf '%s\n' require_passcode require_encryption block_jailbroken min_os_version max_checkin_age \
    grace_period unmanaged_devices max_devices_per_user os_source
  sed -n '/^`eas_policy` settings/,/^Errors point/p' "$SRC/docs/configuration.md" |
    grep -oE '^\| `[a-z_]+`' | tr -d '|` '
} | sort -u | grep -vx 'en\|subject\|body' >"$TMP/pkeys"
[ "$(wc -l <"$TMP/pkeys")" -ge 55 ] || eg_fail "only $(wc -l <"$TMP/pkeys") policy keys"
while read -r k; do
  grep -qE "(^|[ .])$k([ ,.:]|$)" <<<"$pol" || eg_fail "easgate-policy(5) lacks '$k'"
done <"$TMP/pkeys"
eg_pass "easgate-policy(5) names all $(wc -l <"$TMP/pkeys") policy keys and eas_policy settings"

# Bash completion, as bash runs it.
complete_words() { # complete_words WORD... CURRENT: the candidates bash would offer
  bash -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    PATH=$(dirname "'"$EG"'"):$PATH
    _easgate
    printf "%s\n" "${COMPREPLY[@]}"' _ "$SRC/dist/bash-completion/easgate" "$@"
}
cd "$TMP" && touch site.yaml
got=$(complete_words easgate co) && [ "$got" = core ] ||
  eg_fail "'easgate co<TAB>': $got"
got=$(complete_words easgate core enroll re)
[ "$(sort <<<"$got" | paste -sd,)" = "renew,revoke" ] || eg_fail "'core enroll re<TAB>': $got"
got=$(complete_words easgate admin token new --role "")
[ "$(sort <<<"$got" | paste -sd,)" = "admin,device,viewer" ] || eg_fail "'--role <TAB>': $got"
got=$(complete_words easgate check -c si)
grep -qx site.yaml <<<"$got" || eg_fail "'check -c si<TAB>' offers no file: $got"
got=$(complete_words easgate check --o)
grep -qx -- --offline <<<"$got" || eg_fail "'check --o<TAB>': $got"
got=$(complete_words easgate init --upstream "")
[ -z "$got" ] || eg_fail "'init --upstream <TAB>' offers '$got' (a URL comes next)"
eg_pass "bash completion: commands, subcommands, options, choices, files; nothing for a URL"

rc=0; "$EG" complete >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" = 2 ] && grep -q "give '--'" "$TMP/err" || eg_fail "complete without --: exit $rc"
"$EG" complete -- nosuch words here >"$TMP/out" || eg_fail "complete with unknown words failed"
grep -qx proxy "$TMP/out" || eg_fail "unknown words: not the top-level commands"
"$EG" complete -- core -c >"$TMP/out" && [ "$(cat "$TMP/out")" = "@file" ] || eg_fail "core -c: $(cat "$TMP/out")"
eg_pass "easgate complete: usage without '--' (exit 2); unknown words complete from where they are"
