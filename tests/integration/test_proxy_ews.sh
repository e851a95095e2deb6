#!/usr/bin/env bash
# EWS push subscriptions, read by a real XML parser. With
# ews.allow_subscriptions, a POST to /EWS/ passes only when the one element
# of its SOAP Body is Subscribe, GetEvents, GetStreamingEvents or
# Unsubscribe in the EWS messages namespace. Real-looking requests (as
# Outlook for iOS / Apple Mail send them) pass; comments, CDATA, processing
# instructions, prefixes bound to other namespaces, a second operation, a
# Subscribe in the header and DTD entities do not smuggle another
# operation through (403, nothing reaches Exchange); the proxy keeps serving.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || exit 77

up_port=$(eg_port) proxy_port=$(eg_port) admin_port=$(eg_port)
cat >"$TMP/policy.yaml" <<YAML
unknown_devices: allow
ews: { allow_subscriptions: true }
YAML
cat >"$TMP/easgate.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$admin_port
  instances:
    - name: t
      listen: 127.0.0.1:$proxy_port
      upstream: { url: http://127.0.0.1:$up_port }
policy: $TMP/policy.yaml
log: { access: "$TMP/access.log", level: info }
YAML
eg_start upstream python3 "$SRC/tests/integration/capture_upstream.py" "$up_port" "$TMP/capture.jsonl"
eg_wait_port "$up_port"
eg_stack proxy "$TMP/easgate.yaml"

out=$(python3 - "$proxy_port" "$TMP/capture.jsonl" <<'PY' 2>&1) || eg_fail "EWS bodies: $out"
import json, socket, sys, time
port, cap = int(sys.argv[1]), sys.argv[2]
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
MSG = "http://schemas.microsoft.com/exchange/services/2006/messages"
TYP = "http://schemas.microsoft.com/exchange/services/2006/types"
HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n'
        '<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:m="%s" xmlns:t="%s" xmlns:soap="%s">\n'
        '  <soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header>\n'
        '  <soap:Body>\n' % (MSG, TYP, SOAP))
TAIL = '\n  </soap:Body>\n</soap:Envelope>\n'

def env(body):
    return HEAD + body + TAIL

SUBSCRIBE = ('<m:Subscribe><m:PushSubscriptionRequest SubscribeToAllFolders="true">'
             '<t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>'
             '<t:StatusFrequency>30</t:StatusFrequency>'
             '<t:URL>https://push.example/ews</t:URL></m:PushSubscriptionRequest></m:Subscribe>')
FIND = ('<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape>'
        '</m:ItemShape><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/>'
        '</m:ParentFolderIds></m:FindItem>')
GETITEM = ('<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>'
           '<m:ItemIds><t:ItemId Id="AAMk"/></m:ItemIds></m:GetItem>')

