// The wire protocol of jira-orchestrator (docs/protocol.md), written out for one plugin:
// the JSON envelope, topics and their NATS subjects, the durable consumer a plugin's
// replicas share, and the environment `jira-orchestrator up` starts a plugin with.
// Nothing here comes from the Python SDK: only the documented protocol.

import { createHash, randomBytes } from "node:crypto";

export type MessageType = "request" | "response" | "event" | "command";

export interface Metadata {
  retryCount: number;
  timeout: number | null; // milliseconds
  expiresAt: string | null; // ISO 8601
}

export interface Envelope {
  messageId: string;
  correlationId: string | null;
  timestamp: string;
  source: string;
  destination: string;
  topic: string;
  messageType: MessageType;
  priority: number;
  headers: Record<string, string>;
  payload: unknown;
  metadata: Metadata;
}

/** Bytes that are not a message: the reason says what is wrong and where. */
export class InvalidMessage extends Error {
  override name = "InvalidMessage";
}

export const MAX_MESSAGE_BYTES = 1_048_576;
const SEGMENT = /^[A-Za-z0-9_\-:@~+=]+$/;
const TYPES: readonly MessageType[] = ["request", "response", "event", "command"];

/** A fresh id: 24 hex digits, like the SDK's. */
export function newId(): string {
  return randomBytes(12).toString("hex");
}

/** `2025-12-26T10:00:00.000Z`, the envelope's timestamp format. */
export function now(): string {
  return new Date().toISOString();
}

/** The canonical `/` form of a topic; throws `InvalidMessage` for a malformed one. */
export function canonicalTopic(topic: string): string {
  if (topic.length === 0 || topic.length > 512) {
    throw new InvalidMessage(`topic: must be 1 to 512 characters, not ${topic.length}`);
  }
  const segments = topic.split(/[./]/);
  for (const segment of segments) {
    if (!SEGMENT.test(segment)) {
      throw new InvalidMessage(
        `topic: malformed segment ${JSON.stringify(segment)} in ${JSON.stringify(topic)}`,
      );
    }
  }
  return segments.join("/");
}

/** Whether a topic pattern (`*` one segment, a final `**` one or more) matches `topic`. */
export function matches(pattern: string, topic: string): boolean {
  const want = pattern.split(/[./]/);
  const have = topic.split("/");
  for (let index = 0; index < want.length; index++) {
    if (want[index] === "**" && index === want.length - 1) return have.length > index;
    if (index >= have.length || (want[index] !== "*" && want[index] !== have[index])) return false;
  }
  return want.length === have.length;
}

/** The NATS subject of a canonical topic: `plugin/x/request` is `plugin.x.request`. */
export function subjectOf(topic: string): string {
  return topic.replaceAll("/", ".");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function field<T>(
  document: Record<string, unknown>,
  name: string,
  fallback: T,
  check: (value: unknown) => boolean,
  expected: string,
): T {
  const value = document[name];
  if (value === undefined) return fallback;
  if (!check(value))
    throw new InvalidMessage(`${name}: expected ${expected}, got ${JSON.stringify(value)?.slice(0, 60)}`);
  return value as T;
}

const isString = (v: unknown): boolean => typeof v === "string";
const isStringOrNull = (v: unknown): boolean => v === null || typeof v === "string";

/** Decode and check one message; a missing field takes its documented default. */
export function decode(bytes: Uint8Array): Envelope {
  if (bytes.length > MAX_MESSAGE_BYTES) {
    throw new InvalidMessage(`message of ${bytes.length} bytes is over the ${MAX_MESSAGE_BYTES}-byte limit`);
  }
  let document: unknown;
  try {
    document = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new InvalidMessage(`not UTF-8 JSON: ${(error as Error).message}`);
  }
  if (!isObject(document)) throw new InvalidMessage("a message is a JSON object");
  if (typeof document.topic !== "string") throw new InvalidMessage("topic: required, a string");
  const headers = field<Record<string, unknown>>(document, "headers", {}, isObject, "an object");
  for (const [key, value] of Object.entries(headers)) {
    if (typeof value !== "string") throw new InvalidMessage(`headers.${key}: expected a string`);
  }
  const meta = field<Record<string, unknown>>(document, "metadata", {}, isObject, "an object");
  const retryCount = field<number>(
    meta,
    "retryCount",
    0,
    (v) => Number.isInteger(v) && (v as number) >= 0,
    "an integer >= 0",
  );
  const timeout = field<number | null>(
    meta,
    "timeout",
    null,
    (v) => v === null || (Number.isInteger(v) && (v as number) >= 0),
    "integer milliseconds or null",
  );
  const expiresAt = field<string | null>(
    meta,
    "expiresAt",
    null,
    (v) => v === null || (typeof v === "string" && !Number.isNaN(Date.parse(v))),
    "an ISO 8601 string or null",
  );
  return {
    messageId: field(document, "messageId", newId(), isString, "a string"),
    correlationId: field(document, "correlationId", null, isStringOrNull, "a string or null"),
    timestamp: field(
      document,
      "timestamp",
      now(),
      (v) => typeof v === "string" && !Number.isNaN(Date.parse(v)),
      "an ISO 8601 string",
    ),
    source: field(document, "source", "", isString, "a string"),
    destination: field(document, "destination", "*", isString, "a string"),
    topic: canonicalTopic(document.topic),
    messageType: field(
      document,
      "messageType",
      "event" as MessageType,
      (v) => TYPES.includes(v as MessageType),
      TYPES.join(", "),
    ),
    priority: field(
      document,
      "priority",
      5,
      (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 10,
      "an integer 1..10",
    ),
    headers: headers as Record<string, string>,
    payload: document.payload ?? null,
    metadata: { retryCount, timeout, expiresAt },
  };
}

export function encode(message: Envelope): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(message));
}

