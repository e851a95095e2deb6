# test_package: the Debian package as an admin gets it. Builds it from this
# source (dpkg-buildpackage, in a copy under $TMP), runs lintian (no error,
# no warning outside the list below), makes a clean Debian 12 root with
# mmdebstrap (essential packages plus the package's Depends, from Debian's
# mirror, into $TMP: nothing is cached outside it), and in that root:
#
#   - refuses to install over an ordinary (non-system) user named easgate;
#   - installs: files, conffiles, the easgate user, directory modes;
#   - `easgate init --system`: keys, CA, CRL, registry and their modes, and
#     refuses to run twice;
#   - runs each unit's ExecStart as the unit's User= with its
#     AmbientCapabilities (setpriv; systemd itself does not run in a chroot
#     here), checks /healthz of every role, ExecReload (HUP), logrotate and
#     the USR1 reopen, then SIGTERM (exit 0);
#   - remove keeps the data, purge removes it.
#
# What it does not prove: systemd's own sandbox (ProtectSystem=,
# ReadWritePaths=, SystemCallFilter=) at run time. The units are checked
# offline instead: `systemd-analyze verify` and `systemd-analyze security
# --offline` (exposure at most 2.0 each).
#
# Runs in the plain build only (the package builds its own binary), as root,
# and needs the mirror: otherwise it is skipped (77). About 3-4 minutes.
source "$(dirname "$0")/lib.sh"

t0=$(date +%s)
step() { echo "[$(($(date +%s) - t0))s] $*"; }

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (chroot, mmdebstrap)"; exit 77; }
if grep -q '^EASGATE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "SKIP: the package is tested from the plain build"; exit 77
fi
for t in dpkg-buildpackage lintian mmdebstrap setpriv systemd-analyze redis-server curl; do
  command -v "$t" >/dev/null || { echo "SKIP: no $t (scripts/bootstrap installs it)"; exit 77; }
done
# The Debian mirror this host installs from (its deb822 sources, with
# bookworm-updates and -security, where the libraries this build linked
# came from), or EASGATE_DEB_MIRROR, or mmdebstrap's default
# (deb.debian.org, which adds updates and security itself).
HOST_SOURCES=/etc/apt/sources.list.d/debian.sources
if [ -n "${EASGATE_DEB_MIRROR:-}" ]; then
  MIRRORS=("$EASGATE_DEB_MIRROR") MIRROR=$EASGATE_DEB_MIRROR
elif [ -f "$HOST_SOURCES" ] && MIRROR=$(awk '$1 == "URIs:" {print $2; exit}' "$HOST_SOURCES") &&
  [ -n "$MIRROR" ]; then
  MIRRORS=("$HOST_SOURCES")
else
  MIRRORS=() MIRROR=http://deb.debian.org/debian
fi
curl -fsS -m 10 -o /dev/null "$MIRROR/dists/bookworm/Release" ||
  { echo "SKIP: the Debian mirror $MIRROR cannot be reached"; exit 77; }
# mmdebstrap (root mode) and the test mount /proc, /sys and /dev in the
# root: a container without CAP_SYS_ADMIN cannot, and nothing here can
# stand in for it.
mkdir "$TMP/probe"
if ! unshare --mount sh -c "mount -t tmpfs probe '$TMP/probe'" 2>"$TMP/probe.log"; then
  echo "SKIP: this environment cannot mount ($(cat "$TMP/probe.log")): the clean root needs /proc, /sys and /dev"
  exit 77
fi

