// Peer server for bench/run.py: PostGraphile 4 over quantgraph's PostgreSQL tables,
// for the HTTP nested-orders query only (PostGraphile 5 needs Node 22; Node 20 here).
//
// Environment: DATABASE_URL (postgres://...), PORT.

import http from 'node:http';
import pg from 'pg';
import postgraphilePackage from 'postgraphile';

const { postgraphile } = postgraphilePackage;
const PORT = Number(process.env.PORT ?? 5000);

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 20 });
const middleware = postgraphile(pool, 'public', {
  graphqlRoute: '/graphql',
  disableDefaultMutations: true,
  disableQueryLog: true,
  retryOnInitFail: false,
  watchPg: false,
  graphiql: false,
  enableQueryBatching: false,
  setofFunctionsContainNulls: false,
  dynamicJson: true,
});

const server = http.createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
    return;
  }
  middleware(req, res);
});

server.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`postgraphile peer listening on http://127.0.0.1:${PORT}/graphql\n`);
});

async function stop() {
  server.close();
  await pool.end();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
