#!/usr/bin/env bash
# Every held Ping is cut on a state change, whatever its form (issue 14.2):
# with a body, with Content-Length: 0, with no length header at all, a
# base64 query, a chunked body, a chunked empty body, HTTP/1.0. Each form:
# the Ping is held (exsim would hold it 30 s), the core blocks the device
# (HSET + PUBLISH), and the phone must have its answer (the blocked form:
# HTTP 200, Ping Status 129) within 1 s.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
for t in redis-server redis-cli python3; do
  command -v $t >/dev/null || { echo "no $t"; exit 77; }
done
for b in easgate exsim; do
  [ -x "$BUILD/$b" ] || { echo "no $b in $BUILD"; exit 77; }
done

eg_exsim --ping-cap 60
cat >"$TMP/policy.yaml" <<'EOF'
unknown_devices: allow
EOF
eg_stack -w 1 proxy - <<'EOF'
  sighting_interval: 1h
EOF
"$BUILD/easgate" wbxml encode >"$TMP/ping.wbxml" <<<'<Ping xmlns="Ping"><HeartbeatInterval>30</HeartbeatInterval><Folders><Folder><Id>1</Id><Class>Email</Class></Folder></Folders></Ping>'

core_set() { # DEVICE STATE VERSION
  redis-cli -p "$redis_port" >/dev/null <<EOF
MULTI
HSET easgate:dev:$1 state $2 user "" reason test version $3 updated 0
PUBLISH easgate:changed "$1 $3"
EXEC
EOF
}

# ping.py FORM DEVICE: sends one Ping of that form, prints "STATUS BODYHEX"
# once answered.
cat >"$TMP/ping.py" <<'PY'
import base64, socket, struct, sys
form, dev, port, body_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
body = open(body_file, "rb").read()
q = f"Cmd=Ping&User=alice&DeviceId={dev}&DeviceType=iPhone"
if form == "base64":
    d, t = dev.encode(), b"iPhone"
    q = base64.b64encode(struct.pack("<BBH", 141, 18, 0x0409) + bytes([len(d)]) + d + b"\0" +
                         bytes([len(t)]) + t).decode()
ver = "1.0" if form == "http10" else "1.1"
head = [f"POST /Microsoft-Server-ActiveSync?{q} HTTP/{ver}", "Host: x", "User-Agent: Apple-iPhone/1",
        "X-Exsim-Hold-Ms: 30000"]
if form != "base64":
    head.append("MS-ASProtocolVersion: 14.1")
data = b""
if form in ("body", "base64", "http10"):
    head.append(f"Content-Length: {len(body)}"); data = body
elif form == "cl0":
    head.append("Content-Length: 0")
elif form == "chunked":
    head.append("Transfer-Encoding: chunked"); data = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
elif form == "chunked0":
    head.append("Transfer-Encoding: chunked"); data = b"0\r\n\r\n"
s = socket.create_connection(("127.0.0.1", port), timeout=40)
s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(65536)
    if not d:
        break
    buf += d
hd, _, rest = buf.partition(b"\r\n\r\n")
status = hd.split(b" ")[1].decode() if hd else "closed"
length = 0
for line in hd.split(b"\r\n")[1:]:
    k, _, v = line.partition(b":")
    if k.strip().lower() == b"content-length":
        length = int(v)
while len(rest) < length:
    d = s.recv(65536)
    if not d:
        break
    rest += d
print(status, rest.hex())
PY
ms_now() { echo $(($(date +%s%N) / 1000000)); }

n=0
for form in body cl0 nolength base64 chunked chunked0 http10; do
  n=$((n + 1))
  dev="PCUT$n"
  python3 "$TMP/ping.py" "$form" "$dev" "$proxy_port" "$TMP/ping.wbxml" >"$TMP/$form.out" 2>&1 &
  pid=$!
  # held: exsim has it (it counts held Pings), the phone has no answer
  for _ in $(seq 50); do
    [ "$(curl -s "http://127.0.0.1:$exsim_port/exsim/stats" | sed 's/.*"held":\([0-9]*\).*/\1/')" = 1 ] && break
    sleep 0.05
  done
  kill -0 $pid 2>/dev/null || eg_fail "$form: the Ping was answered before the block: $(cat "$TMP/$form.out")"
  sleep 0.2
  t0=$(ms_now)
  core_set "$dev" block 1
  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.01; done
  cut=$(($(ms_now) - t0))
  kill -0 $pid 2>/dev/null && { kill $pid; eg_fail "$form: the held Ping was not cut 1 s after the block"; }
  wait $pid || true
  read -r status hex <"$TMP/$form.out" || true
  [ "$status" = 200 ] && [[ $hex == *03313239* ]] ||
    eg_fail "$form: answer '$status $hex', want 200 with Status 129"
  [ $cut -lt 1000 ] || eg_fail "$form: cut $cut ms after the block (want < 1000)"
  echo "$form: cut $cut ms after the block"
  for _ in $(seq 50); do
    [ "$(curl -s "http://127.0.0.1:$exsim_port/exsim/stats" | sed 's/.*"held":\([0-9]*\).*/\1/')" = 0 ] && break
    sleep 0.05
  done
done
eg_pass "a held Ping is cut within 1 s of a block in every form (body, Content-Length: 0, no length, base64 query, chunked, chunked empty, HTTP/1.0)"
