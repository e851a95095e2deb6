"""A minimal NTLMv2 client for the integration tests (MS-NLMP 3.1.5, 3.3.2).

Python's hashlib lacks MD4 when OpenSSL's legacy provider is not loaded, so
MD4 (RFC 1320) is written out here; it only ever hashes test passwords.

negotiate()                  -> NEGOTIATE message bytes
authenticate(chal, user, pw, domain="")
                             -> AUTHENTICATE message bytes answering the
                                CHALLENGE message chal
spnego_resp(token)           -> token wrapped as a SPNEGO NegTokenResp
header(scheme, msg)          -> "Authorization" value, e.g. "NTLM TlRMTVNT..."
challenge_from(www)          -> the CHALLENGE bytes in a WWW-Authenticate value
"""
import base64
import hmac
import os
import struct


def _md4(data):
    def f(x, y, z):
        return (x & y) | (~x & z)

    def g(x, y, z):
        return (x & y) | (x & z) | (y & z)

    def h(x, y, z):
        return x ^ y ^ z

    def rol(v, s):
        v &= 0xFFFFFFFF
        return ((v << s) | (v >> (32 - s))) & 0xFFFFFFFF

    msg = bytearray(data)
    bitlen = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    msg += struct.pack("<Q", bitlen)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            if i % 4 == 0:
                a = rol(a + f(b, c, d) + x[k], s)
            elif i % 4 == 1:
                d = rol(d + f(a, b, c) + x[k], s)
            elif i % 4 == 2:
                c = rol(c + f(d, a, b) + x[k], s)
            else:
                b = rol(b + f(c, d, a) + x[k], s)
        order = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
        for i in range(16):
            k, s = order[i], (3, 5, 9, 13)[i % 4]
            t = 0x5A827999
            if i % 4 == 0:
                a = rol(a + g(b, c, d) + x[k] + t, s)
            elif i % 4 == 1:
                d = rol(d + g(a, b, c) + x[k] + t, s)
            elif i % 4 == 2:
                c = rol(c + g(d, a, b) + x[k] + t, s)
            else:
                b = rol(b + g(c, d, a) + x[k] + t, s)
        order = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
        for i in range(16):
            k, s = order[i], (3, 9, 11, 15)[i % 4]
            t = 0x6ED9EBA1
            if i % 4 == 0:
                a = rol(a + h(b, c, d) + x[k] + t, s)
            elif i % 4 == 1:
                d = rol(d + h(a, b, c) + x[k] + t, s)
            elif i % 4 == 2:
                c = rol(c + h(d, a, b) + x[k] + t, s)
            else:
                b = rol(b + h(c, d, a) + x[k] + t, s)
        a, b, c, d = [(v + w) & 0xFFFFFFFF for v, w in zip((a, b, c, d), (aa, bb, cc, dd))]
    return struct.pack("<4I", a, b, c, d)


assert _md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"  # RFC 1320 A.5

FLAGS = 0x00000001 | 0x00000004 | 0x00000200 | 0x00008000 | 0x00080000 | 0x00800000 | 0xE0000000


def negotiate():
    return b"NTLMSSP\0" + struct.pack("<II", 1, FLAGS) + b"\0" * 16


def _field(buf, payload, data, base):
    off = base + len(payload)
    return struct.pack("<HHI", len(data), len(data), off), payload + data


def authenticate(chal, user, pw, domain=""):
    assert chal[:8] == b"NTLMSSP\0" and struct.unpack("<I", chal[8:12])[0] == 2
    server_challenge = chal[24:32]
    ti_len, _, ti_off = struct.unpack("<HHI", chal[40:48])
    target_info = chal[ti_off:ti_off + ti_len]
    nt_hash = _md4(pw.encode("utf-16-le"))
    key = hmac.new(nt_hash, (user.upper() + domain).encode("utf-16-le"), "md5").digest()
    blob = b"\x01\x01\0\0\0\0\0\0" + b"\0" * 8 + os.urandom(8) + b"\0\0\0\0" + target_info + b"\0\0\0\0"
    proof = hmac.new(key, server_challenge + blob, "md5").digest()
    nt = proof + blob
    lm = b"\0" * 24
    fields = [lm, nt, domain.encode("utf-16-le"), user.encode("utf-16-le"),
              "PHONE".encode("utf-16-le"), b""]
    base = 64 + 8 + 16
    payload, heads = b"", b""
    for data in fields:
        h, payload = _field(None, payload, data, base)
        heads += h
    return (b"NTLMSSP\0" + struct.pack("<I", 3) + heads + struct.pack("<I", FLAGS)
            + b"\0" * 8 + b"\0" * 16 + payload)


def _tlv(tag, value):
    n = len(value)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = bytes([0x81, n])
    else:
        ln = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + ln + value


def spnego_resp(token):
    seq = _tlv(0xA0, b"\x0a\x01\x01") + _tlv(0xA2, _tlv(0x04, token))
    return _tlv(0xA1, _tlv(0x30, seq))


def header(scheme, msg):
    return "%s %s" % (scheme, base64.b64encode(msg).decode())


def challenge_from(www):
    for part in www.split(","):
        part = part.strip()
        for scheme in ("NTLM ", "Negotiate "):
            if part.startswith(scheme):
                return base64.b64decode(part[len(scheme):])
    return None
