"""A webhook processor for the inbox, in Python.

The inbox calls `Handler.process` once per attempt, in a fresh instance, with the stored
webhook; before it, `Destinations.destination` names where the webhook goes (the forward
URL's scheme, host and port), for the inbox to keep its state per destination. This one completes the event types it ignores at once and forwards every other
webhook to `forward_url`, mapping the destination's answer to an outcome:

- 2xx: completed;
- 408, 429, 5xx, or no answer: retry (after `Retry-After` seconds, when the answer says);
- any other 4xx (410 Gone, 400, ...): reject, an operator has to look at it.

Its settings (wasi:config, from INBOX_* variables; a processor sees only these):

- `forward_url`: where to POST each webhook (`INBOX_FORWARD_URL`);
- `processor_ignore_events`: event types to complete without forwarding, comma-separated
  (`INBOX_PROCESSOR_IGNORE_EVENTS`, e.g. `ping`);
- `processor_token`: sent as `Authorization: Bearer ...` (`INBOX_PROCESSOR_TOKEN`);
- `processor_timeout_ms`: the host's deadline for one attempt, which the request stays within.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.handler import (
    Outcome,
    Outcome_Completed,
    Outcome_Reject,
    Outcome_Retry,
    RetryRequest,
)
from wit_world.imports import outgoing_handler
from wit_world.imports import store as config
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingBody,
    Method_Post,
    OutgoingBody,
    OutgoingRequest,
    RequestOptions,
    Scheme_Http,
    Scheme_Https,
)
from wit_world.imports.webhooks_inbox_types import Webhook

# wasi:io output streams take at most 4,096 bytes a call.
WRITE_CHUNK = 4096
# The host's default deadline (INBOX_PROCESSOR_TIMEOUT_MS) when the setting is absent.
DEFAULT_DEADLINE_MS = 30_000
# Larger values are clamped: the delay is a u64 of milliseconds.
MAX_RETRY_AFTER_S = 10**9


class Handler(exports.Handler):
    def process(self, webhook: Webhook, attempt: int) -> Outcome:
        ignored = (config.get("processor_ignore_events") or "").split(",")
        if webhook.event_type in (event.strip() for event in ignored):
            return Outcome_Completed()
        url = config.get("forward_url")
        if not url:
            # Retried, not dropped: once the setting is fixed, a replay delivers it.
            return retry("forward_url is not set")
        try:
            status, retry_after = post(url, webhook, attempt)
        except ForwardError as error:
            return retry(f"forwarding to {url} failed: {error}")
        return classify(status, retry_after)


class Destinations(exports.Destinations):
    def destination(self, webhook: Webhook) -> str:
        return destination_of(config.get("forward_url"))


def destination_of(url: str | None) -> str:
    """The URL's scheme, host and port (the scheme's own when none is given): never its
    credentials, path or query, which may hold a secret."""
    for scheme, port in (("https", 443), ("http", 80)):
        prefix = scheme + "://"
        if (url or "").startswith(prefix):
            rest = url[len(prefix) :]
            # A user and password end at the last `@` before the query, and may hold a `/`.
            query = min((i for i in map(rest.find, "?#") if i >= 0), default=len(rest))
            rest = rest[rest.rfind("@", 0, query) + 1 :]
            cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
            host = rest[:cut].lower()
            if not host:
                break
            after_ipv6 = host[host.rfind("]") + 1 :]
            return f"{prefix}{host}" if ":" in after_ipv6 else f"{prefix}{host}:{port}"
    return "forward_url not set or not http(s)"


class ForwardError(Exception):
    pass


def retry(reason: str, delay_ms: int | None = None) -> Outcome:
    return Outcome_Retry(RetryRequest(reason=reason, delay_ms=delay_ms))


def classify(status: int, retry_after: str | None) -> Outcome:
    if 200 <= status <= 299:
        return Outcome_Completed()
    if status in (408, 429) or 500 <= status <= 599:
        return retry(f"destination answered {status}", delay_ms(retry_after))
    return Outcome_Reject(f"destination answered {status}")


def delay_ms(retry_after: str | None) -> int | None:
    """`Retry-After` in seconds, as milliseconds; the inbox caps it (INBOX_RETRY_MAX_DELAY_MS)."""
    seconds = (retry_after or "").strip()
    if not (seconds.isascii() and seconds.isdigit()):
        return None
    return min(int(seconds), MAX_RETRY_AFTER_S) * 1000


def post(url: str, webhook: Webhook, attempt: int) -> tuple[int, str | None]:
    """POSTs the payload, byte for byte, with its content type: (status, Retry-After)."""
    if url.startswith("https://"):
        scheme, rest = Scheme_Https(), url[len("https://") :]
    elif url.startswith("http://"):
        scheme, rest = Scheme_Http(), url[len("http://") :]
    else:
        raise ForwardError("forward_url must start with http:// or https://")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:].split("#")[0]
    content_type = next(
        (value for name, value in webhook.headers if name == "content-type"),
        "application/json",
    )
    headers = [
        ("content-type", content_type.encode()),
        ("content-length", str(len(webhook.payload)).encode()),
        ("x-inbox-webhook-id", webhook.id.encode()),
        ("x-inbox-origin", webhook.origin.encode()),
        ("x-inbox-event-type", webhook.event_type.encode()),
        ("x-inbox-attempt", str(attempt).encode()),
    ]
    token = config.get("processor_token")
    if token:
        headers.append(("authorization", f"Bearer {token}".encode()))

    try:
        request = OutgoingRequest(Fields.from_list(headers))
        request.set_method(Method_Post())
        request.set_scheme(scheme)
        request.set_authority(authority)
        request.set_path_with_query(path if path.startswith("/") else "/" + path)
        body = request.body()
        # Connecting, then the first byte of the answer, take at most 3/4 of the attempt's
        # deadline: a slow destination is a retry, not an attempt the host cuts short.
        deadline_ns = int(config.get("processor_timeout_ms") or DEFAULT_DEADLINE_MS) * 1_000_000
        options = RequestOptions()
        options.set_connect_timeout(deadline_ns // 4)
        options.set_first_byte_timeout(deadline_ns // 2)
        pending = outgoing_handler.handle(request, options)
        try:
            with body.write() as stream:
                payload = webhook.payload
                for start in range(0, len(payload), WRITE_CHUNK):
                    stream.blocking_write_and_flush(payload[start : start + WRITE_CHUNK])
            OutgoingBody.finish(body, None)
        except Err:
            pass  # the body could not be sent: the answer below says why (e.g. refused)
        with pending:
            with pending.subscribe() as ready:
                ready.block()
            answer = pending.get()
    except Err as error:
        raise ForwardError(repr(error.value)) from None
    # get() is ready after block(): Ok(Ok(response)), or Ok(Err(error-code)).
    if answer is None or isinstance(answer, Err):
        raise ForwardError("no answer")
    if isinstance(answer.value, Err):
        raise ForwardError(repr(answer.value.value))
    with answer.value.value as response:
        with response.headers() as fields:
            retry_after = fields.get("retry-after")
        status = response.status()
        drain(response)
    return status, retry_after[0].decode(errors="replace") if retry_after else None


def drain(response) -> None:
    """Reads the answer's body to its end, so that the connection is released cleanly."""
    body = response.consume()
    with body.stream() as stream:
        try:
            while True:
                stream.blocking_read(65536)
        except Err:
            pass  # closed: the body has ended
    with IncomingBody.finish(body):
        pass
