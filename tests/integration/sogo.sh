# A throwaway SOGo for integration tests: a real ActiveSync server (Debian
# 12's sogo + sogo-activesync, SOGo 5.8) with everything it needs --
# PostgreSQL, Dovecot (IMAP), memcached and an SMTP sink -- each started
# here on a free loopback port, with its data under $TMP, and stopped by pid
# at exit. Nothing touches the system's own services or their data. Source
# it after lib.sh:
#
#   sogo_missing        says what is missing and returns 1 (the test then
#                       exits 77), or returns 0
#   sogo_up             starts everything, creates the users alice/alicepw and
#                       bob/bobpw, stores three mails in each INBOX over IMAP
#                       ("Test mail 1".."Test mail 3", bodies of 140, 280 and
#                       420 bytes), waits until SOGo answers ActiveSync. Sets
#     SOGO_URL          http://127.0.0.1:PORT/SOGo (ActiveSync lives under it:
#                       $SOGO_URL/Microsoft-Server-ActiveSync)
#     SOGO_PORT, SOGO_IMAP_PORT, SOGO_SMTP_PORT, SOGO_PG_PORT, SOGO_MC_PORT
#     SOGO_SENT         the SMTP sink's Maildir: what SendMail sent
#     SOGO_UP_MS        how long sogo_up took (it prints it too)
#   sogo_mail USER PASSWORD SUBJECT BODY   stores one more mail in USER's INBOX
#   sogo_down           stops everything (also done at exit)
#
# Settings a test may change before sogo_up: SOGO_WORKERS (sogod children, 3;
# each holds one request, and a held Ping holds one), SOGO_PING_MAX (longest
# Ping SOGo holds, s; 5), SOGO_SYNC_INTERVAL (how often a held Ping looks for
# changes, s; 5 -- SOGo sleeps at least 5 s between looks anyway).
#
# sogod and PostgreSQL refuse to run as root: when the tests run as root,
# every daemon here runs as the `sogo` system user the package creates
# (setpriv, which execs, so the pid eg_start records is the daemon's);
# otherwise as the current user. Dovecot runs unprivileged too
# (default_internal_user/default_login_user = that user, no chroots).

SOGO_RUNAS=()
SOGO_USER=$(id -un)
SOGO_PIDS=()
SOGO_PY=/usr/bin/python3 # Debian's: python3-aiosmtpd is installed for it, not for another python3

# eg_port through Debian's python3: the first python3 on PATH may be a
# version manager's shim that takes a second to start on a loaded machine,
# and sogo_up needs five ports.
sogo_port() { PATH=/usr/bin:$PATH eg_port; }

sogo_missing() {
  local f missing=()
  for f in /usr/sbin/sogod /usr/lib/GNUstep/SOGo/ActiveSync.SOGo /usr/sbin/dovecot \
    /usr/bin/memcached /usr/lib/postgresql/15/bin/initdb; do
    [ -e "$f" ] || missing+=("$f")
  done
  $SOGO_PY -c 'import aiosmtpd' 2>/dev/null || missing+=("python3-aiosmtpd")
  command -v curl >/dev/null || missing+=("curl")
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "SOGo test environment incomplete (scripts/bootstrap installs it): ${missing[*]}"
    return 1
  fi
  if [ "$(id -u)" = 0 ] && ! getent passwd sogo >/dev/null; then
    echo "no 'sogo' system user (the sogo package creates it); sogod refuses to run as root"
    return 1
  fi
  if [ "$(id -u)" != 0 ] && ! [ -r /etc/sogo/sogo.conf ]; then
    echo "sogod reads /etc/sogo/sogo.conf, which $(id -un) cannot read (run as root or in group sogo)"
    return 1
  fi
  return 0
}

sogo_mail() { # USER PASSWORD SUBJECT BODY
  $SOGO_PY - "$SOGO_IMAP_PORT" "$@" <<'PY'
import imaplib, sys
from email.message import EmailMessage
port, user, password, subject, body = int(sys.argv[1]), *sys.argv[2:6]
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
e = EmailMessage()
e["From"] = "Carol <carol@example.test>"
e["To"] = f"{user}@example.test"
e["Subject"] = subject
e.set_content(body)
typ, _ = m.append("INBOX", None, None, e.as_bytes())
assert typ == "OK", typ
m.logout()
PY
}

