// Fan-out load generator for bench/run.py: N graphql-ws (graphql-transport-ws)
// subscribers on one subscription; measures deliveries and end-to-end latency.
//
// Protocol with the harness (stdout is JSON lines, one object per line):
//   1. connects N clients (at most --connect-concurrency still waiting for their
//      first message at once); each client's first message is the snapshot;
//   2. prints {"event":"ready",...} once every client has had its first message;
//   3. waits for a line "go" on stdin, then counts messages for --warmup seconds
//      (discarded) and --duration seconds (measured);
//   4. prints {"event":"result",...}, disposes every client and exits.
// Latency = receive wall-clock time - the tick's `time` field (same machine clock).
// With --stalled K, the first K subscribers stop reading their sockets at "go" (slow
// consumers: the kernel buffers fill and the server must cope); the figures are the
// other subscribers' only.
// Everything is bounded: a client that fails to connect within --connect-timeout
// seconds aborts the run with {"event":"error"} and exit code 2.

import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    query: { type: 'string' },
    field: { type: 'string', default: 'ticks' },
    subscribers: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '2' },
    duration: { type: 'string', default: '10' },
    'connect-concurrency': { type: 'string', default: '50' },
    'connect-timeout': { type: 'string', default: '120' },
    stalled: { type: 'string', default: '0' },
  },
});

const N = Number(opts.subscribers);
const WARMUP_MS = Number(opts.warmup) * 1000;
const DURATION_MS = Number(opts.duration) * 1000;
const CONCURRENCY = Number(opts['connect-concurrency']);
const CONNECT_TIMEOUT_MS = Number(opts['connect-timeout']) * 1000;
const FIELD = opts.field;
const STALLED = Math.min(N, Number(opts.stalled));

// Latency histogram: 0.1 ms buckets up to 60 s, plus an overflow bucket.
const BUCKET_MS = 0.1;
const BUCKETS = 600_000;
const histogram = new Uint32Array(BUCKETS + 1);
let latencyMax = 0;
let latencySum = 0;

let phase = 'connecting'; // connecting | warmup | measure | done
let measured = 0;
let warmupMessages = 0;
let errors = 0;
let lastError = null;
const perClient = new Uint32Array(N);

const now = () => performance.timeOrigin + performance.now();

function emit(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

// ISO 8601 with microseconds -> epoch milliseconds (fractional).
function tickTimeMs(iso) {
  const dot = iso.indexOf('.');
  if (dot < 0) return Date.parse(iso);
  let end = dot + 1;
  while (end < iso.length && iso.charCodeAt(end) >= 48 && iso.charCodeAt(end) <= 57) end += 1;
  const fraction = Number(`0${iso.slice(dot, end)}`) * 1000;
  return Date.parse(iso.slice(0, dot) + iso.slice(end)) + fraction;
}

function record(index, data) {
  if (index < STALLED && phase !== 'connecting') return;
  if (phase === 'measure') {
    const tick = data?.[FIELD];
    if (!tick) return;
    const latency = now() - tickTimeMs(tick.time);
    const bucket = Math.min(BUCKETS, Math.max(0, Math.floor(latency / BUCKET_MS)));
    histogram[bucket] += 1;
    latencySum += latency;
    if (latency > latencyMax) latencyMax = latency;
    measured += 1;
    perClient[index] += 1;
  } else if (phase === 'warmup') {
    warmupMessages += 1;
  }
}

function percentile(p) {
  if (measured === 0) return null;
  const rank = Math.ceil((p / 100) * measured);
  let seen = 0;
  for (let i = 0; i <= BUCKETS; i += 1) {
    seen += histogram[i];
    if (seen >= rank) return Math.round((i + 1) * BUCKET_MS * 1000) / 1000;
  }
  return latencyMax;
}

const clients = [];
const disposers = [];
// The socket of each subscriber, by index (to stall the first STALLED of them).
const sockets = new Array(N);

function trackedWebSocket(index) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets[index] = this;
    }
  };
}

function stall() {
  for (let i = 0; i < STALLED; i += 1) {
    // ws keeps its net.Socket here; pausing it stops reading, so the kernel's
    // receive buffer fills and the server's writes to this client back up.
    sockets[i]?._socket?.pause();
  }
}

function startClient(index) {
  return new Promise((resolve, reject) => {
    let first = true;
    const client = createClient({
      url: opts.url,
      webSocketImpl: trackedWebSocket(index),
      lazy: true,
      retryAttempts: 0,
      keepAlive: 0,
      shouldRetry: () => false,
    });
    clients.push(client);
    const dispose = client.subscribe(
      { query: opts.query },
      {
        next: (message) => {
          if (message.errors) {
            errors += 1;
            lastError = JSON.stringify(message.errors).slice(0, 300);
          }
          if (first) {
            first = false;
            resolve();
            return;
          }
          record(index, message.data);
        },
        error: (error) => {
          errors += 1;
          lastError = String(error?.message ?? error?.reason ?? error).slice(0, 300);
          if (first) reject(new Error(`subscriber ${index}: ${lastError}`));
        },
        complete: () => {
          if (first) reject(new Error(`subscriber ${index} completed before its first message`));
        },
      },
    );
    disposers.push(dispose);
  });
}

async function connectAll() {
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const index = next;
      next += 1;
      await startClient(index);
    }
  };
  const workers = Array.from({ length: Math.min(CONCURRENCY, N) }, worker);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`only ${next} of ${N} subscribers connected in time`)),
      CONNECT_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([Promise.all(workers), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function shutdown(code) {
  phase = 'done';
  for (const dispose of disposers) dispose();
  await Promise.allSettled(clients.map((client) => client.dispose()));
  process.exit(code);
}

function waitForGo() {
  return new Promise((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() === 'go') {
        lines.close();
        resolve();
      }
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const connectStarted = now();
  try {
    await connectAll();
  } catch (error) {
    emit({ event: 'error', message: String(error.message ?? error), errors, lastError });
    await shutdown(2);
    return;
  }
  emit({ event: 'ready', subscribers: N, connectSeconds: (now() - connectStarted) / 1000 });
  await waitForGo();
  stall();
  phase = 'warmup';
  await sleep(WARMUP_MS);
  phase = 'measure';
  const started = now();
  await sleep(DURATION_MS);
  phase = 'done';
  const seconds = (now() - started) / 1000;
  let minPerClient = Infinity;
  let maxPerClient = 0;
  for (let i = STALLED; i < N; i += 1) {
    const count = perClient[i];
    if (count < minPerClient) minPerClient = count;
    if (count > maxPerClient) maxPerClient = count;
  }
  emit({
    event: 'result',
    subscribers: N,
    stalled: STALLED,
    seconds,
    messages: measured,
    warmupMessages,
    deliveriesPerSecond: measured / seconds,
    latencyMs: {
      p50: percentile(50),
      p90: percentile(90),
      p99: percentile(99),
      max: measured ? Math.round(latencyMax * 1000) / 1000 : null,
      mean: measured ? latencySum / measured : null,
    },
    perSubscriber: { min: minPerClient, max: maxPerClient },
    errors,
    lastError,
  });
  await shutdown(0);
}

process.on('SIGTERM', () => shutdown(143));
main();
