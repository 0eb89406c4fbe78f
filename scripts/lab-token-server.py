#!/usr/bin/python3
"""Token server of the test lab (started by scripts/lab.sh registry DIR PORT --token).

Implements the Docker registry token protocol the way Docker Hub, ghcr.io and Harbor do, so the
CLI's bearer-token code meets a real registry (distribution 2.8 with `auth: token`) in tests:

    GET  /token?service=S&scope=repository:NAME:pull,push&scope=...&account=U   [Basic auth]
    POST /token   (OAuth2 form: grant_type=password, username, password, service, scope)
    GET  /healthz (readiness probe of lab.sh)

Policy: anonymous callers get `pull` on any repository, callers whose Basic credentials match
a line USER:PASS of the users file get `pull` and `push`; wrong credentials get 401. Actions not
granted are left out of the token's `access` claim (as real token servers do), and the registry
then answers 401 insufficient_scope.

Tokens are ES256 JWTs whose header carries the signing certificate in `x5c`; distribution
verifies that chain against its `rootcertbundle` (x509 with ExtKeyUsageAny) and reads `aud` as a
single string, which is what this server writes.

Every request is logged as one JSON object per line to the log file named in the config, with
passwords in the query redacted, whether Basic credentials (or a password in a POST body) came
along, and whether the request came over http or https: tests assert from it that no credentials
were sent over plain http.

Usage: lab-token-server.py CONFIG.json   (written by lab.sh; keys: see load_config)
Standard library plus python3-cryptography (Debian's package; hence /usr/bin/python3).
"""

import base64
import binascii
import datetime
import errno
import hmac
import http.server
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# Query and form fields whose values never reach the log.
SECRET_FIELDS = ("password", "passwd", "pass", "secret", "client_secret", "refresh_token",
                 "token", "access_token")
