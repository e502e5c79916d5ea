// Peer server for bench/run.py: graphql-yoga (HTTP) + graphql-ws (WebSocket),
// hand-written resolvers with DataLoader over quantgraph's own PostgreSQL tables,
// and the same Redis channels (`ticks.<SYMBOL>`, JSON messages) for live ticks.
//
// It serves the subset of quantgraph's schema the benchmark uses, with the same
// semantics: `orders` is the demo user's orders newest first (a Relay
// connection), `symbol`/`strategy` are batched per request by DataLoader,
// `klines` aggregates ticks with the same SQL as quantgraph's PostgreSQL store,
// and `ticks` sends the latest stored tick per symbol, then live ticks from
// Redis through one Redis subscription per channel fanned out to conflating
// per-subscriber mailboxes (latest message per channel), like quantgraph's Hub.
//
// Environment: DATABASE_URL (postgres://...), REDIS_URL, PORT, DEMO_USERNAME.

import http from 'node:http';
import DataLoader from 'dataloader';
import { createSchema, createYoga } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import Redis from 'ioredis';
import pg from 'pg';
import { WebSocketServer } from 'ws';

const PORT = Number(process.env.PORT ?? 4000);
const MAX_PAGE_SIZE = 100;
const MAX_SERIES_LIMIT = 10_000;

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 20 });
const demo = await pool.query('SELECT id FROM users WHERE username = $1', [
  process.env.DEMO_USERNAME ?? 'demo',
]);
if (demo.rowCount !== 1) throw new Error('demo user not found: seed the database first');
const DEMO_USER_ID = demo.rows[0].id;

// ---------------------------------------------------------------------------------------
// Live ticks: one Redis subscription per channel, conflating mailboxes per subscriber.

