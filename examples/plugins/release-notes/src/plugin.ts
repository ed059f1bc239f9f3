// release-notes: a jira-orchestrator plugin in TypeScript, on nats.js, without any SDK.
//
// What a plugin must do to be routed work (docs/protocol.md, "Writing a plugin in TypeScript"):
//  - serve `plugin/<id>/request`: plain NATS requests, and the durable ones JetStream keeps,
//    read through the one durable consumer every replica of the plugin shares;
//  - answer the presence probes of durable requests;
//  - answer JSON-RPC on `plugin/<id>/rpc`: `health_check` (the orchestrator's heartbeat asks
//    it every few seconds), `get_status`, `execute_command` and `rpc.discover`;
//  - announce `ready` on `plugin/<id>/status`, and `draining` then `stopped` on SIGTERM.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import {
  AckPolicy,
  connect,
  DeliverPolicy,
  nanos,
  ReplayPolicy,
  type JetStreamClient,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "nats";

import { CallerError, Changelog, sectionOf, SECTIONS, type Issue, type Section } from "./changelog.js";
import {
  consumerName,
  deadline,
  decode,
  deliveries,
  DEAD_LETTER_TOPIC,
  DELIVER_PREFIX,
  DURABLE_PREFIX,
  encode,
  envelope,
  InvalidMessage,
  MAX_MESSAGE_BYTES,
  PRESENCE_PREFIX,
  PRESENCE_QUEUE,
  REPLY_HEADER,
  responseTo,
  settings,
  subjectOf,
  type Envelope,
} from "./protocol.js";
import { problems, type Schema } from "./validate.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const manifest = JSON.parse(readFileSync(join(ROOT, ".claude-plugin", "plugin.json"), "utf-8")) as {
  name: string;
  version?: string;
  routing?: { acceptsRoutingFrom?: string[] };
  orchestration?: { maxConcurrentTasks?: number; drainTimeout?: number };
};
const ID = manifest.name;
const ACCEPTS = manifest.routing?.acceptsRoutingFrom ?? ["*"];
const MAX_CONCURRENT = manifest.orchestration?.maxConcurrentTasks ?? 10;
const DRAIN_MS = manifest.orchestration?.drainTimeout ?? 10_000;
const REQUEST_TOPIC = `plugin/${ID}/request`;
// A plugin's own dead letters travel on system/dead-letter/<id>: the subject says who sent them.
const LETTER_TOPIC = `${DEAD_LETTER_TOPIC}/${ID}`;
const config = settings(process.env, ID);
const changelog = new Changelog(join(config.outputDir, ID));

function say(text: string): void {
  console.log(text); // `up` prefixes each line with the plugin's name
}

// -- commands: `{command, parameters}` on plugin/<id>/request ---------------------------

interface Command {
  description: string;
  params: Schema;
  run(parameters: Record<string, unknown>): Promise<unknown>;
}

const strings: Schema = { type: "array", items: { type: "string" } };

const COMMANDS: Record<string, Command> = {
  handle_issue: {
    description: "File a finished issue under its section of the Unreleased changes.",
    params: {
      type: "object",
      required: ["summary"],
      properties: {
        key: { type: "string" },
        summary: { type: "string", minLength: 1 },
        description: { type: "string" },
        issueType: { type: "string" },
        labels: strings,
        components: strings,
        files: strings,
      },
    },
    async run(parameters) {
      const issue: Issue = {
        key: "",
        description: "",
        issueType: "Task",
        labels: [],
        components: [],
        files: [],
        ...(parameters as Partial<Issue>),
        summary: String(parameters.summary),
      };
      failOnDemand();
      const section = sectionOf(issue);
      const added = await changelog.add({ key: issue.key, section, text: issue.summary });
      return { filePath: changelog.markdownPath, ...added };
    },
  },
  add_entry: {
    description: "Add a line under a section of the Unreleased changes.",
    params: {
      type: "object",
      required: ["text", "section"],
      additionalProperties: false,
      properties: {
        text: { type: "string", minLength: 1 },
        section: { type: "string", enum: [...SECTIONS] },
        key: { type: "string" },
      },
    },
    async run(parameters) {
      failOnDemand();
      const added = await changelog.add({
        key: typeof parameters.key === "string" ? parameters.key : "",
        section: parameters.section as Section,
        text: String(parameters.text),
      });
      return { filePath: changelog.markdownPath, ...added };
    },
  },
  release: {
    description: "Cut a version: the Unreleased changes become its release notes.",
    params: {
      type: "object",
      required: ["version"],
      additionalProperties: false,
      properties: { version: { type: "string" }, date: { type: "string", description: "YYYY-MM-DD" } },
    },
    async run(parameters) {
      failOnDemand();
      const date = typeof parameters.date === "string" ? parameters.date : undefined;
      return {
        filePath: changelog.markdownPath,
        ...(await changelog.release(String(parameters.version), date)),
      };
    },
  },
  notes: {
    description: "The release notes of a version (default: the Unreleased changes), as Markdown.",
    params: { type: "object", additionalProperties: false, properties: { version: { type: "string" } } },
    async run(parameters) {
      return changelog.notes(typeof parameters.version === "string" ? parameters.version : undefined);
    },
  },
};

