"""The SSRF-safe fetcher: what it refuses, and what it does against a real HTTP server on 127.0.0.1.

Nothing here reaches the internet. Refusals happen before any connection; the success paths talk to a server
the test starts on loopback, and host names are answered by a fake `getaddrinfo` (there is no DNS here).
"""

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from kiwiwhale.lib import safe_fetch
from kiwiwhale.lib.safe_fetch import (
    MAX_REDIRECTS,
    AddressRefused,
    FetchError,
    GuardedTransport,
    address_is_public,
    deadline,
    fetch,
    safe_request,
)

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUHEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # for chunked bodies

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.server.seen.append({"path": self.path, "host": self.headers["Host"]})
        route = url.path.strip("/").split("/")[0]
        getattr(self, f"_{route.replace('-', '_')}", self._file)(query)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({"path": self.path, "host": self.headers["Host"], "body": body})
        if self.path.startswith("/redirect"):
            return self._redirect({"to": "/file", "status": "307"})
        answer = {"got": json.loads(body or b"null"), "type": self.headers["Content-Type"]}
        self._send(202, json.dumps(answer).encode(), [("Content-Type", "application/json"), ("X-Seen", "yes")])

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, query):
        self._send(200, b"hello, world", [("Content-Type", "text/plain; charset=utf-8")])

    def _png(self, query):
        self._send(200, PNG_1X1, [("Content-Type", "Image/PNG")])

    def _untyped(self, query):
        self._send(200, b"\x00\x01", [])

    def _sized(self, query):
        self._send(200, b"x" * int(query["n"]), [("Content-Type", "application/octet-stream")])

    def _declares_huge(self, query):
        # Says 1 GB, sends 10 bytes: only the header can refuse it with the size message.
        self._send(200, b"x" * 10, [("Content-Length", str(10**9))])
        self.close_connection = True

    def _chunked(self, query):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(int(query["chunks"])):
            self.wfile.write(b"%x\r\n%s\r\n" % (500, b"y" * 500))
        self.wfile.write(b"0\r\n\r\n")

    def _slow(self, query):
        time.sleep(float(query["delay"]))
        self._send(200, b"late")

    def _trickle(self, query):
        # Each byte arrives well within a read timeout, but the whole body takes far longer than allowed.
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(20):
            self.wfile.write(b"1\r\nz\r\n")
            self.wfile.flush()
            time.sleep(0.1)
        self.wfile.write(b"0\r\n\r\n")

    def _redirect(self, query):
        self._send(int(query.get("status", 302)), headers=[("Location", query["to"]), ("Content-Length", "0")])

    def _redirect_without_location(self, query):
        self._send(302)

    def _chain(self, query):
        hops = int(query["hops"])
        if hops:
            self._send(302, headers=[("Location", f"/chain?hops={hops - 1}"), ("Content-Length", "0")])
        else:
            self._send(200, b"end of chain", [("Content-Type", "text/plain")])

    def _loop(self, query):
        self._send(302, headers=[("Location", "/loop"), ("Content-Length", "0")])

    def _status(self, query):
        self._send(int(query["code"]), b"nope")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        pass  # a client that gave up (size cap, timeout) leaves the handler writing to a closed socket


@pytest.fixture(scope="module")
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_port}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def loopback_allowed(settings):
    # Loopback is the only network the tests have, so reaching our own server needs the private-address check
    # off. The check itself is shown with the flag left off, in the refusal tests below.
    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = True
    return settings


@pytest.fixture
def private_refused(settings):
    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = False
    return settings


@pytest.fixture
def fake_dns(monkeypatch):
    """Host names → addresses; IP literals pass through without DNS; any other name does not resolve."""
    names = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host in names:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in names[host]
            ]
        try:
            return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            raise socket.gaierror(socket.EAI_NONAME, f"no DNS in tests: {host}") from None

    # getaddrinfo is replaced because there is no DNS here; it also guarantees no name goes out to the internet.
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