# Three mails per user, over IMAP. Also turns on modification sequences in
# each folder: SOGo's ActiveSync reads a folder's state from HIGHESTMODSEQ
# in the SELECT answer, which Dovecot only sends for a mailbox whose modseq
# tracking some client enabled (CONDSTORE) before -- without it, SOGo takes
# the folder for unchanged and the first Syncs come back empty.
sogo_seed() {
  $SOGO_PY - "$SOGO_IMAP_PORT" <<'PY'
import imaplib, sys
from email.message import EmailMessage
port = int(sys.argv[1])
for user, password in (("alice", "alicepw"), ("bob", "bobpw")):
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login(user, password)
    typ, _ = m._simple_command("ENABLE", "CONDSTORE")
    assert typ == "OK", typ
    for i in range(1, 4):
        e = EmailMessage()
        e["From"] = "Carol <carol@example.test>"
        e["To"] = f"{user}@example.test"
        e["Subject"] = f"Test mail {i}"
        e["Date"] = f"Mon, 07 Dec 2026 08:00:0{i} +0000"
        e["Message-ID"] = f"<test{i}.{user}@example.test>"
        e.set_content(f"Body line {i}.\n" * (10 * i))
        typ, _ = m.append("INBOX", None, None, e.as_bytes())
        assert typ == "OK", typ
    for folder in ("INBOX", "Sent", "Trash", "Drafts"):
        typ, _ = m.select(folder)
        assert typ == "OK", (folder, typ)
    m.logout()
PY
}

sogo_wait_answer() { # waits (bounded) until SOGo answers an ActiveSync OPTIONS
  local i code
  for i in $(seq 150); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS -u alice:alicepw \
      --max-time 5 "$SOGO_URL/Microsoft-Server-ActiveSync" 2>/dev/null) || code=000
    [ "$code" = 200 ] && return 0
    sleep 0.2
  done
  eg_fail "SOGo does not answer ActiveSync OPTIONS at $SOGO_URL after 30 s (last: HTTP $code)"
}