/** `--fail release-notes` of `up` and `demo`: the examples fail on demand. */
function failOnDemand(): void {
  if ((process.env.DEMO_FAIL ?? "").split(",").includes(ID)) {
    throw Object.assign(new Error("changelog storage unreachable"), { name: "ConnectionError" });
  }
}

class MethodNotFound extends Error {
  override name = "MethodNotFound";
}

async function execute(command: string, parameters: unknown): Promise<unknown> {
  const found = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (found === undefined) {
    throw new MethodNotFound(
      `unknown command ${JSON.stringify(command)}; known: ${Object.keys(COMMANDS).join(", ")}`,
    );
  }
  const given = parameters ?? {};
  const wrong = problems(found.params, given, "parameters");
  if (wrong.length > 0) throw new CallerError(`invalid parameters for ${command}: ${wrong.join("; ")}`);
  return found.run(given as Record<string, unknown>);
}

// -- figures behind get_status and health_check ----------------------------------------

const metrics = {
  started: Date.now(),
  inFlight: 0,
  processed: 0,
  failed: 0,
  rejected: 0,
  latencies: [] as number[],
};
let idle: (() => void)[] = []; // waiting for inFlight to reach 0
let state: "starting" | "ready" | "draining" | "stopped" = "starting";

function percentile(share: number): number {
  const sorted = [...metrics.latencies].sort((a, b) => a - b);
  return sorted.length === 0
    ? 0
    : (sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))] ?? 0);
}

function errorRate(): number {
  const total = metrics.processed + metrics.failed;
  return total === 0 ? 0 : metrics.failed / total;
}

const isCallerError = (error: Error): boolean =>
  error instanceof CallerError || error instanceof MethodNotFound;

/** Run a command, from a request or from RPC `execute_command`, counted in the figures. */
async function measured(command: string, parameters: unknown): Promise<unknown> {
  const begun = performance.now();
  metrics.inFlight += 1;
  try {
    const result = await execute(command, parameters);
    metrics.processed += 1;
    return result;
  } catch (error) {
    const failure = error as Error;
    if (!isCallerError(failure)) {
      metrics.failed += 1;
      say(`command ${command} failed: ${failure.name}: ${failure.message}`);
    }
    throw failure;
  } finally {
    metrics.inFlight -= 1;
    if (metrics.inFlight === 0) {
      const waking = idle;
      idle = [];
      for (const wake of waking) wake();
    }
    metrics.latencies.push(performance.now() - begun);
    if (metrics.latencies.length > 1000) metrics.latencies.shift();
  }
}

/** The seed's reply: `{status: "success", result}` or `{status: "error", error, errorType}`,
 * with `callerError: true` when the request itself is at fault. */
