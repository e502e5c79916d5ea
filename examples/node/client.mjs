// quantgraph from Node: list symbols with a plain fetch, then stream live ticks
// over WebSocket (graphql-transport-ws, via graphql-ws + ws), one JSON object
// per line.
//
//   npm install            # in examples/node
//   node client.mjs [URL] [COUNT] [SYMBOL]
//   node client.mjs http://127.0.0.1:8000/graphql 3 BTCUSDT
//
// Output:
//   {"event":"symbols","symbols":[{"code":"000001.SZ",...},...]}
//   {"event":"tick","tick":{"symbol":"BTCUSDT","last":"95000.00",...}}
//   {"event":"done","ticks":3}
//
// Market data needs no login. QUANTGRAPH_TOKEN, when set (an access token from
// the `login` mutation), is sent as "Authorization: Bearer <token>" on the HTTP
// request and in the connection_init payload of the WebSocket.

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const SYMBOLS_QUERY = `
  query Symbols($first: Int!) {
    symbols(first: $first) {
      edges { node { code name exchange tickSize lotSize } }
    }
  }
`;

const TICKS_SUBSCRIPTION = `
  subscription Ticks($symbols: [String!]!) {
    ticks(symbols: $symbols) { symbol time last bid ask volume }
  }
`;

const url = process.argv[2] ?? "http://127.0.0.1:8000/graphql";
const count = Number.parseInt(process.argv[3] ?? "3", 10);
const symbol = process.argv[4] ?? "BTCUSDT";
const timeoutMs = Number.parseInt(process.env.QUANTGRAPH_TIMEOUT_MS ?? "60000", 10);
const token = process.env.QUANTGRAPH_TOKEN;
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};

if (!Number.isInteger(count) || count < 0) {
  console.error(`COUNT must be a non-negative integer, got ${process.argv[3]}`);
  process.exit(2);
}

function emit(event, fields) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function websocketUrl(httpUrl) {
  const parsed = new URL(httpUrl);
  parsed.protocol = parsed.protocol === "https:" ? "wss:" : "ws:";
  return parsed.toString();
}

async function query(document, variables) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", ...authHeaders },
    body: JSON.stringify({ query: document, variables }),
  });
  const body = await response.json();
  if (!response.ok || body.errors) {
    throw new Error(`query failed (HTTP ${response.status}): ${JSON.stringify(body.errors ?? body)}`);
  }
  return body.data;
}

async function streamTicks(symbols, wanted) {
  const client = createClient({
    url: websocketUrl(url),
    webSocketImpl: WebSocket,
    connectionParams: authHeaders,
    lazy: true,
    retryAttempts: 0,
  });
  const subscription = client.iterate({ query: TICKS_SUBSCRIPTION, variables: { symbols } });
  let received = 0;
  const timer = setTimeout(() => {
    console.error(`timed out after ${timeoutMs} ms waiting for ticks`);
    process.exit(1);
  }, timeoutMs);
  try {
    if (wanted > 0) {
      for await (const result of subscription) {
        if (result.errors) {
          throw new Error(`subscription error: ${JSON.stringify(result.errors)}`);
        }
        emit("tick", { tick: result.data.ticks });
        received += 1;
        if (received >= wanted) {
          break; // completes the subscription on the server
        }
      }
    }
  } finally {
    clearTimeout(timer);
    await client.dispose();
  }
  return received;
}

async function main() {
  const data = await query(SYMBOLS_QUERY, { first: 100 });
  emit("symbols", { symbols: data.symbols.edges.map((edge) => edge.node) });
  const received = await streamTicks([symbol], count);
  emit("done", { ticks: received });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