sogo_up() {
  local t0 d pgbin=/usr/lib/postgresql/15/bin
  t0=$(date +%s%N)
  d="$TMP/sogo"
  if [ "$(id -u)" = 0 ]; then
    SOGO_RUNAS=(setpriv --reuid=sogo --regid=sogo --init-groups)
    SOGO_USER=sogo
    chmod 711 "$TMP" # the daemons' user must reach $TMP/sogo (not list $TMP)
  fi
  mkdir -p "$d"/{pg,pgsock,dovecot/run,dovecot/state,mail,gnustep/defaults}
  if [ "$(id -u)" = 0 ]; then chown -R "$SOGO_USER:" "$d"; fi
  SOGO_PG_PORT=$(sogo_port)
  SOGO_IMAP_PORT=$(sogo_port)
  SOGO_MC_PORT=$(sogo_port)
  SOGO_SMTP_PORT=$(sogo_port)
  SOGO_PORT=$(sogo_port)
  SOGO_URL="http://127.0.0.1:$SOGO_PORT/SOGo"
  SOGO_SENT="$d/sent"

  "${SOGO_RUNAS[@]}" "$pgbin/initdb" -D "$d/pg" -U sogo -A trust -E UTF8 --no-locale --no-sync \
    >"$TMP/sogo-initdb.log" 2>&1 &
  local initdb_pid=$!

  # Dovecot: IMAP on loopback, plaintext logins, users from a passwd-file,
  # Maildirs under $d/mail, all processes as $SOGO_USER.
  local uid gid
  uid=$(id -u "$SOGO_USER")
  gid=$(id -g "$SOGO_USER")
  cat >"$d/dovecot/users" <<EOF
alice:{PLAIN}alicepw:$uid:$gid::$d/mail/alice
bob:{PLAIN}bobpw:$uid:$gid::$d/mail/bob
EOF
  cat >"$d/dovecot/dovecot.conf" <<EOF
base_dir = $d/dovecot/run
state_dir = $d/dovecot/state
log_path = /dev/stderr
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = $SOGO_USER
default_internal_group = $(id -gn "$SOGO_USER")
default_login_user = $SOGO_USER
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = $d/dovecot/users
}
userdb {
  driver = passwd-file
  args = $d/dovecot/users
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = create
  }
  mailbox Trash {
    special_use = \\Trash
    auto = create
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = create
  }
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $SOGO_IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service stats {
  inet_listener http {
    port = 0
  }
}
EOF
  if [ "$(id -u)" = 0 ]; then chown -R "$SOGO_USER:" "$d/dovecot"; fi
  eg_start sogo-dovecot "${SOGO_RUNAS[@]}" /usr/sbin/dovecot -F -c "$d/dovecot/dovecot.conf"
  SOGO_PIDS+=("$sogo_dovecot_pid")

  eg_start sogo-memcached "${SOGO_RUNAS[@]}" /usr/bin/memcached -l 127.0.0.1 -p "$SOGO_MC_PORT" \
    -U 0 -m 16 -t 1
  SOGO_PIDS+=("$sogo_memcached_pid")

  # The SMTP sink: every message SOGo sends lands in $SOGO_SENT (a Maildir).
  eg_start sogo-smtp $SOGO_PY -m aiosmtpd -n -l "127.0.0.1:$SOGO_SMTP_PORT" \
    -c aiosmtpd.handlers.Mailbox "$SOGO_SENT"
  SOGO_PIDS+=("$sogo_smtp_pid")

  # The mails go in while initdb runs.
  eg_wait_port "$SOGO_IMAP_PORT"
  sogo_seed || eg_fail "cannot store the test mails over IMAP"

  # PostgreSQL: a cluster of its own, no durability (a test's data dies
  # with it). initdb (seconds) ran beside the other daemons' start.
  wait "$initdb_pid" || eg_fail "initdb failed"
  eg_start sogo-postgres "${SOGO_RUNAS[@]}" "$pgbin/postgres" -D "$d/pg" -k "$d/pgsock" \
    -p "$SOGO_PG_PORT" -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c shared_buffers=16MB -c max_connections=60
  SOGO_PIDS+=("$sogo_postgres_pid")

  eg_wait_port "$SOGO_PG_PORT"
  local psql=("$pgbin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SOGO_PG_PORT" -U sogo)
  for _ in $(seq 50); do "${psql[@]}" -d postgres -c 'select 1' >/dev/null 2>&1 && break; sleep 0.1; done
  "${psql[@]}" -d postgres -c 'create database sogo' >/dev/null || eg_fail "cannot create the sogo database"
  # SOGo's user source: a table with its documented columns, plain passwords.
  "${psql[@]}" -d sogo >/dev/null <<'SQL' || eg_fail "cannot create the SOGo users"
create table sogo_users (c_uid varchar(128) primary key, c_name varchar(128) not null,
  c_password varchar(128) not null, c_cn varchar(128), mail varchar(128));
insert into sogo_users values
  ('alice', 'alice', 'alicepw', 'Alice Example', 'alice@example.test'),
  ('bob', 'bob', 'bobpw', 'Bob Example', 'bob@example.test');
SQL

  # sogod reads the "sogod" domain of its GNUstep user defaults before
  # /etc/sogo/sogo.conf's values, so a defaults directory of our own (found
  # through GNUSTEP_CONFIG_FILE) overrides every setting that matters here.
  # sogod's own HTTP listener (WOPort) is enough for ActiveSync: no web
  # server in front. SOGo tables are created by sogod on first use.
  local pg="postgresql://sogo@127.0.0.1:$SOGO_PG_PORT/sogo"
  cat >"$d/gnustep/GNUstep.conf" <<EOF