async function serveCommand(payload: unknown): Promise<Record<string, unknown>> {
  if (
    typeof payload !== "object" ||
    payload === null ||
    typeof (payload as { command?: unknown }).command !== "string"
  ) {
    return {
      status: "error",
      error: "a request needs {command: str, parameters: {...}}",
      errorType: "InvalidParams",
      callerError: true,
    };
  }
  const { command, parameters } = payload as { command: string; parameters?: unknown };
  try {
    return { status: "success", result: await measured(command, parameters) };
  } catch (error) {
    const failure = error as Error;
    return {
      status: "error",
      error: failure.message,
      errorType: failure.name,
      ...(isCallerError(failure) ? { callerError: true } : {}),
    };
  }
}

// -- JSON-RPC 2.0 on plugin/<id>/rpc ----------------------------------------------------

interface Method {
  description: string;
  params: Schema;
  call(params: Record<string, unknown>): unknown;
}

const none: Schema = { type: "object", additionalProperties: false, properties: {} };

const METHODS: Record<string, Method> = {
  health_check: {
    description: "healthy, degraded (error rate over 50%) or unhealthy (not serving).",
    params: none,
    call: () => ({
      status: state !== "ready" ? "unhealthy" : errorRate() > 0.5 ? "degraded" : "healthy",
      latency: Math.round(percentile(0.5) * 1000) / 1000,
      errorRate: Math.round(errorRate() * 10_000) / 10_000,
      circuitBreakerState: null,
      timestamp: new Date().toISOString(),
    }),
  },
  get_status: {
    description: "Live figures: uptime, requests in flight, processed, failed, latency.",
    params: none,
    call: () => ({
      plugin: ID,
      version: manifest.version ?? "0.0.0",
      status: state === "ready" ? "running" : state,
      uptime: (Date.now() - metrics.started) / 1000,
      activeRequests: metrics.inFlight,
      requestsProcessed: metrics.processed,
      requestsFailed: metrics.failed,
      requestsRejected: metrics.rejected,
      errorRate: Math.round(errorRate() * 10_000) / 10_000,
      latencyMs: { p50: percentile(0.5), p95: percentile(0.95), p99: percentile(0.99) },
      circuitBreakerState: null,
      commands: Object.keys(COMMANDS).sort(),
      runtime: `node ${process.versions.node}`,
    }),
  },
  execute_command: {
    description: "Run one of this plugin's commands and return its result.",
    params: {
      type: "object",
      required: ["command"],
      additionalProperties: false,
      properties: { command: { type: "string" }, parameters: { type: "object" } },
    },
    call: (params) => measured(String(params.command), params.parameters),
  },
  "rpc.discover": {
    description: "List the methods of this server with JSON Schemas of their parameters.",
    params: none,
    call: () => ({
      endpoint: `plugin://${ID}/rpc`,
      methods: Object.entries(METHODS).map(([name, method]) => ({
        name,
        description: method.description,
        params: method.params,
      })),
    }),
  },
};

const rpcError = (id: unknown, code: number, message: string, data?: unknown): Record<string, unknown> => ({
  jsonrpc: "2.0",
  error: data === undefined ? { code, message } : { code, message, data },
  id: id ?? null,
});

async function serveRpc(request: unknown): Promise<Record<string, unknown>> {
  const call = (typeof request === "object" && request !== null ? request : {}) as Record<string, unknown>;
  const id = call.id;
  if (call.jsonrpc !== "2.0" || typeof call.method !== "string") {
    return rpcError(id, -32600, "invalid JSON-RPC 2.0 request: needs jsonrpc '2.0' and a string method");
  }
  const method = Object.hasOwn(METHODS, call.method) ? METHODS[call.method] : undefined;
  if (method === undefined)
    return rpcError(id, -32601, `method ${JSON.stringify(call.method)} not found on plugin://${ID}/rpc`);
  const params = call.params ?? {};
  const wrong = problems(method.params, params);
  if (wrong.length > 0) return rpcError(id, -32602, `invalid params for ${call.method}: ${wrong.join("; ")}`);
  try {
    return { jsonrpc: "2.0", result: await method.call(params as Record<string, unknown>), id };
  } catch (error) {
    const failure = error as Error;
    if (failure instanceof MethodNotFound) return rpcError(id, -32601, failure.message);
    if (failure instanceof CallerError) return rpcError(id, -32602, failure.message);
    return rpcError(id, -32603, `${failure.name}: ${failure.message}`, {
      type: failure.name,
      message: failure.message,
    });
  }
}