# --- Refused before any connection ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/file.txt",
        "gopher://127.0.0.1:70/_GET",
        "javascript:alert(1)",
        "DATA:text/plain,hi",
        "//example.com/no-scheme",
    ],
)
def test_it_refuses_schemes_other_than_http_https_and_data(url):
    with pytest.raises(FetchError, match="Only http, https and data"):
        fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8000/admin",
        "http://localhost/",
        "http://[::1]/",
        "http://127.1/",  # inet_aton shorthand
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://0.0.0.0/",
        "https://127.0.0.1/",
    ],
)
def test_it_refuses_loopback_addresses(url, private_refused):
    with pytest.raises(FetchError, match="private, loopback or reserved"):
        fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://172.31.255.255/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata, link-local
        "http://[fd00::1]/",
        "http://[fe80::1]/",
    ],
)
def test_it_refuses_private_and_link_local_addresses(url, private_refused):
    with pytest.raises(FetchError, match="private, loopback or reserved"):
        fetch(url)


@pytest.mark.parametrize(
    "url",
    ["http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::ffff:169.254.169.254]/"],
)
def test_it_refuses_ipv4_mapped_ipv6_of_private_addresses(url, private_refused):
    with pytest.raises(FetchError, match="private, loopback or reserved"):
        fetch(url)


@pytest.mark.parametrize(
    "url", ["http://user:secret@example.com/", "http://user@example.com/", "https://:pw@example.com/"]
)
def test_it_refuses_urls_with_credentials(url, fake_dns):
    with pytest.raises(FetchError, match="credentials"):
        fetch(url)


@pytest.mark.parametrize("url", ["http://[::1/", "http://example.com:99999/", "http://example.com:port/"])
def test_it_reports_a_malformed_url_as_a_fetch_error(url):
    with pytest.raises(FetchError, match="Malformed URL"):
        fetch(url)


def test_it_refuses_a_url_without_a_host():
    with pytest.raises(FetchError, match="no host"):
        fetch("http:///etc/passwd")


def test_it_reports_a_host_that_does_not_resolve(fake_dns):
    with pytest.raises(FetchError, match="could not be resolved"):
        fetch("http://no-such-host.invalid/")


def test_it_refuses_a_host_when_any_of_its_addresses_is_private(fake_dns, private_refused):
    # A name answering with a public and a private address could be connected to either: all must be public.
    fake_dns["mixed.example"] = ["8.8.8.8", "10.0.0.1"]
    with pytest.raises(FetchError, match="private, loopback or reserved"):
        fetch("http://mixed.example/")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("2002:808:808::", True),  # 6to4 of 8.8.8.8
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("192.0.2.1", False),  # documentation
        ("224.0.0.1", False),  # multicast
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),  # multicast
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::7f00:1", False),  # IPv4-compatible ::127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::", False),  # 6to4 of 169.254.169.254
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::1", False),  # local-use NAT64
    ],
)
def test_it_tells_public_addresses_from_the_rest(address, public):
    assert address_is_public(address) is public


# --- data: URLs -----------------------------------------------------------------------------------------


def test_it_decodes_a_base64_data_url():
    url = "data:image/png;base64," + base64.b64encode(PNG_1X1).decode()
    fetched = fetch(url)
    assert fetched.content == PNG_1X1
    assert fetched.content_type == "image/png"
    assert fetched.file_name == "upload"


def test_it_decodes_a_percent_encoded_data_url():
    fetched = fetch("data:,Hello%2C%20World%21")
    assert fetched.content == b"Hello, World!"
    assert fetched.content_type == "text/plain"


def test_it_keeps_percent_encoded_bytes_that_are_not_utf8():
    assert fetch("data:application/octet-stream,%FF%00%FEok").content == b"\xff\x00\xfeok"


