#!/usr/bin/python3
"""A real SMTP server for the notification tests: Debian's aiosmtpd on
loopback, STARTTLS required (the dev PKI's certificate), AUTH PLAIN/LOGIN
against one user and password, every accepted message written as received
(bytes, CRLF, no rewriting) into a Maildir. Runs until SIGTERM.

usage: smtp_sink.py PORT MAILDIR CERT KEY USER PASSWORD [implicit]

With "implicit" the server speaks TLS from the first byte (SMTPS, RFC 8314
implicit TLS, as on port 465) and offers no STARTTLS.
"""
import mailbox
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir, cert, key, user, password = sys.argv[1:7]
implicit = sys.argv[7:8] == ["implicit"]
box = mailbox.Maildir(maildir, create=True)


class Sink:
    async def handle_DATA(self, server, session, envelope):
        # The raw bytes as they came (dot-unstuffed): what a client of this
        # mailbox would read. X-Envelope-To records the RCPT TO.
        raw = envelope.original_content
        head = ("X-Envelope-To: %s\r\nX-Envelope-From: %s\r\n"
                % (",".join(envelope.rcpt_tos), envelope.mail_from)).encode()
        box.add(head + raw)
        return "250 OK"


def auth(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword) and data.login.decode() == user
          and data.password.decode() == password)
    return AuthResult(success=ok)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
if implicit:
    # aiosmtpd wraps the listening socket itself: TLS before the greeting
    c = Controller(Sink(), hostname="127.0.0.1", port=int(port), ssl_context=ctx,
                   authenticator=auth, auth_required=True, auth_require_tls=False)
else:
    c = Controller(Sink(), hostname="127.0.0.1", port=int(port), tls_context=ctx,
                   require_starttls=True, authenticator=auth, auth_required=True,
                   auth_require_tls=True)
c.start()
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
signal.signal(signal.SIGINT, lambda *a: done.set())
print("listening", flush=True)
done.wait()
c.stop()
