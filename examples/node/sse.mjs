// Live ticks over plain HTTP (GraphQL over Server-Sent Events, the graphql-sse
// protocol) for clients behind proxies that block WebSockets.
//
//   node sse.mjs [URL] [COUNT] [SYMBOL]
//
// Output: {"event":"tick","tick":{...}} per tick, then {"event":"done","ticks":N}.
// QUANTGRAPH_TOKEN, when set, is sent as "Authorization: Bearer <token>".

import { createClient } from "graphql-sse";

const url = process.argv[2] ?? "http://127.0.0.1:8000/graphql";
const count = Number.parseInt(process.argv[3] ?? "3", 10);
const symbol = process.argv[4] ?? "BTCUSDT";
const token = process.env.QUANTGRAPH_TOKEN;

const client = createClient({
  url,
  headers: token ? { Authorization: `Bearer ${token}` } : {},
  retryAttempts: 0,
});

let received = 0;
const timer = setTimeout(() => {
  console.error(`timed out after ${received} ticks`);
  process.exit(1);
}, 60000);

const iterator = client.iterate({
  query: "subscription ($s: [String!]!) { ticks(symbols: $s) { symbol time last bid ask volume } }",
  variables: { s: [symbol] },
});

for await (const result of iterator) {
  if (result.errors) {
    console.error(JSON.stringify(result.errors));
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ event: "tick", tick: result.data.ticks })}\n`);
  received += 1;
  if (received >= count) break;
}
clearTimeout(timer);
process.stdout.write(`${JSON.stringify({ event: "done", ticks: received })}\n`);
client.dispose();
