"""A small local stand-in for Azure Resource Manager, Entra ID's token endpoint and Key Vault.

Azure has no emulator for these, so the sandbox and the tests point the real SDK clients at
this: the real azure-identity ``ClientSecretCredential``, the real azure-mgmt-rdbms client
driving a MySQL Flexible Server (get, start, stop and update as long-running operations polled
through ``Azure-AsyncOperation``, firewall rules, databases, error responses injected on
demand) and the real azure-keyvault-secrets client reading and setting secrets.

Key Vault's client insists, rightly, that the vault's host name lies under the domain its
authentication challenge names (``*.vault.azure.net``). So the vault is reached by its real
name, ``https://VAULT.vault.azure.net``, through an HTTPS proxy (as a locked-down network
would have one) that tunnels only that domain here; the certificate names the domain too.
One port serves both: a connection that starts with a TLS handshake is the API, one that
starts with ``CONNECT`` is the proxy.

Run on its own (the sandbox's ``azure`` service): ``python -m drkit.sandbox.azure_standin
PORT DIRECTORY [CLIENT_SECRET_FILE]``; it writes its certificate to DIRECTORY/standin.pem.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import secrets
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drkit.sandbox.services import CONTAINER, STORAGE_ACCOUNT

VAULT_DOMAIN = ".vault.azure.net"
SANDBOX_TENANT = "00000000-0000-4000-8000-000000000001"
SANDBOX_SERVER = "drkit-sandbox-dr"
_SECRET = re.compile(r"^/secrets/([0-9A-Za-z-]+)/?$")
_STORAGE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                      r"Microsoft\.Storage/storageAccounts/([^/]+)$")
_POLICY = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                     r"Microsoft\.Storage/storageAccounts/([^/]+)/blobServices/default/"
                     r"containers/([^/]+)/immutabilityPolicies/default$")
_SERVER = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                     r"Microsoft\.DBforMySQL/flexibleServers/([^/]+)(/.*)?$")


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "arm-standin")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
             x509.DNSName("*" + VAULT_DOMAIN)]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "standin.pem", directory / "standin.key"
    key_bytes = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    for path, data, mode in ((key_path, key_bytes, 0o600),
                             (cert_path, certificate.public_bytes(serialization.Encoding.PEM),
                              0o644)):
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        partial.replace(path)  # whole or not at all, for whoever reads it meanwhile
    return cert_path, key_path


@dataclass
class _Request:
    handler: BaseHTTPRequestHandler
    method: str
    path: str
    body: bytes

    @property
    def token(self) -> str:
        return self.handler.headers.get("Authorization", "").removeprefix("Bearer ")

    @property
    def host(self) -> str:
        return self.handler.headers.get("Host", "").split(":")[0]


@dataclass
class _ServerCall:
    """A request to a Flexible Server that exists."""

    request: _Request
    operation: str  # get, start, stop, update, firewall, database
    name: str
    server: dict
    child: str  # the firewall rule's or database's name


# The operation a request to a server names (``fail_next``'s keys), by its method and what
# follows the server's path.
_OPERATIONS = {("GET", ""): "get", ("POST", "/start"): "start", ("POST", "/stop"): "stop",
               ("PATCH", ""): "update", ("PUT", "/firewallRules/"): "firewall",
               ("PUT", "/databases/"): "database"}
_SERVER_CHILD = re.compile(r"^/(?:firewallRules|databases)/")


def _server_operation(method: str, below: str) -> str | None:
    child = _SERVER_CHILD.match(below)
    return _OPERATIONS.get((method, child.group() if child else below))


class _Server(ThreadingHTTPServer):
    """One port for the API (a connection that starts with a TLS handshake) and the proxy
    (one that starts with ``CONNECT``)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: ArmStandIn,
                 tls: ssl.SSLContext) -> None:
        self.standin, self.tls = standin, tls
        super().__init__(address, _Handler)

    def get_request(self):
        connection, address = self.socket.accept()
        connection.settimeout(30)
        try:
            first = connection.recv(1, socket.MSG_PEEK)
        except OSError:
            first = b""
        if first == b"\x16":  # a TLS handshake: the API itself
            connection = self.tls.wrap_socket(connection, server_side=True,
                                              do_handshake_on_connect=False)
        return connection, address


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args):  # quiet
        pass

    def do_CONNECT(self):
        self.server.standin._tunnel(self)

    def _request(self):
        self.server.standin._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _request