def test_it_reads_the_type_of_a_data_url_with_parameters():
    url = "data:Text/Plain;charset=utf-8;base64," + base64.b64encode("héllo".encode()).decode()
    fetched = fetch(url)
    assert fetched.content_type == "text/plain"
    assert fetched.content.decode() == "héllo"


@pytest.mark.parametrize(
    "url",
    [
        "data:text/plain",  # no comma
        "data:text/plain;base64",
        "data:not a type,hi",
        "data:text/plain;charset,hi",  # a parameter without a value
    ],
)
def test_it_refuses_a_malformed_data_url(url):
    with pytest.raises(FetchError, match="Malformed data: URL"):
        fetch(url)


@pytest.mark.parametrize("payload", ["@@@@", "aGVsbG8", "aGVs bG8=", "aGVsbG8=="])
def test_it_refuses_a_data_url_that_is_not_valid_base64(payload):
    with pytest.raises(FetchError, match="not valid base64"):
        fetch(f"data:text/plain;base64,{payload}")


def test_it_accepts_a_data_url_of_exactly_max_bytes():
    assert len(fetch("data:;base64," + base64.b64encode(b"a" * 100).decode(), max_bytes=100).content) == 100
    assert len(fetch("data:," + "%41" * 100, max_bytes=100).content) == 100


def test_it_refuses_a_data_url_over_max_bytes():
    with pytest.raises(FetchError, match="larger than 100 bytes"):
        fetch("data:;base64," + base64.b64encode(b"a" * 101).decode(), max_bytes=100)
    with pytest.raises(FetchError, match="larger than 100 bytes"):
        fetch("data:," + "a" * 101, max_bytes=100)


def test_it_refuses_an_oversized_data_url_before_decoding_it():
    # Not valid base64 at all: had it been decoded first, the error would be about base64, not size.
    with pytest.raises(FetchError, match="larger than 100 bytes"):
        fetch("data:;base64," + "!" * 10_000, max_bytes=100)
    with pytest.raises(FetchError, match="larger than 100 bytes"):
        fetch("data:," + "%" * 10_000, max_bytes=100)


def test_it_takes_the_default_size_cap_from_settings(settings):
    settings.FETCH_MAX_BYTES = 10
    with pytest.raises(FetchError, match="larger than 10 bytes"):
        fetch("data:,eleven-byte")


# --- http against a real server on 127.0.0.1 -----------------------------------------------------------


def test_it_returns_the_body_and_content_type(server, loopback_allowed):
    fetched = fetch(f"{server.base}/file/notes.txt")
    assert fetched.content == b"hello, world"
    assert fetched.content_type == "text/plain"
    assert fetched.file_name == "notes.txt"


def test_it_lowercases_the_content_type(server, loopback_allowed):
    fetched = fetch(f"{server.base}/png")
    assert fetched.content == PNG_1X1
    assert fetched.content_type == "image/png"


def test_it_calls_a_response_without_a_type_octet_stream(server, loopback_allowed):
    assert fetch(f"{server.base}/untyped").content_type == "application/octet-stream"


def test_it_names_the_file_after_the_last_path_segment_only(server, loopback_allowed):
    assert fetch(f"{server.base}/file/report%20final.txt").file_name == "report final.txt"
    assert fetch(f"{server.base}/file/..%2F..%2Fetc%2Fpasswd").file_name == "passwd"
    assert fetch(f"{server.base}/").file_name == "file"


def test_it_accepts_a_body_of_exactly_max_bytes(server, loopback_allowed):
    assert len(fetch(f"{server.base}/sized?n=1000", max_bytes=1000).content) == 1000


def test_it_refuses_a_body_whose_content_length_is_over_the_cap(server, loopback_allowed):
    with pytest.raises(FetchError, match="larger than 1000 bytes"):
        fetch(f"{server.base}/sized?n=1001", max_bytes=1000)


