// A webhook processor for the inbox, in JavaScript.
//
// The inbox calls `handler.process` once per attempt, in a fresh instance, with the stored
// webhook; before it, `destinations.destination` names where the webhook goes (the forward
// URL's scheme, host and port), for the inbox to keep its state per destination. This one completes the event types it ignores at once and forwards every other
// webhook to `forward_url`, mapping the destination's answer to an outcome:
//
// - 2xx: completed;
// - 408, 429, 5xx, or no answer: retry (after `Retry-After` seconds, when the answer says);
// - any other 4xx (410 Gone, 400, ...): reject, an operator has to look at it.
//
// Its settings (wasi:config, from INBOX_* variables; a processor sees only these):
//
// - `forward_url`: where to POST each webhook (`INBOX_FORWARD_URL`);
// - `processor_ignore_events`: event types to complete without forwarding, comma-separated
//   (`INBOX_PROCESSOR_IGNORE_EVENTS`, e.g. `ping`);
// - `processor_token`: sent as `Authorization: Bearer ...` (`INBOX_PROCESSOR_TOKEN`);
// - `processor_timeout_ms`: the host's deadline for one attempt, which the request stays within.

import { get as setting } from "wasi:config/store@0.2.0-draft-2024-09-27";
import { handle } from "wasi:http/outgoing-handler@0.2.0";
import {
  Fields,
  IncomingBody,
  OutgoingBody,
  OutgoingRequest,
  RequestOptions,
} from "wasi:http/types@0.2.0";

// wasi:io output streams take at most 4,096 bytes a call.
const WRITE_CHUNK = 4096;
// The host's default deadline (INBOX_PROCESSOR_TIMEOUT_MS) when the setting is absent.
const DEFAULT_DEADLINE_MS = 30000;
// Larger values are clamped: the delay is a u64 of milliseconds.
const MAX_RETRY_AFTER_S = 1000000000n;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const handler = {
  process(webhook, attempt) {
    const ignored = (setting("processor_ignore_events") ?? "").split(",");
    if (ignored.some((event) => event.trim() === webhook.eventType)) {
      return { tag: "completed" };
    }
    const url = setting("forward_url");
    if (!url) {
      // Retried, not dropped: once the setting is fixed, a replay delivers it.
      return retry("forward_url is not set");
    }
    let answer;
    try {
      answer = post(url, webhook, attempt);
    } catch (error) {
      return retry(`forwarding to ${url} failed: ${describe(error)}`);
    }
    return classify(answer.status, answer.retryAfter);
  },
};

export const destinations = {
  destination() {
    return destinationOf(setting("forward_url"));
  },
};