class ArmStandIn:
    """Start with ``start()``; ``url``, ``ca_bundle``; inspect ``servers`` and ``requests``."""

    def __init__(self, directory: Path, polls_until_done: int = 2,
                 client_secret: str | None = None) -> None:
        self.ca_bundle, self._key = _certificate(directory)
        self.client_secret = client_secret  # None: any client secret gets a token
        self.polls_until_done = polls_until_done
        self.servers: dict[str, dict] = {}
        self.firewall_rules: dict[str, dict] = {}
        self.databases: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_next: dict[str, tuple[int, str, str]] = {}  # operation -> status, code, text
        self._operations: dict[str, dict] = {}
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self.vault: dict[str, str] = {}  # Key Vault secrets by name
        self.storage_accounts: dict[str, str] = {}  # name -> static website endpoint
        # (account, container) -> its time-based retention: {"days": 30, "state": "Locked"}
        self.immutability_policies: dict[tuple[str, str], dict] = {}
        self.tenant = SANDBOX_TENANT
        self._httpd: ThreadingHTTPServer | None = None

    def add_server(self, name: str, state: str = "Stopped", sku: str = "Standard_B1ms",
                   storage_gb: int = 20, host: str = "127.0.0.1") -> None:
        self.servers[name] = {"state": state, "sku": sku, "storage_gb": storage_gb,
                              "host": host}

    def transition(self, name: str, state: str, settles_to: str, after_reads: int = 2) -> None:
        """Put a server in a transition (Stopping...) that ends after a few reads."""
        self.servers[name].update(state=state, settles_to=settles_to, settles_after=after_reads)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def proxy_url(self) -> str:
        """For ``HTTPS_PROXY``: tunnels ``*.vault.azure.net:443`` here, nothing else."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self, port: int = 0) -> ArmStandIn:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.ca_bundle, self._key)
        self._httpd = _Server(("127.0.0.1", port), self, tls)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    # -- protocol --------------------------------------------------------------------------
    def _reply(self, handler, status: int, body: dict | None = None,
               headers: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("x-ms-request-id", secrets.token_hex(8))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler, status: int, code: str, message: str) -> None:
        self._reply(handler, status, {"error": {"code": code, "message": message}})

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Entra ID's endpoints answer anyone; Key Vault (by its host name) challenges for a
        token; Resource Manager wants one Entra ID gave."""
        path = urlparse(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        request = _Request(handler, handler.command, path,
                           handler.rfile.read(length) if length else b"")
        with self._lock:
            self.requests.append((request.method, path))
        for pattern, route in self._ENTRA_ROUTES:
            if match := pattern.search(path):
                return route(self, request, match)
        if request.host.endswith(VAULT_DOMAIN):
            return self._vault(request)
        if request.token not in self._tokens:
            return self._error(handler, 401, "InvalidAuthenticationToken",
                               "The access token is invalid.")
        for pattern, route in self._ARM_ROUTES:
            if match := pattern.match(path):
                return route(self, request, match)
        return self._error(handler, 404, "NotFound", path)

    # -- Entra ID ------------------------------------------------------------------------
    def _discovery(self, request: _Request, match: re.Match) -> None:
        """MSAL's discovery of the tenant's endpoints."""
        tenant = f"{self.url}/{request.path.split('/')[1]}"
        return self._reply(request.handler, 200, {
            "issuer": f"{tenant}/v2.0",
            "authorization_endpoint": f"{tenant}/oauth2/v2.0/authorize",
            "token_endpoint": f"{tenant}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{tenant}/oauth2/v2.0/devicecode"})

    def _token(self, request: _Request, match: re.Match) -> None:
        form = parse_qs(request.body.decode())
        if self.client_secret is not None and form.get("client_secret") != [
                self.client_secret]:
            return self._reply(request.handler, 401, {
                "error": "invalid_client", "error_codes": [7000215],
                "error_description": "AADSTS7000215: Invalid client secret provided."})
        token = "standin-" + secrets.token_hex(16)
        self._tokens.add(token)
        return self._reply(request.handler, 200, {
            "token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
            "access_token": token})

    # -- Resource Manager ----------------------------------------------------------------
    def _flexible_server(self, request: _Request, match: re.Match) -> None:
        """A Flexible Server, one of its operations (start, stop) or children (firewall
        rules, databases)."""
        _, group, name, below = match.groups()
        operation = _server_operation(request.method, below or "")
        if operation in self.fail_next:
            status, code, message = self.fail_next.pop(operation)
            return self._error(request.handler, status, code, message)
        server = self.servers.get(name)
        if server is None:
            return self._error(request.handler, 404, "ResourceNotFound",
                               f"The Resource 'Microsoft.DBforMySQL/flexibleServers/{name}' "
                               f"under resource group '{group}' was not found.")
        if operation is None:
            return self._error(request.handler, 405, "MethodNotAllowed",
                               f"{request.method} {request.path}")
        call = _ServerCall(request, operation, name, server, (below or "").rsplit("/", 1)[-1])
        return self._OPERATION_ROUTES[operation](self, call)

    def _get_server(self, call: _ServerCall) -> None:
        server = call.server
        if server.get("settles_after"):  # a transition Azure ends on its own
            server["settles_after"] -= 1
            if not server["settles_after"]:
                server["state"] = server.pop("settles_to")
        return self._reply(call.request.handler, 200,
                           self._server_json(call.request.path, call.name, server))

    def _start_or_stop(self, call: _ServerCall) -> None:
        server, starting = call.server, call.operation == "start"
        if server["state"] != ("Stopped" if starting else "Ready"):
            return self._error(call.request.handler, 400, "InvalidServerState",
                               f"Server {call.name} is {server['state']}.")
        server["state"] = "Starting" if starting else "Stopping"
        final = "Ready" if starting else "Stopped"
        return self._accept(call.request.handler, lambda: server.update(state=final))

    def _update_server(self, call: _ServerCall) -> None:
        server, update = call.server, json.loads(call.request.body or b"{}")
        server["state"] = "Updating"

        def apply():
            if "sku" in update:
                server["sku"] = update["sku"]["name"]
            if "storage" in (update.get("properties") or {}):
                server["storage_gb"] = update["properties"]["storage"]["storageSizeGB"]
            server["state"] = "Ready"
        return self._accept(call.request.handler, apply)

    def _put_firewall_rule(self, call: _ServerCall) -> None:
        properties = json.loads(call.request.body)["properties"]
        self.firewall_rules[call.child] = properties
        return self._reply(call.request.handler, 200, {
            "id": call.request.path, "name": call.child, "properties": properties})

    def _put_database(self, call: _ServerCall) -> None:
        self.databases[call.child] = json.loads(call.request.body)["properties"]
        return self._reply(call.request.handler, 200, {
            "id": call.request.path, "name": call.child,
            "properties": self.databases[call.child]})

    def _vault(self, request: _Request) -> None:
        """Key Vault's GET and PUT secret, with its authentication challenge first."""
        handler, method, path = request.handler, request.method, request.path
        if request.token not in self._tokens:
            handler.send_response(401)
            handler.send_header("WWW-Authenticate", f'Bearer authorization="https://login.'
                                f'microsoftonline.com/{self.tenant}", '
                                f'resource="https://vault.azure.net"')
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        match = _SECRET.match(path)
        if method not in ("GET", "PUT") or not match:
            return self._error(handler, 405, "BadParameter", f"{method} {path}")
        name = match.group(1)
        if method == "PUT":
            self.vault[name] = json.loads(request.body)["value"]
        if name not in self.vault:
            return self._error(handler, 404, "SecretNotFound",
                               f"A secret with (name/id) {name} was not found in this key vault.")
        return self._reply(handler, 200, {
            "value": self.vault[name],
            "id": f"https://{request.host}/secrets/{name}/0123456789abcdef",
            "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000}})

    def _storage_account(self, request: _Request, match: re.Match) -> None:
        name = match.group(1)
        if request.method != "GET" or name not in self.storage_accounts:
            return self._error(request.handler, 404, "ResourceNotFound",
                               f"{request.method} {request.path}")
        web = self.storage_accounts[name]
        return self._reply(request.handler, 200, {
            "id": request.path, "name": name, "type": "Microsoft.Storage/storageAccounts",
            "properties": {"primaryEndpoints": {
                "blob": f"https://{name}.blob.core.windows.net/", "web": web}}})

    def _immutability_policy(self, request: _Request, match: re.Match) -> None:
        """A container's time-based retention policy, as Resource Manager gives it (Azurite
        has no immutability, so only this read stands in for it)."""
        policy = self.immutability_policies.get((match.group(1), match.group(2)))
        if request.method != "GET" or policy is None:
            return self._error(request.handler, 404, "ResourceNotFound",
                               f"{request.method} {request.path}")
        return self._reply(request.handler, 200, {
            "id": request.path, "name": "default", "etag": '"8d9f0a1b2c3d4e5"',
            "type": "Microsoft.Storage/storageAccounts/blobServices/containers/"
                    "immutabilityPolicies",
            "properties": {"immutabilityPeriodSinceCreationInDays": policy["days"],
                           "state": policy["state"], "allowProtectedAppendWrites": False,
                           "allowProtectedAppendWritesAll": False}})

    def _accept(self, handler, finish) -> None:
        operation_id = secrets.token_hex(8)
        self._operations[operation_id] = {"polls": 0, "finish": finish}
        location = f"{self.url}/operations/{operation_id}?api-version=2021-05-01"
        self._reply(handler, 202, None, {"Azure-AsyncOperation": location,
                                         "Location": location, "Retry-After": "0"})

    def _operation_status(self, request: _Request, match: re.Match) -> None:
        operation = self._operations[match.group(1)]
        operation["polls"] += 1
        if operation["polls"] < self.polls_until_done:
            return self._reply(request.handler, 200, {"status": "InProgress"},
                               {"Retry-After": "0"})
        finish = operation.pop("finish", None)
        if finish:  # the operation's effect happens once, when it is first seen done
            finish()
        return self._reply(request.handler, 200, {"status": "Succeeded"})

    def _tunnel(self, handler) -> None:
        """CONNECT ``*.vault.azure.net:443``: a tunnel to this server; nothing else."""
        host, _, port = handler.path.rpartition(":")
        if not host.endswith(VAULT_DOMAIN) or port != "443":
            handler.send_error(403, "only Key Vault is tunnelled")
            return
        upstream = socket.create_connection(("127.0.0.1", self._httpd.server_address[1]))
        handler.send_response(200, "Connection established")
        handler.end_headers()
        sockets = [handler.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is handler.connection else handler.connection
                     ).sendall(data)
        finally:
            upstream.close()
            handler.close_connection = True

    # Where a request goes, by its path; a route is called with the request and the match.
    _ENTRA_ROUTES = ((re.compile(r"/v2\.0/\.well-known/openid-configuration$"), _discovery),
                     (re.compile(r"/oauth2/v2\.0/token$"), _token))
    _ARM_ROUTES = ((re.compile(r"^/operations/.*?([^/]*)$"), _operation_status),
                   (_STORAGE, _storage_account),
                   (_POLICY, _immutability_policy),
                   (_SERVER, _flexible_server))
    _OPERATION_ROUTES = {"get": _get_server, "start": _start_or_stop, "stop": _start_or_stop,
                         "update": _update_server, "firewall": _put_firewall_rule,
                         "database": _put_database}

    @staticmethod
    def _server_json(resource_id: str, name: str, server: dict) -> dict:
        return {
            "id": resource_id, "name": name, "type": "Microsoft.DBforMySQL/flexibleServers",
            "location": "koreacentral",
            "sku": {"name": server["sku"], "tier": "Burstable"},
            "properties": {"state": server["state"], "version": "8.0.21",
                           "fullyQualifiedDomainName": server["host"],
                           "administratorLogin": "drkitadmin",
                           "storage": {"storageSizeGB": server["storage_gb"]}},
        }


def main(argv: list[str] | None = None) -> None:
    """The sandbox's ``azure`` service: serve until terminated."""
    import signal
    import sys

    port, directory, *secret_file = (argv if argv is not None else sys.argv[1:])
    client_secret = Path(secret_file[0]).read_text().strip() if secret_file else None
    standin = ArmStandIn(Path(directory), client_secret=client_secret)
    standin.tenant = SANDBOX_TENANT
    # The sandbox's target, already running, as the DR region's Flexible Server.
    standin.add_server(SANDBOX_SERVER, state="Ready")
    standin.storage_accounts[STORAGE_ACCOUNT] = f"https://{STORAGE_ACCOUNT}.z12.web.core.windows.net/"
    # The backup container as docs/immutability.md sets it up: 30 days, locked.
    standin.immutability_policies[STORAGE_ACCOUNT, CONTAINER] = {"days": 30, "state": "Locked"}
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the threads, which inherit it
    standin.start(int(port))
    signal.sigwait(stop)
    standin.stop()


if __name__ == "__main__":
    main()