def test_it_refuses_by_content_length_without_reading_the_body(server, loopback_allowed):
    with pytest.raises(FetchError, match="larger than 1000 bytes"):
        fetch(f"{server.base}/declares-huge", max_bytes=1000)


def test_it_stops_a_chunked_body_at_the_cap(server, loopback_allowed):
    assert len(fetch(f"{server.base}/chunked?chunks=2", max_bytes=1000).content) == 1000
    with pytest.raises(FetchError, match="larger than 1000 bytes"):
        fetch(f"{server.base}/chunked?chunks=10", max_bytes=1000)


def test_it_times_out_on_a_server_that_does_not_answer(server, loopback_allowed):
    started = time.monotonic()
    with pytest.raises(FetchError, match="Timed out"):
        fetch(f"{server.base}/slow?delay=2", timeout=0.4)
    assert time.monotonic() - started < 1.5


def test_it_times_out_on_a_body_that_trickles_in(server, loopback_allowed):
    # 20 bytes at 0.1 s each: no single read times out, the overall deadline must.
    started = time.monotonic()
    with pytest.raises(FetchError, match="Timed out"):
        fetch(f"{server.base}/trickle", timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_it_takes_the_default_timeout_from_settings(server, loopback_allowed):
    loopback_allowed.FETCH_TIMEOUT_SECONDS = 0.3
    with pytest.raises(FetchError, match="Timed out"):
        fetch(f"{server.base}/slow?delay=1")


@pytest.mark.parametrize("code", [204, 300, 304, 400, 401, 403, 404, 500, 503])
def test_it_refuses_any_answer_but_200(server, loopback_allowed, code):
    with pytest.raises(FetchError, match=f"HTTP {code}"):
        fetch(f"{server.base}/status?code={code}")


def test_it_refuses_a_redirect_without_a_location(server, loopback_allowed):
    with pytest.raises(FetchError, match="redirect without a Location"):
        fetch(f"{server.base}/redirect-without-location")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_it_follows_a_redirect(server, loopback_allowed, status):
    fetched = fetch(f"{server.base}/redirect?status={status}&to=/file/moved.txt")
    assert fetched.content == b"hello, world"
    assert fetched.file_name == "moved.txt"


def test_it_follows_up_to_the_redirect_limit(server, loopback_allowed):
    assert fetch(f"{server.base}/chain?hops={MAX_REDIRECTS}").content == b"end of chain"


def test_it_refuses_too_many_redirects(server, loopback_allowed):
    with pytest.raises(FetchError, match="Too many redirects"):
        fetch(f"{server.base}/chain?hops={MAX_REDIRECTS + 1}")
    with pytest.raises(FetchError, match="Too many redirects"):
        fetch(f"{server.base}/loop")


def test_it_refuses_a_redirect_to_another_scheme(server, loopback_allowed):
    with pytest.raises(FetchError, match="Only http, https and data"):
        fetch(f"{server.base}/redirect?to=" + quote("file:///etc/passwd", safe=""))


def test_it_connects_to_the_checked_address_and_sends_the_host_name(server, loopback_allowed, fake_dns):
    fake_dns["files.example"] = ["127.0.0.1"]
    server.seen.clear()
    assert fetch(f"http://files.example:{server.server_port}/file").content == b"hello, world"
    assert server.seen == [{"path": "/file", "host": f"files.example:{server.server_port}"}]


def test_it_ignores_proxies_in_the_environment(server, loopback_allowed, monkeypatch):
    # A proxy would resolve the host name again, out of the check's sight; port 9 (discard) answers nothing.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert fetch(f"{server.base}/file").content == b"hello, world"


class TestRedirectsWithThePrivateAddressCheckOn:
    """Each hop is checked again. FETCH_ALLOW_PRIVATE_ADDRESSES stays off (the production setting); only the
    test server's own address, 127.0.0.1, is treated as public, since loopback is the only network there is."""

    @pytest.fixture(autouse=True)
    def _server_counts_as_public(self, monkeypatch, private_refused, fake_dns):
        real = safe_fetch.address_is_public
        monkeypatch.setattr(safe_fetch, "address_is_public", lambda a: a == "127.0.0.1" or real(a))
        fake_dns["public.example"] = ["127.0.0.1"]
        fake_dns["internal.example"] = ["10.0.0.1"]

    def test_it_follows_a_redirect_between_public_addresses(self, server):
        base = f"http://public.example:{server.server_port}"
        assert fetch(f"{base}/redirect?to=" + quote(f"{base}/file", safe="")).content == b"hello, world"

    @pytest.mark.parametrize(
        "target",
        [
            "http://internal.example/admin",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:10.0.0.1]/",
            "http://192.168.0.1:8080/",
        ],
    )
    def test_it_refuses_a_redirect_to_a_private_address(self, server, target):
        started = time.monotonic()
        with pytest.raises(FetchError, match="private, loopback or reserved"):
            fetch(f"http://public.example:{server.server_port}/redirect?to=" + quote(target, safe=""))
        # Refused by the check, not by failing to connect to an address that isn't there.
        assert time.monotonic() - started < 1

    def test_it_follows_a_relative_redirect_on_the_same_host(self, server):
        fetched = fetch(f"http://public.example:{server.server_port}/redirect?to=../file/a.txt")
        assert fetched.file_name == "a.txt"


