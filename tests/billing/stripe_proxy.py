"""A small proxy between the app's Stripe client and localstripe that can lose Stripe's answers, for real.

Each request is forwarded to localstripe whole, and localstripe's answer is read whole (so the charge happens
there); with `drop_answers` on, the proxy then closes the client's connection without sending a byte back, so
the app's call fails with a connection error exactly as when the network dies after Stripe said yes.

localstripe ignores `Idempotency-Key`; real Stripe answers a repeated key with the first response. The proxy
keeps that documented behaviour in front of it: an answer it saw for a key (even one it dropped) is what a
retry with that key gets, so the retry path runs as it would against Stripe.
"""

import socket
import threading


def _read_http_message(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one HTTP/1.1 message with a Content-Length (what the stripe client and aiohttp send)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


def _header(head: bytes, wanted: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == wanted:
            return value.strip()
    return b""


class StripeProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.drop_answers = False
        self.requests: list[bytes] = []  # request lines seen, e.g. b"POST /v1/payment_intents HTTP/1.1"
        self._answers: dict[bytes, bytes] = {}
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            head, body = _read_http_message(client)
            if not head:
                return
            self.requests.append(head.split(b"\r\n", 1)[0])
            key = _header(head, b"idempotency-key")
            answer = self._answers.get(key) if key else None
            if answer is None:
                answer = self._forward(head, body)
                if key:
                    self._answers[key] = answer
            if self.drop_answers:
                return  # closed without an answer: the charge happened, the caller never hears of it
            client.sendall(answer)

    def _forward(self, head: bytes, body: bytes) -> bytes:
        lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        request = b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as upstream:
            upstream.sendall(request)
            answer = b""
            while chunk := upstream.recv(65536):
                answer += chunk
        # One answer per connection: the client must not wait for more on this one.
        answer_head, _, answer_body = answer.partition(b"\r\n\r\n")
        answer_lines = [line for line in answer_head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
        return b"\r\n".join([*answer_lines, b"Connection: close"]) + b"\r\n\r\n" + answer_body