/** When the sender stops waiting (epoch ms), or null when it did not say. */
export function deadline(message: Envelope): number | null {
  if (message.metadata.expiresAt !== null) return Date.parse(message.metadata.expiresAt);
  if (message.metadata.timeout !== null) return Date.parse(message.timestamp) + message.metadata.timeout;
  return null;
}

/** A message from `source`, continuing the trace of `cause` when there is one. */
export function envelope(
  source: string,
  topic: string,
  messageType: MessageType,
  payload: unknown,
  options: { cause?: Envelope; destination?: string; correlationId?: string | null; status?: string } = {},
): Envelope {
  const { cause } = options;
  const headers: Record<string, string> = {
    traceId: cause?.headers.traceId ?? newId(),
    spanId: newId(),
  };
  if (cause?.headers.spanId !== undefined) headers.parentSpanId = cause.headers.spanId;
  if (options.status !== undefined) headers.status = options.status;
  return {
    messageId: newId(),
    correlationId: options.correlationId ?? null,
    timestamp: now(),
    source,
    destination: options.destination ?? "*",
    topic,
    messageType,
    priority: cause?.priority ?? 5,
    headers,
    payload,
    metadata: { retryCount: 0, timeout: null, expiresAt: null },
  };
}

/** The response of plugin `source` to `request` (protocol.md, "Request and response"). */
export function responseTo(request: Envelope, source: string, payload: unknown, status?: string): Envelope {
  return envelope(source, `plugin/${source}/response`, "response", payload, {
    cause: request,
    destination: request.source || "*",
    correlationId: request.correlationId,
    ...(status === undefined ? {} : { status }),
  });
}

// -- NATS ------------------------------------------------------------------------------

export const DURABLE_PREFIX = "_jo.durable.";
export const PRESENCE_PREFIX = "_jo.presence.";
export const DELIVER_PREFIX = "_jo.deliver.";
export const PRESENCE_QUEUE = "_jo_presence";
export const REPLY_HEADER = "Jo-Reply-To";
export const DEAD_LETTER_TOPIC = "system/dead-letter";

/**
 * The durable JetStream consumer that every replica of `queue` reading `pattern` from
 * `stream` shares: the same name in every language, so a TypeScript replica and Python
 * replicas of one plugin take turns on one queue instead of each getting every request.
 */
export function consumerName(stream: string, pattern: string, queue: string): string {
  const digest = createHash("sha256").update(`${stream}\n${pattern}\n${queue}`).digest("hex").slice(0, 12);
  return `${queue.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40)}_${digest}`;
}

/** How many times JetStream has delivered a message, from its ack subject (1 = first). */
export function deliveries(ackSubject: string): number {
  const tokens = ackSubject.split(".");
  const count = Number(tokens.length === 9 ? tokens[4] : tokens[6]);
  return Number.isInteger(count) && count > 0 ? count : 1;
}

// -- the environment `jira-orchestrator up` gives a plugin process ---------------------

export interface Settings {
  pluginId: string;
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  inboxPrefix?: string;
  bind: boolean; // only bind to the durable consumer, never create it
  ackWaitMs: number;
  maxDeliver: number;
  maxAckPending: number;
  streamPrefix: string;
  durable: boolean;
  outputDir: string;
}

const hidden = (text: string): string => text.replace(/\/\/[^@/]*@/g, "//***@");