SECRET_RE = re.compile(r"(^|&)(%s)=[^&]*" % "|".join(SECRET_FIELDS), re.IGNORECASE)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc3339(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def redact(query):
    return SECRET_RE.sub(lambda m: "%s%s=REDACTED" % (m.group(1), m.group(2)), query)


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    for key in ("port", "port_file", "log", "users", "service", "issuer", "signing_key",
                "signing_cert", "ttl"):
        if key not in cfg:
            sys.exit("lab-token-server: config lacks %r" % key)
    return cfg


def load_signer(cfg):
    with open(cfg["signing_key"], "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        sys.exit("lab-token-server: signing key must be EC P-256 (ES256)")
    with open(cfg["signing_cert"], "rb") as f:
        pem = f.read()
    # x5c: the chain from the signing certificate up, as standard base64 DER (RFC 7515 4.1.6).
    chain = []
    for block in re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem,
                            re.DOTALL):
        cert = x509.load_pem_x509_certificate(block)
        chain.append(base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode())
    if not chain:
        sys.exit("lab-token-server: no certificate in %s" % cfg["signing_cert"])
    return key, chain


def parse_scopes(values):
    """Scope parameters, each possibly holding several space-separated scopes, as
    [(type, name, [actions])]. The name sits between the first and the last colon, so a
    `type(class)` prefix or an odd name does not shift the actions."""
    out = []
    for value in values:
        for scope in value.split():
            first, last = scope.find(":"), scope.rfind(":")
            if first < 0 or last <= first:
                continue
            actions = [a for a in scope[last + 1:].split(",") if a]
            out.append((scope[:first], scope[first + 1:last], actions))
    return out


def grant(scopes, allowed):
    """The `access` claim: requested repository actions that policy allows, merged per
    repository, in request order; anything else is left out."""
    access, index = [], {}
    for typ, name, actions in scopes:
        if typ != "repository":
            continue
        granted = [a for a in actions if a in allowed]
        if not granted:
            continue
        if (typ, name) in index:
            entry = index[(typ, name)]
            entry["actions"] += [a for a in granted if a not in entry["actions"]]
        else:
            entry = {"type": typ, "name": name, "actions": list(dict.fromkeys(granted))}
            index[(typ, name)] = entry
            access.append(entry)
    return access


class TokenServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cfg, tls_context):
        self.cfg = cfg
        self.tls_context = tls_context
        self.scheme = "https" if tls_context else "http"
        self.signing_key, self.x5c = load_signer(cfg)
        self.log_lock = threading.Lock()
        self.log_file = open(cfg["log"], "a", encoding="utf-8")
        super().__init__(("127.0.0.1", int(cfg["port"])), Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the request's own thread, so a client that stalls in
        # it cannot hold up accept() for everyone else.
        if self.tls_context:
            request.settimeout(10)
            request = self.tls_context.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        # A client that gives up during the handshake is not worth a traceback in the log.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, socket.timeout)):
            return
        super().handle_error(request, client_address)

    def check_user(self, user, password):
        try:
            with open(self.cfg["users"], encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return False
        ok = False
        for line in lines:
            name, sep, secret = line.partition(":")
            if sep and hmac.compare_digest(name.encode(), user.encode()):
                # Keep comparing the rest: no early exit that times the file.
                ok = hmac.compare_digest(secret.encode(), password.encode()) or ok
        return ok

    def sign(self, subject, audience, access):
        now = int(time.time())
        ttl = int(self.cfg["ttl"])
        header = {"typ": "JWT", "alg": "ES256", "x5c": self.x5c}
        claims = {
            "iss": self.cfg["issuer"],
            "sub": subject,
            "aud": audience,
            "exp": now + ttl,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = "%s.%s" % (
            b64url(json.dumps(header, separators=(",", ":")).encode()),
            b64url(json.dumps(claims, separators=(",", ":")).encode()),
        )
        der = self.signing_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        # JWS wants r||s, 32 bytes each, not the DER sequence cryptography returns.
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return "%s.%s" % (signing_input, b64url(signature)), now, ttl

    def log(self, record):
        line = json.dumps(record, sort_keys=True)
        with self.log_lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "velero-airgap-lab-token/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        # The JSON request log replaces http.server's stderr lines.
        pass

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        self.record = {
            "time": rfc3339(time.time()),
            "scheme": self.server.scheme,
            "method": method,
            "path": url.path,
            "query": redact(url.query),
            "basic_auth": False,
            "password_in_body": False,
            "user": None,
            "granted": [],
        }
        try:
            if url.path == "/healthz" and method == "GET":
                self.reply(200, {"status": "ok"})
            elif url.path == "/token" and method == "GET":
                self.token_get(urllib.parse.parse_qs(url.query, keep_blank_values=True))
            elif url.path == "/token" and method == "POST":
                self.token_post()
            else:
                self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
        finally:
            self.server.log(self.record)

    def basic_credentials(self):
        """(user, password) from an Authorization: Basic header, or None. A malformed header
        counts as sent (it may still carry a secret) but never matches a user."""
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        self.record["basic_auth"] = True
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode(
                "utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ("", "\0")
        return (user, password)

    def token_get(self, query):
        creds = self.basic_credentials()
        user = ""
        if creds is not None:
            user, password = creds
            self.record["user"] = user
            if not self.server.check_user(user, password):
                self.unauthorized()
                return
        self.issue(user, query.get("service", [""])[0], query.get("scope", []), post=False)

    def token_post(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        self.record["body"] = redact(body)
        form = urllib.parse.parse_qs(body, keep_blank_values=True)
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != "password":
            # refresh_token is not implemented: clients fall back to GET on 400.
            self.reply(400, {"error": "unsupported_grant_type"})
            return
        user = form.get("username", [""])[0]
        password = form.get("password", [""])[0]
        self.record["password_in_body"] = "password" in form
        self.record["user"] = user
        if not self.server.check_user(user, password):
            self.reply(401, {"error": "invalid_grant"})
            return
        self.issue(user, form.get("service", [""])[0], form.get("scope", []), post=True)

    def issue(self, user, service, scope_values, post):
        allowed = ("pull", "push") if user else ("pull",)
        access = grant(parse_scopes(scope_values), allowed)
        # The audience is the service the client asked for, as Harbor does: a client that
        # sends the wrong one gets a token the registry rejects.
        token, now, ttl = self.server.sign(user, service or self.server.cfg["service"], access)
        self.record["granted"] = ["%s:%s:%s" % (a["type"], a["name"], ",".join(a["actions"]))
                                  for a in access]
        if post:
            body = {"access_token": token, "scope": " ".join(self.record["granted"]),
                    "expires_in": ttl, "issued_at": rfc3339(now)}
        else:
            body = {"token": token, "access_token": token, "expires_in": ttl,
                    "issued_at": rfc3339(now)}
        self.reply(200, body)

    def unauthorized(self):
        self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                     "message": "incorrect username or password"}]},
                   {"WWW-Authenticate": 'Basic realm="velero-airgap-lab-token"'})

    def reply(self, status, body, headers=None):
        self.record["status"] = status
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[-2])
    cfg = load_config(sys.argv[1])
    tls_context = None
    if cfg.get("tls_cert"):
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.load_cert_chain(cfg["tls_cert"], cfg["tls_key"])
    try:
        server = TokenServer(cfg, tls_context)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            # lab.sh greps its log for this phrase and exits 3 so the caller retries.
            print("lab-token-server: address already in use", file=sys.stderr)
            sys.exit(1)
        raise
    port = server.server_address[1]
    # Written after bind and renamed into place, so lab.sh never reads a half-written port
    # and the port it reads is ours (port 0 picks a free one without a race).
    tmp = cfg["port_file"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % port)
    os.replace(tmp, cfg["port_file"])
    print("lab-token-server: listening on 127.0.0.1:%d (%s)" % (port, server.scheme),
          file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