// The URL's scheme, host and port (the scheme's own when none is given): never its
// credentials, path or query, which may hold a secret.
function destinationOf(url) {
  const match = /^(https?):\/\/(.*)$/s.exec(url ?? "");
  if (!match) {
    return "forward_url not set or not http(s)";
  }
  const [, scheme, all] = match;
  // A user and password end at the last `@` before the query, and may hold a `/`.
  const query = all.search(/[?#]/);
  const rest = all.slice(all.lastIndexOf("@", query < 0 ? all.length : query - 1) + 1);
  const end = rest.search(/[/?#]/);
  const host = (end < 0 ? rest : rest.slice(0, end)).toLowerCase();
  if (!host) {
    return "forward_url not set or not http(s)";
  }
  const hasPort = /:[0-9]*$/.test(host.slice(host.lastIndexOf("]") + 1));
  return `${scheme}://${host}${hasPort ? "" : scheme === "https" ? ":443" : ":80"}`;
}

function retry(reason, delayMs) {
  // delay-ms is a u64: a BigInt, or undefined for none.
  return { tag: "retry", val: { reason, delayMs } };
}

function classify(status, retryAfter) {
  if (status >= 200 && status <= 299) {
    return { tag: "completed" };
  }
  if (status === 408 || status === 429 || (status >= 500 && status <= 599)) {
    return retry(`destination answered ${status}`, delayMs(retryAfter));
  }
  return { tag: "reject", val: `destination answered ${status}` };
}

// `Retry-After` in seconds, as milliseconds; the inbox caps it (INBOX_RETRY_MAX_DELAY_MS).
function delayMs(retryAfter) {
  const seconds = (retryAfter ?? "").trim();
  if (!/^[0-9]+$/.test(seconds)) {
    return undefined;
  }
  const clamped = BigInt(seconds) < MAX_RETRY_AFTER_S ? BigInt(seconds) : MAX_RETRY_AFTER_S;
  return clamped * 1000n;
}

// POSTs the payload, byte for byte, with its content type: { status, retryAfter }.
function post(url, webhook, attempt) {
  const match = /^(https?):\/\/([^/?#]+)([^#]*)/.exec(url);
  if (!match) {
    throw new Error("forward_url must be an http:// or https:// URL");
  }
  const [, scheme, authority, path] = match;
  const contentType =
    webhook.headers.find(([name]) => name === "content-type")?.[1] ?? "application/json";
  const headers = [
    ["content-type", contentType],
    ["content-length", String(webhook.payload.length)],
    ["x-inbox-webhook-id", webhook.id],
    ["x-inbox-origin", webhook.origin],
    ["x-inbox-event-type", webhook.eventType],
    ["x-inbox-attempt", String(attempt)],
  ];
  const token = setting("processor_token");
  if (token) {
    headers.push(["authorization", `Bearer ${token}`]);
  }

  const request = new OutgoingRequest(
    Fields.fromList(headers.map(([name, value]) => [name, encoder.encode(value)])),
  );
  request.setMethod({ tag: "post" });
  request.setScheme({ tag: scheme === "https" ? "HTTPS" : "HTTP" });
  request.setAuthority(authority);
  request.setPathWithQuery(path.startsWith("/") ? path : `/${path}`);
  const body = request.body();

  // Connecting, then the first byte of the answer, take at most 3/4 of the attempt's
  // deadline: a slow destination is a retry, not an attempt the host cuts short.
  const deadlineNs = BigInt(setting("processor_timeout_ms") ?? DEFAULT_DEADLINE_MS) * 1000000n;
  const options = new RequestOptions();
  options.setConnectTimeout(deadlineNs / 4n);
  options.setFirstByteTimeout(deadlineNs / 2n);
  const pending = handle(request, options);

  const stream = body.write();
  let sent = true;
  try {
    for (let start = 0; start < webhook.payload.length; start += WRITE_CHUNK) {
      stream.blockingWriteAndFlush(webhook.payload.subarray(start, start + WRITE_CHUNK));
    }
  } catch {
    // The body could not be sent: the answer below says why (e.g. the connection was refused).
    sent = false;
  }
  // A child resource goes before its parent (the body).
  stream[Symbol.dispose]();
  if (sent) {
    OutgoingBody.finish(body, undefined);
  }

  const ready = pending.subscribe();
  ready.block();
  ready[Symbol.dispose]();
  // Ready after block(): { tag: "ok", val: { tag: "ok" | "err", val } }.
  const answer = pending.get();
  pending[Symbol.dispose]();
  if (answer?.tag !== "ok") {
    throw new Error("no answer");
  }
  if (answer.val.tag !== "ok") {
    throw { payload: answer.val.val };
  }
  const response = answer.val.val;
  const fields = response.headers();
  const retryAfter = fields.get("retry-after");
  fields[Symbol.dispose]();
  const status = response.status();
  drain(response);
  response[Symbol.dispose]();
  return { status, retryAfter: retryAfter.length ? decoder.decode(retryAfter[0]) : undefined };
}

// Reads the answer's body to its end, so that the connection is released cleanly.
function drain(response) {
  const body = response.consume();
  const stream = body.stream();
  try {
    for (;;) {
      stream.blockingRead(65536n);
    }
  } catch {
    // closed: the body has ended
  }
  stream[Symbol.dispose]();
  IncomingBody.finish(body)[Symbol.dispose]();
}

function describe(error) {
  // A WASI error arrives as a ComponentError carrying the WIT error as `payload`.
  if (error?.payload === undefined) {
    return String(error?.message ?? error);
  }
  return JSON.stringify(error.payload, (_, value) =>
    typeof value === "bigint" ? value.toString() : value,
  );
}