# --- One deadline over connect, headers and body ---------------------------------------------------------


@pytest.fixture
def dribbler():
    """A real server on 127.0.0.1 that answers every connection with a status line, then one header byte every
    0.1 s for a minute: no single read ever times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve(conn):
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(600):
                    if stop.wait(0.1):
                        return
                    conn.sendall(b"z")
            except OSError:
                pass  # the client gave up, as it must

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


def test_it_cuts_off_headers_that_dribble_in_at_the_deadline(dribbler, loopback_allowed):
    started = time.monotonic()
    with pytest.raises(FetchError, match="Timed out"):
        fetch(f"{dribbler}/file", timeout=0.6)
    assert time.monotonic() - started < 1.5  # not one read timeout per byte (600 bytes: a minute)


def test_the_deadline_also_bounds_a_request_with_a_body(dribbler, loopback_allowed):
    started = time.monotonic()
    with pytest.raises(FetchError, match="Timed out"):
        safe_request("POST", f"{dribbler}/hook", json={"event": "x"}, timeout=0.6)
    assert time.monotonic() - started < 1.5


def test_an_httpx_client_on_the_guarded_transport_keeps_the_deadline(dribbler, loopback_allowed):
    started = time.monotonic()
    with (
        httpx.Client(transport=GuardedTransport(), timeout=30) as client,
        deadline(0.6),
        pytest.raises(httpx.ReadTimeout),
    ):
        client.get(f"{dribbler}/x")
    assert time.monotonic() - started < 1.5


# --- Redirects the fetcher does not follow -----------------------------------------------------------------


@pytest.mark.parametrize("target", ["data:text/plain,hello", "DATA:text/html;base64,PGgxPmhpPC9oMT4=", " data:,x"])
def test_it_refuses_a_redirect_to_a_data_url_with_a_fetch_error(server, loopback_allowed, target):
    with pytest.raises(FetchError, match="redirect to a data: URL"):
        fetch(f"{server.base}/redirect?to=" + quote(target, safe=""))


def test_it_refuses_a_redirect_to_a_malformed_url_with_a_fetch_error(server, loopback_allowed):
    with pytest.raises(FetchError):
        fetch(f"{server.base}/redirect?to=" + quote("http://[::1/x", safe=""))


# --- safe_request: a request with a body to a user URL -----------------------------------------------------


def test_safe_request_posts_a_json_body_and_returns_the_answer(server, loopback_allowed):
    server.seen.clear()
    answer = safe_request("POST", f"{server.base}/hook", json={"event": "low_balance"}, headers={"X-Sig": "s"})
    assert (answer.status, answer.is_success, answer.headers["x-seen"]) == (202, True, "yes")
    assert json.loads(answer.content) == {"got": {"event": "low_balance"}, "type": "application/json"}
    assert server.seen[-1]["body"] == b'{"event": "low_balance"}'


def test_safe_request_does_not_follow_redirects(server, loopback_allowed):
    server.seen.clear()
    answer = safe_request("POST", f"{server.base}/redirect", content=b"{}")
    assert answer.status == 307 and answer.headers["location"] == "/file"
    assert len(server.seen) == 1


def test_safe_request_caps_the_body_it_reads(server, loopback_allowed):
    with pytest.raises(FetchError, match="larger than 100 bytes"):
        safe_request("GET", f"{server.base}/sized?n=5000", max_bytes=100)


def test_safe_request_refuses_private_addresses(server, private_refused, fake_dns):
    fake_dns["hooks.example"] = ["10.1.2.3"]
    for url in (f"{server.base}/hook", "http://hooks.example/hook", "http://169.254.169.254/"):
        with pytest.raises(AddressRefused, match="private, loopback or reserved"):
            safe_request("POST", url, json={})
    assert safe_request.__doc__


def test_it_resolves_the_name_once_and_connects_to_that_address(server, loopback_allowed, fake_dns, monkeypatch):
    # The name answers 127.0.0.1 once, then an address nobody listens on: a second resolution would fail.
    answers = [["127.0.0.1"], ["192.0.2.1"]]
    lookups = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "rebinding.example":
            lookups.append(host)
            fake_dns[host] = answers[min(len(lookups), 2) - 1]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    fake_dns["rebinding.example"] = ["127.0.0.1"]
    assert fetch(f"http://rebinding.example:{server.server_port}/file").content == b"hello, world"
    assert lookups == ["rebinding.example"]


# --- Private hosts an admin allows for self-hosted engines -------------------------------------------------


class TestThePrivateHostAllowlist:
    @pytest.fixture(autouse=True)
    def _off(self, private_refused, fake_dns):
        private_refused.FETCH_PRIVATE_HOST_ALLOWLIST = []
        fake_dns["comfy.lan"] = ["127.0.0.1"]
        fake_dns["other.lan"] = ["127.0.0.1"]

    def _get(self, url, trusted_host):
        with httpx.Client(transport=GuardedTransport(trusted_host=trusted_host), trust_env=False) as client:
            return client.get(url)

    def test_a_trusted_host_not_allowlisted_is_refused_with_the_setting_named(self, server):
        with pytest.raises(AddressRefused, match="FETCH_PRIVATE_HOST_ALLOWLIST"):
            self._get(f"http://comfy.lan:{server.server_port}/file", "comfy.lan")

    @pytest.mark.parametrize("entry", ["comfy.lan", "COMFY.lan", "127.0.0.0/8", "127.0.0.1"])
    def test_an_allowlisted_trusted_host_is_reached(self, server, settings, entry):
        settings.FETCH_PRIVATE_HOST_ALLOWLIST = [entry]
        assert self._get(f"http://comfy.lan:{server.server_port}/file", "comfy.lan").content == b"hello, world"

    def test_the_allowlist_never_opens_another_host_or_a_user_url(self, server, settings):
        settings.FETCH_PRIVATE_HOST_ALLOWLIST = ["comfy.lan", "other.lan", "127.0.0.0/8"]
        with pytest.raises(AddressRefused):
            self._get(f"http://other.lan:{server.server_port}/file", "comfy.lan")
        with pytest.raises(AddressRefused):
            self._get(f"http://comfy.lan:{server.server_port}/file", None)
        for url in (f"http://comfy.lan:{server.server_port}/file", f"{server.base}/file"):
            with pytest.raises(FetchError, match="private, loopback or reserved"):
                fetch(url)