const redis = new Redis(process.env.REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
const channels = new Map(); // channel -> { mailboxes: Set, ready: Promise }

redis.on('message', (channel, message) => {
  const entry = channels.get(channel);
  if (!entry) return;
  for (const mailbox of entry.mailboxes) mailbox.offer(channel, message);
});

class Mailbox {
  constructor() {
    this.latest = new Map();
    this.wake = null;
  }

  offer(channel, message) {
    this.latest.delete(channel); // re-insert at the end, like OrderedDict.move_to_end
    this.latest.set(channel, message);
    if (this.wake) {
      const wake = this.wake;
      this.wake = null;
      wake();
    }
  }

  async get() {
    while (this.latest.size === 0) {
      await new Promise((resolve) => {
        this.wake = resolve;
      });
    }
    const [channel, message] = this.latest.entries().next().value;
    this.latest.delete(channel);
    return message;
  }
}

async function attach(names, mailbox) {
  const waits = [];
  for (const name of names) {
    let entry = channels.get(name);
    if (!entry) {
      entry = { mailboxes: new Set(), ready: redis.subscribe(name) };
      channels.set(name, entry);
    }
    entry.mailboxes.add(mailbox);
    waits.push(entry.ready);
  }
  await Promise.all(waits);
}

function detach(names, mailbox) {
  for (const name of names) {
    const entry = channels.get(name);
    if (!entry) continue;
    entry.mailboxes.delete(mailbox);
    if (entry.mailboxes.size === 0) {
      channels.delete(name);
      redis.unsubscribe(name).catch(() => {});
    }
  }
}

function tickFromRow(row) {
  return {
    symbol: row.symbol,
    time: row.time.toISOString(),
    last: row.last,
    bid: row.bid,
    ask: row.ask,
    volume: row.volume,
  };
}

async function* tickStream(symbols) {
  const codes = [...new Set(symbols.map((code) => code.toUpperCase()))];
  if (codes.length === 0 || codes.length > 100) throw new Error('symbols must name 1 to 100 symbols');
  const known = await pool.query('SELECT code FROM symbols WHERE code = ANY($1)', [codes]);
  if (known.rowCount !== codes.length) throw new Error('unknown symbols');
  const names = codes.map((code) => `ticks.${code}`);
  const mailbox = new Mailbox();
  await attach(names, mailbox);
  try {
    const snapshot = new Map();
    for (const code of codes) {
      const latest = await pool.query(
        'SELECT * FROM ticks WHERE symbol = $1 ORDER BY time DESC, id DESC LIMIT 1',
        [code],
      );
      if (latest.rowCount) {
        const tick = tickFromRow(latest.rows[0]);
        snapshot.set(code, Date.parse(tick.time));
        yield tick;
      }
    }
    while (true) {
      const tick = JSON.parse(await mailbox.get());
      const seen = snapshot.get(tick.symbol);
      if (seen !== undefined && Date.parse(tick.time) < seen) continue;
      yield tick;
    }
  } finally {
    detach(names, mailbox);
  }
}

// ---------------------------------------------------------------------------------------
// Schema and resolvers.

const typeDefs = /* GraphQL */ `
  scalar Decimal
  scalar DateTime
  enum KlineInterval { MINUTE_1 MINUTE_5 MINUTE_15 HOUR_1 }
  type Symbol { code: String! name: String! exchange: String! currency: String! }
  type Strategy { id: ID! name: String! kind: String! status: String! symbol: Symbol! }
  type Order {
    id: ID! clientOrderId: String side: String! type: String! status: String!
    quantity: Decimal! limitPrice: Decimal filledQuantity: Decimal!
    symbol: Symbol! strategy: Strategy
  }
  type PageInfo { hasNextPage: Boolean! endCursor: String }
  type OrderEdge { cursor: String! node: Order! }
  type OrderConnection { edges: [OrderEdge!]! pageInfo: PageInfo! }
  type Kline {
    time: DateTime! open: Decimal! high: Decimal! low: Decimal! close: Decimal!
    volume: Decimal! tradeCount: Int!
  }
  type Tick { symbol: String! time: DateTime! last: Decimal! bid: Decimal! ask: Decimal! volume: Decimal! }
  type Query {
    orders(first: Int! = 20, after: String): OrderConnection!
    klines(symbol: String!, interval: KlineInterval!, from: DateTime, to: DateTime, limit: Int! = 500): [Kline!]!
  }
  type Subscription { ticks(symbols: [String!]!): Tick! }
`;

const INTERVAL_SECONDS = { MINUTE_1: 60, MINUTE_5: 300, MINUTE_15: 900, HOUR_1: 3600 };

function klinesSql(bounds, direction) {
  return `
SELECT date_bin(make_interval(secs => $1), time, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
       (array_agg(last ORDER BY time, id))[1] AS open,
       max(last) AS high,
       min(last) AS low,
       (array_agg(last ORDER BY time DESC, id DESC))[1] AS close,
       sum(volume) AS volume,
       count(*) AS trade_count
FROM ticks
WHERE symbol = $2 ${bounds}
GROUP BY bucket
ORDER BY bucket ${direction}
LIMIT $3`;
}

function ceilTo(date, seconds) {
  const step = seconds * 1000;
  const ms = date.getTime();
  return new Date(Math.ceil(ms / step) * step);
}

function encodeCursor(id) {
  return Buffer.from(`order:${id}`).toString('base64url');
}

function decodeCursor(cursor) {
  const [kind, key] = Buffer.from(cursor, 'base64url').toString().split(':');
  if (kind !== 'order' || !/^\d+$/.test(key ?? '')) throw new Error('after is not a valid cursor');
  return key;
}

function byKey(keys, rows, field) {
  const found = new Map(rows.map((row) => [String(row[field]), row]));
  return keys.map((key) => found.get(String(key)) ?? null);
}

function createLoaders() {
  return {
    symbolByCode: new DataLoader(async (codes) => {
      const { rows } = await pool.query('SELECT * FROM symbols WHERE code = ANY($1)', [codes]);
      return byKey(codes, rows, 'code');
    }),
    strategyById: new DataLoader(async (ids) => {
      const { rows } = await pool.query('SELECT * FROM strategies WHERE id = ANY($1)', [ids]);
      return byKey(ids, rows, 'id');
    }),
  };
}

const resolvers = {
  Query: {
    async orders(_, { first, after }) {
      if (first < 1 || first > MAX_PAGE_SIZE) throw new Error(`first must be 1 to ${MAX_PAGE_SIZE}`);
      const params = [DEMO_USER_ID, first + 1];
      let filter = '';
      if (after) {
        params.push(decodeCursor(after));
        filter = 'AND id < $3';
      }
      const { rows } = await pool.query(
        `SELECT * FROM orders WHERE user_id = $1 ${filter} ORDER BY id DESC LIMIT $2`,
        params,
      );
      const items = rows.slice(0, first);
      return {
        edges: items.map((row) => ({ cursor: encodeCursor(row.id), node: row })),
        pageInfo: {
          hasNextPage: rows.length > first,
          endCursor: items.length ? encodeCursor(items[items.length - 1].id) : null,
        },
      };
    },
    async klines(_, { symbol, interval, from, to, limit }) {
      if (limit < 1 || limit > MAX_SERIES_LIMIT) throw new Error('limit out of range');
      const seconds = INTERVAL_SECONDS[interval];
      const params = [seconds, symbol.toUpperCase(), limit];
      let bounds = '';
      if (from) {
        params.push(ceilTo(new Date(from), seconds));
        bounds += ` AND time >= $${params.length}`;
      }
      if (to) {
        params.push(ceilTo(new Date(to), seconds));
        bounds += ` AND time < $${params.length}`;
      }
      const newest = !from;
      const { rows } = await pool.query(klinesSql(bounds, newest ? 'DESC' : 'ASC'), params);
      if (newest) rows.reverse();
      return rows.map((row) => ({
        time: row.bucket.toISOString(),
        open: row.open,
        high: row.high,
        low: row.low,
        close: row.close,
        volume: row.volume,
        tradeCount: Number(row.trade_count),
      }));
    },
  },
  Order: {
    clientOrderId: (row) => row.client_order_id,
    limitPrice: (row) => row.limit_price,
    filledQuantity: (row) => row.filled_quantity,
    symbol: (row, _, ctx) => ctx.loaders.symbolByCode.load(row.symbol_code),
    strategy: (row, _, ctx) =>
      row.strategy_id == null ? null : ctx.loaders.strategyById.load(row.strategy_id),
  },
  Strategy: {
    symbol: (row, _, ctx) => ctx.loaders.symbolByCode.load(row.symbol_code),
  },
  Subscription: {
    ticks: {
      subscribe: (_, { symbols }) => tickStream(symbols),
      resolve: (tick) => tick,
    },
  },
};

const yoga = createYoga({
  schema: createSchema({ typeDefs, resolvers }),
  graphqlEndpoint: '/graphql',
  graphiql: false,
  logging: false,
  context: () => ({ loaders: createLoaders() }),
});

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
    return;
  }
  yoga(req, res);
});

const wsServer = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
useServer(
  {
    execute: (args) => args.rootValue.execute(args),
    subscribe: (args) => args.rootValue.subscribe(args),
    onSubscribe: async (ctx, _id, params) => {
      const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
        ...ctx,
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params,
      });
      const args = {
        schema,
        operationName: params.operationName,
        document: parse(params.query),
        variableValues: params.variables,
        contextValue: await contextFactory(),
        rootValue: { execute, subscribe },
      };
      const errors = validate(args.schema, args.document);
      if (errors.length) return errors;
      return args;
    },
  },
  wsServer,
);

server.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`yoga peer listening on http://127.0.0.1:${PORT}/graphql\n`);
});

async function stop() {
  wsServer.close();
  server.close();
  redis.disconnect();
  await pool.end();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