R=$TMP/root
export TMPDIR=$TMP
mmdebstrap_pid=""
cleanup_root() {
  # mmdebstrap first (it unmounts what it mounted when it ends), then every
  # mount left under $TMP (the chroot's /proc), so that rm -rf never
  # reaches past $TMP into a mounted /proc, /sys or /dev.
  if [ -n "$mmdebstrap_pid" ] && kill -0 "$mmdebstrap_pid" 2>/dev/null; then
    kill -TERM "$mmdebstrap_pid" 2>/dev/null
    wait "$mmdebstrap_pid" 2>/dev/null || true
  fi
  local m
  for m in $(awk -v t="$TMP/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  if awk -v t="$TMP/" 'index($2, t) == 1 {f = 1} END {exit !f}' /proc/mounts; then
    echo "test_package: mounts left under $TMP; not removing it" >&2
    EG_KEEP_TMP=1
  fi
  eg_cleanup
}
trap cleanup_root EXIT

# ---- build ---------------------------------------------------------------------------
step "copying the source"
mkdir -p "$TMP/pkg/src"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$SRC" && git ls-files -co --exclude-standard | grep -v '^build' | tar -cf - -T -) |
    tar -xf - -C "$TMP/pkg/src"
  git -C "$SRC" rev-parse --short=12 HEAD >"$TMP/pkg/src/debian/easgate-commit"
else
  tar -C "$SRC" --exclude='./build*' -cf - . | tar -xf - -C "$TMP/pkg/src"
fi
# The clean root is made while the package builds (the build is CPU, the
# root mostly download and unpack). Its packages: the essential set, the
# package's own Depends (debian/control: adduser, procps, libxml2, which
# the proxy opens at its first EWS body) and the libraries dpkg-shlibdeps
# finds in this build's binary, which is the same source on the same
# system, so the package's ${shlibs:Depends} must come out the same; dpkg
# -i below refuses the install if it does not. Plus what the test runs
# inside: logrotate (Recommends).
libs=$(cd "$TMP/pkg/src" && dpkg-shlibdeps -O -e"$BUILD/easgate" 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p' | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' |
  grep -v '^$' | paste -sd, -)
[ -n "$libs" ] || eg_fail "dpkg-shlibdeps found no libraries in $BUILD/easgate"
own=$(sed -n 's/^Depends://p' "$SRC/debian/control" | tr ',' '\n' | grep -v '\${' |
  sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep -v '^$' | paste -sd, -)
[ -n "$own" ] || eg_fail "no Depends in $SRC/debian/control"
deps="$own,$libs"
step "mmdebstrap (essential + $deps), in the background"
mmdebstrap --quiet --variant=essential --include="$deps,logrotate" \
  --dpkgopt=force-unsafe-io bookworm "$R" "${MIRRORS[@]}" >"$TMP/mmdebstrap.log" 2>&1 &
mmdebstrap_pid=$!

step "dpkg-buildpackage"
(cd "$TMP/pkg/src" && DEB_BUILD_OPTIONS="nocheck noopt parallel=2" \
  dpkg-buildpackage -b -us -uc >"$TMP/build.log" 2>&1) || eg_fail "dpkg-buildpackage failed"
DEB=$(ls "$TMP"/pkg/easgate_*_amd64.deb 2>/dev/null | head -1)
[ -f "$DEB" ] || eg_fail "no easgate .deb was built"
eg_pass "package built: $(basename "$DEB")"

# ---- lintian -------------------------------------------------------------------------
# Tags accepted, each with its reason (docs/deploy.md says the same):
#  (none at warning level today; information tags are printed, not failed)
step "lintian"
lintian --pedantic "$TMP"/pkg/easgate_*_amd64.changes >"$TMP/lintian.log" 2>&1 || true
grep -v '^N:' "$TMP/lintian.log" | grep -v 'running with root privileges' || true
if grep -q '^[EW]: ' "$TMP/lintian.log"; then
  eg_fail "lintian reports errors or warnings: $(grep '^[EW]: ' "$TMP/lintian.log")"
fi
eg_pass "lintian: no error, no warning"

# ---- a clean Debian 12 root -------------------------------------------------------------
step "waiting for mmdebstrap"
wait "$mmdebstrap_pid" || eg_fail "mmdebstrap failed: $(tail -20 "$TMP/mmdebstrap.log")"
# Every package the .deb depends on is in the root (dpkg -i checks versions).
for d in $(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g'); do
  [ -n "$d" ] || continue
  grep -q "ok installed" <<<"$(chroot "$R" dpkg-query -W -f='${Status}' "$d" 2>/dev/null)" ||
    eg_fail "the package depends on $d, which this build's binary did not need: rebuild ($BUILD)"
done
mount -t proc proc "$R/proc"
cp "$DEB" "$R/tmp/easgate.deb"
in_root() { chroot "$R" "$@"; }
eg_pass "clean root made"

# ---- install: refused over an ordinary user, then done -----------------------------------
step "install"
in_root useradd -m -u 1500 easgate
rc=0
in_root dpkg -i /tmp/easgate.deb >"$TMP/dpkg-bad.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || eg_fail "the package installed over an ordinary user named easgate"
grep -q "not a system user" "$TMP/dpkg-bad.log" ||
  eg_fail "install over an ordinary user: no clear message ($(cat "$TMP/dpkg-bad.log"))"
in_root userdel -r easgate 2>/dev/null
in_root dpkg --configure -a >"$TMP/dpkg.log" 2>&1 || eg_fail "dpkg --configure -a failed"
eg_pass "an ordinary user named easgate stops the install with 'not a system user'"

mode() { in_root stat -c '%a %U:%G' "$1"; }
expect_mode() {
  local got; got=$(mode "$1") || eg_fail "$1 is missing"
  [ "$got" = "$2" ] || eg_fail "$1: mode/owner '$got', want '$2'"
}
grep -q ':/var/lib/easgate:/usr/sbin/nologin$' <<<"$(in_root getent passwd easgate)" ||
  eg_fail "no system user easgate with home /var/lib/easgate and no shell"
expect_mode /etc/easgate "750 root:easgate"
expect_mode /var/lib/easgate "700 easgate:easgate"
expect_mode /var/log/easgate "2750 easgate:adm"
for f in /usr/bin/easgate /usr/libexec/easgate/easgate-proxy-lean /etc/easgate/easgate.yaml /etc/easgate/policy.yaml \
         /etc/logrotate.d/easgate /lib/systemd/system/easgate.service \
         /lib/systemd/system/easgate-proxy.service /lib/systemd/system/easgate-core.service \
         /usr/share/man/man8/easgate.8.gz /usr/share/man/man5/easgate.yaml.5.gz \
         /usr/share/man/man5/easgate-policy.5.gz /usr/share/bash-completion/completions/easgate; do
  in_root test -f "$f" || eg_fail "$f is not installed"
done
for f in /etc/easgate/easgate.yaml /etc/easgate/policy.yaml /etc/logrotate.d/easgate; do
  grep -qx "$f" "$R/var/lib/dpkg/info/easgate.conffiles" || eg_fail "$f is not a conffile"
done
grep -q 'not found' <<<"$(in_root ldd /usr/bin/easgate)" && eg_fail "a library the binary needs is not in Depends"
grep -q 'not found' <<<"$(in_root ldd /usr/libexec/easgate/easgate-proxy-lean)" &&
  eg_fail "a library easgate-proxy-lean needs is not in Depends"
grep -q '^easgate ' <<<"$(in_root easgate --version)" || eg_fail "easgate --version"
eg_pass "installed: user, conffiles, units, man pages, completion, modes; Depends suffice"

# ---- the units, offline ------------------------------------------------------------------
step "systemd-analyze"
for u in easgate easgate-proxy easgate-core; do
  systemd-analyze verify --man=no --root="$R" "$u.service" >"$TMP/verify-$u.log" 2>&1 || true
  # a root without systemd has no sysinit.target: the only complaint allowed
  if grep -v 'sysinit.target not found' "$TMP/verify-$u.log" >"$TMP/verify-$u.left"; then
    eg_fail "$u.service: systemd-analyze verify: $(cat "$TMP/verify-$u.log")"
  fi
  systemd-analyze security --offline=yes --root="$R" --threshold=20 "$u.service" \
    >"$TMP/security-$u.log" 2>&1 || eg_fail "$u.service: exposure above 2.0: $(tail -1 "$TMP/security-$u.log")"
  echo "  $u.service: $(grep -o 'Overall exposure level.*' "$TMP/security-$u.log")"
done
eg_pass "units verify, exposure at most 2.0"

# ---- easgate init --system -------------------------------------------------------------------
step "easgate init --system"
PW=correct-horse-battery-staple
echo "$PW" | in_root easgate init --system --upstream http://127.0.0.1:9 --public-host localhost \
  --admin root >"$TMP/init.log" 2>&1 || eg_fail "easgate init --system failed: $(cat "$TMP/init.log")"
expect_mode /var/lib/easgate/registry.db "600 easgate:easgate"
expect_mode /var/lib/easgate/ca "700 easgate:easgate"
expect_mode /var/lib/easgate/ca/device-ca.key "600 easgate:easgate"
expect_mode /var/lib/easgate/ca/device-ca.crl "644 easgate:easgate"
expect_mode /etc/easgate/tls "750 root:easgate"
expect_mode /etc/easgate/tls/server.key "640 root:easgate"
expect_mode /etc/easgate/tls/admin.key "640 root:easgate"
grep -q "next steps" "$TMP/init.log" || eg_fail "init printed no next steps"
rc=0
echo "$PW" | in_root easgate init --system --upstream http://127.0.0.1:9 --public-host localhost \
  --admin root >"$TMP/init2.log" 2>&1 || rc=$?
[ "$rc" != 0 ] || eg_fail "a second init --system succeeded"
grep -q "exists" "$TMP/init2.log" || eg_fail "a second init does not say what exists"
eg_pass "init --system: keys, CA, CRL, registry with their modes; a second run is refused"

# The admin's own edits: ports free on this machine (the proxy's below 1024,
# to prove the capability), Redis, and the upstream.
lowport() { local p; for p in $(seq 1023 -1 900); do
  [ -n "$(ss -Hltn "sport = :$p")" ] || { echo "$p"; return; }; done; }
P_PROXY=$(lowport); P_ADMIN=$(eg_port); P_CORE=$(eg_port); P_ENROLL=$(eg_port)
eg_redis
# Exchange's stand-in, for a request with an access line.
eg_exsim
sed -i -e "s/0.0.0.0:443/127.0.0.1:$P_PROXY/" -e "s/127.0.0.1:9090/127.0.0.1:$P_ADMIN/" \
  -e "s/127.0.0.1:9443/127.0.0.1:$P_CORE/" -e "s/0.0.0.0:8444/127.0.0.1:$P_ENROLL/" \
  -e "s#redis://127.0.0.1:6379/0#redis://127.0.0.1:$redis_port/0#" \
  -e "s#http://127.0.0.1:9\$#http://127.0.0.1:$exsim_port#" "$R/etc/easgate/easgate.yaml"
in_root easgate check -q -c /etc/easgate/easgate.yaml >"$TMP/check.log" 2>&1 ||
  eg_fail "easgate check after init: $(cat "$TMP/check.log")"
eg_pass "easgate check passes after init"

# unit_cmd UNIT KEY: the unit's KEY= line, as installed.
unit_cmd() { sed -n "s/^$2=//p" "$R/lib/systemd/system/$1.service" | tail -1; }
# start_unit UNIT: ExecStart as User=/Group= with the unit's UMask= and
# ambient capabilities (sh execs setpriv, which execs easgate: the pid
# recorded is easgate's).
start_unit() {
  local u=$1 user group umask caps setpriv_caps=()
  user=$(unit_cmd "$u" User); group=$(unit_cmd "$u" Group); umask=$(unit_cmd "$u" UMask)
  caps=$(unit_cmd "$u" AmbientCapabilities | tr 'A-Z' 'a-z')
  if [ -n "$caps" ]; then
    caps=${caps//cap_/}
    setpriv_caps=(--inh-caps="+${caps// /,+}" --ambient-caps="+${caps// /,+}" --bounding-set="+${caps// /,+}")
  else
    setpriv_caps=(--bounding-set=-all)
  fi
  # shellcheck disable=SC2046
  eg_start "$u" chroot "$R" sh -c 'umask "$0"; exec "$@"' "${umask:-0022}" \
    setpriv --reuid="$user" --regid="$group" --init-groups \
    --no-new-privs "${setpriv_caps[@]}" -- $(unit_cmd "$u" ExecStart)
}
healthz() { curl -fsS -m 5 "$@" 2>/dev/null; }
wait_healthz() {
  for _ in $(seq 100); do healthz "$@" >/dev/null && return 0; sleep 0.1; done
  eg_fail "no /healthz at $*"
}
CACERT=$R/etc/easgate/tls/admin.crt
reload_unit() {
  local u=$1 pidvar="${1//[^a-zA-Z0-9_]/_}_pid"
  local cmd; cmd=$(unit_cmd "$u" ExecReload)
  in_root sh -c "${cmd//\$MAINPID/${!pidvar}}" || eg_fail "$u: ExecReload failed"
}

# ---- easgate.service: every role in one process ----------------------------------------------
step "easgate.service"
start_unit easgate
wait_healthz "http://127.0.0.1:$P_ADMIN/healthz"
wait_healthz --cacert "$CACERT" "https://127.0.0.1:$P_CORE/healthz"
eg_wait_port "$P_PROXY"
eg_wait_port "$P_ENROLL"
reload_unit easgate
sleep 1
grep -q "reload" "$TMP/easgate.log" || eg_fail "easgate.service: HUP did not reload"
healthz "http://127.0.0.1:$P_ADMIN/healthz" >/dev/null || eg_fail "easgate.service: dead after reload"
grep -q '^easgate_build_info{' <<<"$(curl -fsS -m 5 "http://127.0.0.1:$P_ADMIN/metrics")" ||
  eg_fail "the proxy's /metrics has no easgate_build_info"
grep -q '^easgate_build_info{' <<<"$(curl -fsS -m 5 --cacert "$CACERT" "https://127.0.0.1:$P_CORE/metrics")" ||
  eg_fail "the core's /metrics has no easgate_build_info"
# a request through the proxy to the upstream, so the access log has a line to rotate
EAS="/Microsoft-Server-ActiveSync?Cmd=Sync&User=a&DeviceId=PKG1&DeviceType=iPhone"
curl -s -m 5 -o /dev/null --insecure -X OPTIONS "https://127.0.0.1:$P_PROXY$EAS" || true
for _ in $(seq 50); do [ -s "$R/var/log/easgate/access.log" ] && break; sleep 0.1; done
[ -s "$R/var/log/easgate/access.log" ] || eg_fail "no access log in /var/log/easgate"
expect_mode /var/log/easgate/access.log "640 easgate:adm"
# logrotate: forced rotation as configured (its postrotate finds no systemctl
# here and says nothing), then the USR1 its postrotate sends
in_root logrotate -f /etc/logrotate.d/easgate >"$TMP/logrotate.log" 2>&1 ||
  eg_fail "logrotate failed: $(cat "$TMP/logrotate.log")"
[ -f "$R/var/log/easgate/access.log.1" ] || eg_fail "logrotate did not rotate access.log"
kill -USR1 "$easgate_pid"
curl -s -m 5 -o /dev/null --insecure -X OPTIONS "https://127.0.0.1:$P_PROXY$EAS" || true
for _ in $(seq 50); do [ -s "$R/var/log/easgate/access.log" ] && break; sleep 0.1; done
[ -s "$R/var/log/easgate/access.log" ] || eg_fail "no new access.log after USR1"
eg_stop_clean easgate
eg_pass "easgate.service: starts as easgate on port $P_PROXY (< 1024), /healthz of proxy and core, reload, logrotate + USR1, stop"

# ---- easgate-proxy.service and easgate-core.service side by side ---------------------------
step "easgate-proxy.service + easgate-core.service"
start_unit easgate-core
wait_healthz --cacert "$CACERT" "https://127.0.0.1:$P_CORE/healthz"
start_unit easgate-proxy
wait_healthz "http://127.0.0.1:$P_ADMIN/healthz"
reload_unit easgate-core
reload_unit easgate-proxy
sleep 1
healthz "http://127.0.0.1:$P_ADMIN/healthz" >/dev/null || eg_fail "easgate-proxy: dead after reload"
healthz --cacert "$CACERT" "https://127.0.0.1:$P_CORE/healthz" >/dev/null ||
  eg_fail "easgate-core: dead after reload"
eg_stop_clean easgate-proxy
eg_stop_clean easgate-core
eg_pass "easgate-proxy and easgate-core: start, /healthz, reload, stop"

# The core has no capability: a port below 1024 is refused at start.
sed -i "s/127.0.0.1:$P_CORE/127.0.0.1:$P_PROXY/" "$R/etc/easgate/easgate.yaml"
rc=0
in_root setpriv --reuid=easgate --regid=easgate --init-groups --bounding-set=-all \
  easgate check -c /etc/easgate/easgate.yaml >/dev/null 2>"$TMP/lowcheck.log" || rc=$?
[ "$rc" = 2 ] || eg_fail "check as easgate without the capability: exit $rc, want 2"
grep -q "$P_PROXY" "$TMP/lowcheck.log" || eg_fail "check does not name the port it cannot bind"
sed -i "s/127.0.0.1:$P_PROXY\$/127.0.0.1:$P_CORE/" "$R/etc/easgate/easgate.yaml"
eg_pass "easgate check, run as the unit's user, refuses a core port below 1024"

# ---- remove keeps the data, purge removes it ---------------------------------------------
step "remove, purge"
in_root dpkg -r easgate >"$TMP/remove.log" 2>&1 || eg_fail "dpkg -r failed"
in_root test -f /var/lib/easgate/registry.db || eg_fail "remove deleted the registry"
in_root test -f /etc/easgate/easgate.yaml || eg_fail "remove deleted the configuration"
in_root dpkg --purge easgate >"$TMP/purge.log" 2>&1 || eg_fail "dpkg --purge failed"
for d in /var/lib/easgate /var/log/easgate /etc/easgate /usr/bin/easgate; do
  in_root test -e "$d" && eg_fail "$d is left after purge"
done
in_root dpkg-statoverride --list /etc/easgate >/dev/null && eg_fail "statoverride left after purge"
eg_pass "remove keeps the registry and configuration, purge removes them"
step "done"