// -- the bus ---------------------------------------------------------------------------

let nc: NatsConnection;
let js: JetStreamClient | undefined;
const subscriptions: Subscription[] = [];
let slots = MAX_CONCURRENT;
const waiting: (() => void)[] = [];

async function slot<T>(work: () => Promise<T>): Promise<T> {
  while (slots === 0) await new Promise<void>((resolve) => waiting.push(resolve));
  slots -= 1;
  try {
    return await work();
  } finally {
    slots += 1;
    waiting.shift()?.();
  }
}

function send(subject: string, message: Envelope): void {
  nc.publish(subject, encode(message));
}

/** A dead letter (docs/protocol.md, "Dead letters"): durable when JetStream is on. A
 * letter about bytes that are not a message has `message: null`, their text as `raw`
 * (invalid UTF-8 replaced, cut to half the size limit) and `rawTruncated`. */
async function deadLetter(
  reason: string,
  error: Error | null,
  message: Envelope | null,
  subscription: string,
  raw?: Uint8Array,
): Promise<void> {
  const payload: Record<string, unknown> = {
    reason,
    error: error === null ? null : { type: error.name, message: error.message },
    subscriber: ID,
    subscription,
    message,
  };
  if (raw !== undefined) {
    const limit = MAX_MESSAGE_BYTES / 2;
    payload.raw = new TextDecoder().decode(raw.subarray(0, limit));
    payload.rawTruncated = raw.length > limit;
  }
  const letter = envelope(ID, LETTER_TOPIC, "event", payload, message === null ? {} : { cause: message });
  say(`dead letter (${reason}): ${error?.message ?? message?.messageId ?? ""}`);
  try {
    if (js !== undefined) {
      await js.publish(DURABLE_PREFIX + subjectOf(LETTER_TOPIC), encode(letter), {
        msgID: letter.messageId,
      });
    } else {
      send(subjectOf(LETTER_TOPIC), letter);
    }
  } catch (failure) {
    say(`could not publish a dead letter: ${(failure as Error).message}`);
  }
}

/** Answer a request: to the NATS reply subject of a plain request, to `Jo-Reply-To` of a
 * durable one. */
function answer(replyTo: string | undefined, request: Envelope, payload: unknown, status?: string): void {
  if (replyTo) send(replyTo, responseTo(request, ID, payload, status));
}

/**
 * The request in `msg`, checked: bytes that are not a message, or an envelope naming
 * another topic than the subject it came on (the subject wins: the server checked the
 * sender's rights against it), are dead-lettered and answered at once with an error, so
 * the sender does not wait out its timeout. Null then.
 */
async function read(msg: Msg, topic: string, replyTo: string | undefined): Promise<Envelope | null> {
  try {
    const request = decode(msg.data);
    if (request.topic !== topic) {
      throw new InvalidMessage(`topic: the envelope says ${request.topic} but it came on ${msg.subject}`);
    }
    return request;
  } catch (error) {
    const failure = error instanceof InvalidMessage ? error : new InvalidMessage(String(error));
    let correlationId: string | null = null;
    try {
      const document = JSON.parse(new TextDecoder().decode(msg.data)) as { correlationId?: unknown } | null;
      if (typeof document?.correlationId === "string") correlationId = document.correlationId;
    } catch {
      // not even JSON: the answer's correlationId stays null
    }
    const stub = envelope("", topic, "request", null, { correlationId });
    answer(replyTo, stub, { error: { type: failure.name, message: failure.message } }, "error");
    await deadLetter("invalid-message", failure, null, msg.subject, msg.data);
    return null;
  }
}