/**
 * Connection settings from the environment `up` gives a plugin process:
 * `JIRA_ORCHESTRATOR_NATS_SERVERS` with `JIRA_ORCHESTRATOR_NATS_USER` and
 * `JIRA_ORCHESTRATOR_NATS_PASSWORD` (or `JIRA_ORCHESTRATOR_NATS_TOKEN`) and
 * `JIRA_ORCHESTRATOR_NATS_INBOX_PREFIX` when set, else
 * what `JIRA_ORCHESTRATOR_BUS_URL` holds (nats.js reads no credentials from a URL). The
 * URL's query carries the options every process of the bus shares (docs/nats.md).
 */
export function settings(env: NodeJS.ProcessEnv, pluginId: string): Settings {
  const url = env.JIRA_ORCHESTRATOR_BUS_URL ?? "nats://127.0.0.1:4222";
  const [base = "", search = ""] = url.split("?", 2);
  const parts = base.split(",").map((part) => {
    try {
      return new URL(part.trim());
    } catch {
      throw new Error(`JIRA_ORCHESTRATOR_BUS_URL: not a URL: ${JSON.stringify(hidden(part))}`);
    }
  });
  for (const part of parts) {
    if (part.protocol !== "nats:" && part.protocol !== "tls:") {
      throw new Error(`JIRA_ORCHESTRATOR_BUS_URL: a nats:// URL is needed, not ${part.protocol}//`);
    }
  }
  const query = new URLSearchParams(search);
  const number = (name: string, fallback: number): number => {
    const text = query.get(name);
    if (text === null) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value <= 0)
      throw new Error(`JIRA_ORCHESTRATOR_BUS_URL: ${name}=${text} is not a positive number`);
    return value;
  };
  const servers = env.JIRA_ORCHESTRATOR_NATS_SERVERS
    ? env.JIRA_ORCHESTRATOR_NATS_SERVERS.split(",")
    : parts.map((part) => `${part.hostname}:${part.port || "4222"}`);
  // `user:password@` is a user, a lone `token@` a token (WHATWG URLs cannot tell them apart).
  const userinfo = /^[a-z]+:\/\/([^@/]*)@/i.exec(base.split(",")[0]?.trim() ?? "")?.[1];
  const colon = userinfo?.indexOf(":") ?? -1;
  const name =
    userinfo === undefined ? undefined : decodeURIComponent(userinfo.slice(0, colon < 0 ? undefined : colon));
  const secret =
    userinfo === undefined || colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
  const split = env.JIRA_ORCHESTRATOR_NATS_SERVERS !== undefined;
  const user = split ? env.JIRA_ORCHESTRATOR_NATS_USER : secret === undefined ? undefined : name;
  const pass = split ? env.JIRA_ORCHESTRATOR_NATS_PASSWORD : secret;
  const token = split ? env.JIRA_ORCHESTRATOR_NATS_TOKEN : secret === undefined ? name : undefined;
  // As the SDK's transport: replies under `_INBOX.<user>` (under `up`, the only inboxes a
  // plugin's user may read), plain `_INBOX` without a user (a token never goes in subjects).
  const inboxPrefix =
    env.JIRA_ORCHESTRATOR_NATS_INBOX_PREFIX ||
    query.get("inbox_prefix") ||
    (user && pass !== undefined && /^[^.*>\s]+$/.test(user) ? `_INBOX.${user}` : undefined);
  const jetstream = query.get("jetstream") ?? "manage";
  if (jetstream !== "manage" && jetstream !== "bind") {
    throw new Error(
      `JIRA_ORCHESTRATOR_BUS_URL: jetstream must be manage or bind, not ${JSON.stringify(jetstream)}`,
    );
  }
  const durablePatterns = query.get("durable");
  return {
    pluginId,
    servers,
    ...(user === undefined ? {} : { user }),
    ...(pass === undefined ? {} : { pass }),
    ...(token === undefined ? {} : { token }),
    ...(inboxPrefix === undefined ? {} : { inboxPrefix }),
    bind: jetstream === "bind",
    ackWaitMs: number("ack_wait", 30) * 1000,
    maxDeliver: number("max_deliver", 5),
    maxAckPending: number("max_ack_pending", 1000),
    streamPrefix: query.get("stream_prefix") ?? "JO",
    // `?durable=` lists the durable topic patterns (empty: none); the default has requests.
    durable:
      durablePatterns === null ||
      durablePatterns
        .split(",")
        .some((p) => p.trim() !== "" && matches(p.trim(), `plugin/${pluginId}/request`)),
    outputDir: env.JIRA_ORCHESTRATOR_OUTPUT ?? "output",
  };
}