GNUSTEP_USER_DIR=$d/gnustep
GNUSTEP_USER_DEFAULTS_DIR=$d/gnustep/defaults
EOF
  cat >"$d/gnustep/defaults/sogod.plist" <<EOF
{
  WOPort = "127.0.0.1:$SOGO_PORT";
  WOWorkersCount = ${SOGO_WORKERS:-3};
  WOLogFile = "-";
  WOPidFile = "$d/sogod.pid";
  WONoDetach = YES;
  SOGoProfileURL = "$pg/sogo_user_profile";
  OCSFolderInfoURL = "$pg/sogo_folder_info";
  OCSSessionsFolderURL = "$pg/sogo_sessions_folder";
  OCSEMailAlarmsFolderURL = "$pg/sogo_alarms_folder";
  SOGoUserSources = (
    {
      type = sql;
      id = users;
      viewURL = "$pg/sogo_users";
      canAuthenticate = YES;
      isAddressBook = NO;
      userPasswordAlgorithm = plain;
    }
  );
  SOGoMailDomain = "example.test";
  SOGoLanguage = English;
  SOGoTimeZone = UTC;
  SOGoMailingMechanism = smtp;
  SOGoSMTPServer = "smtp://127.0.0.1:$SOGO_SMTP_PORT";
  SOGoIMAPServer = "imap://127.0.0.1:$SOGO_IMAP_PORT";
  SOGoSieveScriptsEnabled = NO;
  SOGoVacationEnabled = NO;
  SOGoForwardEnabled = NO;
  SOGoSentFolderName = Sent;
  SOGoTrashFolderName = Trash;
  SOGoDraftsFolderName = Drafts;
  SOGoMemcachedHost = "127.0.0.1:$SOGO_MC_PORT";
  SOGoMaximumPingInterval = ${SOGO_PING_MAX:-5};
  SOGoMaximumSyncInterval = ${SOGO_PING_MAX:-5};
  SOGoInternalSyncInterval = ${SOGO_SYNC_INTERVAL:-5};
  SOGoEASDebugEnabled = ${SOGO_EAS_DEBUG:-NO};
  SOGoAppointmentSendEMailNotifications = NO;
}
EOF
  if [ "$(id -u)" = 0 ]; then chown -R "$SOGO_USER:" "$d/gnustep"; fi
  eg_start sogod "${SOGO_RUNAS[@]}" env HOME="$d/gnustep" GNUSTEP_CONFIG_FILE="$d/gnustep/GNUstep.conf" \
    /usr/sbin/sogod
  SOGO_PIDS+=("$sogod_pid")

  eg_wait_port "$SOGO_MC_PORT"
  eg_wait_port "$SOGO_SMTP_PORT"
  eg_wait_port "$SOGO_PORT"
  sogo_wait_answer
  SOGO_UP_MS=$((($(date +%s%N) - t0) / 1000000))
  echo "sogo_up: SOGo, PostgreSQL, Dovecot, memcached and the SMTP sink ready in ${SOGO_UP_MS} ms"
}

# Stops in order: sogod first (its children hold database and IMAP
# connections), PostgreSQL with SIGINT (fast shutdown: SIGTERM would wait for
# clients), the others with SIGTERM. sogod's watchdog passes SIGTERM on to
# its children, but an idle child only acts on it when its run loop next
# wakes up (measured: 10 s to never); so children still there after 2 s get
# SIGKILL, by pid (they are ours: the children of the sogod we started), and
# the watchdog then exits as it sees them go.
sogo_down() {
  local pid kids
  if [ -n "${sogod_pid:-}" ] && kill -0 "$sogod_pid" 2>/dev/null; then
    kids=$(pgrep -P "$sogod_pid" || true)
    kill -TERM "$sogod_pid" 2>/dev/null || true
    for _ in $(seq 20); do kill -0 "$sogod_pid" 2>/dev/null || break; sleep 0.1; done
    # shellcheck disable=SC2086 # one pid per word; some may be gone already
    [ -z "$kids" ] || kill -KILL $kids 2>/dev/null || true
    sogo_stop_pid "$sogod_pid" TERM
  fi
  if [ -n "${sogo_postgres_pid:-}" ]; then sogo_stop_pid "$sogo_postgres_pid" INT; fi
  for pid in "${SOGO_PIDS[@]}"; do sogo_stop_pid "$pid" TERM; done
  SOGO_PIDS=()
  return 0
}

sogo_stop_pid() { # PID SIGNAL: signal, then wait up to 10 s
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -"$2" "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  return 0
}

# At exit the test's status stands: a failure here must neither change it
# nor keep eg_cleanup from running (the trap runs under set -e).
trap 'sogo_down || true; eg_cleanup' EXIT