/** One request, from either path: checked, handled, answered (or dead-lettered). */
async function handleRequest(request: Envelope, replyTo: string | undefined): Promise<void> {
  const until = deadline(request);
  if (until !== null && until <= Date.now()) {
    const late = new Error(`its sender stopped waiting at ${new Date(until).toISOString()}`);
    await deadLetter("expired", late, request, REQUEST_TOPIC);
    return;
  }
  if (!ACCEPTS.includes("*") && !ACCEPTS.includes(request.source)) {
    metrics.rejected += 1;
    const error = Object.assign(
      new Error(`${JSON.stringify(request.source)} may not route work to ${JSON.stringify(ID)}`),
      {
        name: "CommandRejected",
      },
    );
    answer(replyTo, request, {
      status: "error",
      error: error.message,
      errorType: error.name,
      callerError: true,
    });
    await deadLetter("rejected-source", error, request, REQUEST_TOPIC);
    return;
  }
  answer(replyTo, request, await slot(() => serveCommand(request.payload)));
}

async function onCoreRequest(msg: Msg): Promise<void> {
  const request = await read(msg, REQUEST_TOPIC, msg.reply);
  if (request !== null) await handleRequest(request, msg.reply);
}

/** A durable request from the shared JetStream consumer: acked once answered (or
 * dead-lettered); while it runs and its caller still waits, JetStream hears every
 * ack_wait / 2 that it is in progress, so it is not handed to another replica meanwhile. */
async function onDurableRequest(msg: Msg): Promise<void> {
  const ack = msg.reply;
  if (!ack) return;
  if (state === "draining" || state === "stopped") {
    nc.publish(ack, "-NAK"); // leaving: another replica takes it
    return;
  }
  const replyTo = msg.headers?.get(REPLY_HEADER) || undefined;
  const request = await read(msg, REQUEST_TOPIC, replyTo);
  if (request === null) {
    nc.publish(ack, "+ACK"); // redelivering bad bytes cannot help
    return;
  }
  request.metadata.retryCount += deliveries(ack) - 1; // the handler may have seen it before
  const until = deadline(request) ?? Number.POSITIVE_INFINITY;
  const keepAlive = setInterval(
    () => {
      if (Date.now() < until) nc.publish(ack, "+WPI");
    },
    Math.max(config.ackWaitMs / 2, 100),
  );
  try {
    await handleRequest(request, replyTo);
    nc.publish(ack, "+ACK");
  } catch (error) {
    say(`request failed: ${(error as Error).message}; redelivering`);
    nc.publish(ack, "-NAK");
  } finally {
    clearInterval(keepAlive);
  }
}

async function onRpc(msg: Msg): Promise<void> {
  if (!msg.reply) return;
  // plugin.<id>.rpc.<caller>: the subject names the caller (the server checked it)
  const request = await read(msg, msg.subject.split(".").join("/"), msg.reply);
  if (request === null) return;
  const until = deadline(request);
  if (until !== null && until <= Date.now()) return; // nobody waits any more
  answer(msg.reply, request, await serveRpc(request.payload));
}

function listen(subject: string, queue: string, handler: (msg: Msg) => Promise<void>): void {
  subscriptions.push(
    nc.subscribe(subject, {
      queue,
      callback: (error, msg) => {
        if (error) say(`subscription ${subject}: ${error.message}`);
        else
          handler(msg).catch((failure: Error) => say(`on ${subject}: ${failure.stack ?? failure.message}`));
      },
    }),
  );
}

/** Bind to the durable consumer the plugin's replicas share. With `?jetstream=bind` (as
 * `up` runs plugins) it must exist: the orchestrator's side creates it, and this user may
 * only look it up and ack. Otherwise a replica that finds none creates it, with the
 * configuration every replica uses, in any language. */