allowed = {
    "Subscribe (push)": env(SUBSCRIBE),
    "Subscribe with comments and a PI around": env('<!-- push -->\n<?app x?>' + SUBSCRIBE + '<!-- end -->'),
    "GetEvents": env('<m:GetEvents><m:SubscriptionId>abc</m:SubscriptionId>'
                     '<m:Watermark>AAAA</m:Watermark></m:GetEvents>'),
    "GetStreamingEvents": env('<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>abc'
                              '</t:SubscriptionId></m:SubscriptionIds>'
                              '<m:ConnectionTimeout>30</m:ConnectionTimeout></m:GetStreamingEvents>'),
    "Unsubscribe": env('<m:Unsubscribe><m:SubscriptionId>abc</m:SubscriptionId></m:Unsubscribe>'),
    "default namespace": env('<Subscribe xmlns="%s"><PullSubscriptionRequest/></Subscribe>' % MSG),
    "other prefix": env('<ews:Subscribe xmlns:ews="%s"/>' % MSG),
    "SOAP 1.2": '<e:Envelope xmlns:e="%s"><e:Body><m:GetEvents xmlns:m="%s"/></e:Body></e:Envelope>' % (SOAP12, MSG),
}
refused = {
    "FindItem": env(FIND),
    "Subscribe in a comment": env('<!--<m:Subscribe/>-->' + FIND),
    "Subscribe in a comment, the issue's form": env('<!-- <m:Subscribe/> -->\n' + GETITEM),
    "Header closed inside a comment": HEAD.replace('</soap:Header>', '<!-- </soap:Header><soap:Body>'
                                                   + SUBSCRIBE + '</soap:Body> --></soap:Header>') + FIND + TAIL,
    "Header closed inside CDATA": HEAD.replace('</soap:Header>', '<t:x><![CDATA[</soap:Header><soap:Body>'
                                               + SUBSCRIBE + '</soap:Body>]]></t:x></soap:Header>') + GETITEM + TAIL,
    "Subscribe in CDATA": env('<![CDATA[<m:Subscribe/>]]>' + GETITEM),
    "Subscribe in a PI": env('<?x <m:Subscribe/> ?>' + FIND),
    "prefix bound to the types namespace": env('<m:Subscribe xmlns:m="%s"/>' % TYP),
    "prefix rebound on the Body": HEAD.replace('<soap:Body>', '<soap:Body xmlns:m="urn:x">') + '<m:Subscribe/>' + TAIL,
    "no namespace": env('<Subscribe/>'),
    "fake SOAP namespace": env(SUBSCRIBE).replace(SOAP, "urn:soap"),
    "Subscribe then FindItem": env(SUBSCRIBE + FIND),
    "FindItem then Subscribe": env(FIND + SUBSCRIBE),
    "Subscribe in the header": HEAD.replace('</soap:Header>', SUBSCRIBE + '</soap:Header>') + FIND + TAIL,
    "Body in the header": HEAD.replace('<soap:Header>', '<soap:Header><soap:Body>' + SUBSCRIBE + '</soap:Body>') + FIND + TAIL,
    "second envelope": env(SUBSCRIBE) + env(FIND),
    "entity": '<!DOCTYPE soap:Envelope [<!ENTITY s "<m:Subscribe/>">]>' + env('&s;'),
    "external entity": '<!DOCTYPE soap:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + env(SUBSCRIBE + '&x;'),
    "billion laughs": '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                      '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>' + env(SUBSCRIBE + '<x>&c;</x>'),
    "not closed": env(SUBSCRIBE)[:-20],
    "deep": env('<m:Subscribe>' + '<t:x>' * 3000 + '</t:x>' * 3000 + '</m:Subscribe>'),
    "text beside": env('hello' + SUBSCRIBE),
    "not XML": "Subscribe",
}

def captured():
    try:
        return [json.loads(l) for l in open(cap)]
    except FileNotFoundError:
        return []

def post(body):
    b = body.encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: mail.example.com\r\n"
              b"Content-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
    d = b""
    while b"\r\n\r\n" not in d:
        x = s.recv(65536)
        if not x:
            break
        d += x
    s.close()
    return int(d.split()[1]) if d.startswith(b"HTTP/1.") else 0

for name, body in allowed.items():
    n = len(captured())
    st = post(body)
    time.sleep(0.05)
    new = captured()[n:]
    assert st == 200 and len(new) == 1, (name, st, new)
    assert new[0]["body_len"] == len(body.encode()), (name, "forwarded", new[0]["body_len"])
print("%d subscriptions passed" % len(allowed))
passed = []
for name, body in refused.items():
    n = len(captured())
    st = post(body)
    time.sleep(0.05)
    if st != 403 or len(captured()) != n:
        passed.append((name, st))
assert not passed, ("passed the gate", passed)
print("%d other bodies refused" % len(refused))
assert post(env(SUBSCRIBE)) == 200
print("still serving")
PY
grep -q "8 subscriptions passed" <<<"$out" || eg_fail "subscriptions: $out"
grep -q "23 other bodies refused" <<<"$out" || eg_fail "other bodies: $out"
grep -q "still serving" <<<"$out" || eg_fail "after the refusals: $out"
grep -q '"reason":"ews-not-subscription","status":403' "$TMP/access.log" || eg_fail "access log: no ews-not-subscription"
eg_stop_clean proxy
eg_pass "EWS: only subscriptions pass, read by libxml2"