async function joinDurableQueue(): Promise<string> {
  const stream = `${config.streamPrefix}_REQUESTS`;
  const name = consumerName(stream, REQUEST_TOPIC, ID);
  const jsm = await nc.jetstreamManager({ checkAPI: false }); // $JS.API.INFO is not ours
  // The stream, and with `bind` the consumer, may be a moment behind: an SDK process (the
  // orchestrator) creates them. Asked every 0.5 s, for 30 s (the stream) or 5 s (the consumer).
  for (let attempt = 1; ; attempt++) {
    try {
      await jsm.consumers.info(stream, name);
      return name;
    } catch (error) {
      const text = String((error as Error).message);
      const noConsumer = /consumer not found/i.test(text);
      if (noConsumer && !config.bind) break;
      if (noConsumer && attempt >= 10) {
        throw new Error(
          `the durable consumer ${name} of ${stream} does not exist, and with ?jetstream=bind this ` +
            "plugin may not create it: the orchestrator's side creates it (up does before starting the plugins)",
        );
      }
      if (!noConsumer && (!/stream not found/i.test(text) || attempt >= 60)) {
        throw new Error(`cannot look up the durable consumer ${name} of ${stream}: ${text}`);
      }
      if (attempt === 1) say(`waiting for ${noConsumer ? `the consumer ${name}` : `the stream ${stream}`}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  await jsm.consumers.add(stream, {
    name,
    durable_name: name,
    deliver_subject: DELIVER_PREFIX + name,
    deliver_group: ID,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(config.ackWaitMs),
    max_deliver: config.maxDeliver,
    max_ack_pending: config.maxAckPending,
    replay_policy: ReplayPolicy.Instant,
    filter_subject: DURABLE_PREFIX + subjectOf(REQUEST_TOPIC),
  });
  return name;
}

function announce(status: "ready" | "draining" | "stopped"): void {
  state = status;
  send(
    subjectOf(`plugin/${ID}/status`),
    envelope(ID, `plugin/${ID}/status`, "event", { status, timestamp: new Date().toISOString() }),
  );
}

async function start(): Promise<void> {
  try {
    nc = await connect({
      servers: config.servers,
      ...(config.user === undefined ? {} : { user: config.user }),
      ...(config.pass === undefined ? {} : { pass: config.pass }),
      ...(config.token === undefined ? {} : { token: config.token }),
      ...(config.inboxPrefix === undefined ? {} : { inboxPrefix: config.inboxPrefix }),
      name: ID,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      timeout: 5000,
    });
  } catch (error) {
    console.error(
      `error: cannot connect to NATS at ${config.servers.join(",")}: ${(error as Error).message}`,
    );
    process.exit(1);
  }
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect" || status.type === "error") {
        say(`NATS ${status.type}: ${String(status.data)}`);
      }
    }
  })();
  listen(subjectOf(REQUEST_TOPIC), ID, onCoreRequest);
  listen(subjectOf(`plugin/${ID}/rpc`), `${ID}-rpc`, onRpc);
  listen(subjectOf(`plugin/${ID}/rpc/*`), `${ID}-rpc`, onRpc);
  if (config.durable) {
    js = nc.jetstream();
    const name = await joinDurableQueue();
    listen(DELIVER_PREFIX + name, ID, onDurableRequest);
    listen(PRESENCE_PREFIX + subjectOf(REQUEST_TOPIC), PRESENCE_QUEUE, async (msg) => {
      msg.respond(new Uint8Array()); // "somebody answers plugin/<id>/request"
    });
  }
  await nc.flush(); // every subscription is live on the server before we say ready
  announce("ready");
  say(
    `${ID} ready (node ${process.versions.node}, nats.js, ${config.durable ? "durable requests" : "core requests only"})`,
  );
}

async function stop(signal: string): Promise<void> {
  if (state === "draining" || state === "stopped") return;
  if (state === "starting") {
    say(`${signal} while starting: stopped`); // nothing taken yet, nothing to hand back
    process.exit(0);
  }
  say(`${signal}: draining`);
  announce("draining");
  await Promise.allSettled(subscriptions.map((subscription) => subscription.drain()));
  if (metrics.inFlight > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => idle.push(resolve)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, DRAIN_MS))),
    ]);
    clearTimeout(timer);
  }
  if (metrics.inFlight > 0) say(`stopped with ${metrics.inFlight} request(s) still in flight`);
  announce("stopped");
  try {
    await nc.drain(); // what is still buffered reaches the server, then the connection closes
  } catch (error) {
    say(`closing the connection: ${(error as Error).message}`);
  }
  say(`${ID} stopped`);
  process.exit(0);
}

process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
try {
  await start();
} catch (error) {
  console.error(`error: ${ID} could not start: ${(error as Error).message}`);
  process.exit(1);
}
