// The dashboard's only way to the server: the public GraphQL API, over HTTP for
// queries and mutations and over one WebSocket (graphql-transport-ws) per
// identity for subscriptions. Nothing here is specific to a panel.
//
// Queries are POSTed as JSON: the server refuses "simple" cross-site POSTs as
// CSRF. The socket protocol is spoken by hand, as the old live page did, so the
// page needs no client library and no build step.

const endpoint = new URL("graphql", document.baseURI).href;
const socketUrl = endpoint.replace(/^http/, "ws");
const MAX_RETRY_DELAY_MS = 30000;

// The signed-in user's access token. sessionStorage: it survives a reload but
// not the tab, and the page's CSP lets it go nowhere but this origin.
const TOKEN_KEY = "quantgraph.accessToken";
export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  save: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** A GraphQL error the server answered with (not a network failure). */
export class GraphQLError extends Error {}

/** POST one operation; resolve to `data`, reject with the errors' messages. */
export async function graphql(query, variables = {}, token = null) {
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/graphql-response+json, application/json",
  };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(endpoint, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors && body.errors.length) {
    throw new GraphQLError(body.errors.map((error) => error.message).join("; "));
  }
  return body.data;
}

/**
 * One graphql-transport-ws connection carrying any number of subscriptions.
 *
 * The token (if any) goes in `connection_init`, which is where the server reads
 * it for a socket; so signing in or out means a new Socket, not a new message.
 * A dropped socket reconnects with exponential backoff and re-sends every live
 * subscription; one the server refuses (an `error` message) is dropped, as
 * retrying cannot help. `onStatus(text, state)` reports the connection state.
 */
export class Socket {
  constructor({ token = null, onStatus = () => {} } = {}) {
    this.token = token;
    this.onStatus = onStatus;
    this.subscriptions = new Map();
    this.failures = 0;
    this.closed = false;
    this.nextId = 1;
    this.socket = null;
    this.connect();
  }

  connect() {
    const socket = new WebSocket(socketUrl, "graphql-transport-ws");
    this.socket = socket;
    this.ready = false;
    socket.addEventListener("open", () => {
      const payload = this.token ? { Authorization: `Bearer ${this.token}` } : {};
      this.send({ type: "connection_init", payload });
    });
    socket.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      if (this.closed || socket !== this.socket) return;
      const delay = Math.min(MAX_RETRY_DELAY_MS, 1000 * 2 ** this.failures);
      this.failures += 1;
      this.onStatus(`Disconnected; reconnecting in ${Math.round(delay / 1000)} s…`, "reconnecting");
      window.setTimeout(() => this.closed || this.connect(), delay);
    });
  }

  send(message) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  receive(message) {
    const subscription = this.subscriptions.get(message.id);
    switch (message.type) {
      case "connection_ack":
        this.failures = 0;
        this.ready = true;
        this.onStatus("Live", "live");
        for (const [id, { query, variables }] of this.subscriptions) this.start(id, query, variables);
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        if (subscription && message.payload.data) subscription.onNext(message.payload.data);
        break;
      case "error":
        this.subscriptions.delete(message.id);
        if (subscription) subscription.onError(message.payload.map((error) => error.message).join("; "));
        break;
      case "complete":
        this.subscriptions.delete(message.id);
        break;
    }
  }

  start(id, query, variables) {
    this.send({ id, type: "subscribe", payload: { query, variables } });
  }

  /** Subscribe; returns a function that ends the subscription. */
  subscribe(query, variables, onNext, onError = () => {}) {
    const id = String(this.nextId++);
    this.subscriptions.set(id, { query, variables, onNext, onError });
    if (this.ready) this.start(id, query, variables);
    return () => {
      if (this.subscriptions.delete(id)) this.send({ id, type: "complete" });
    };
  }

  close() {
    this.closed = true;
    this.subscriptions.clear();
    this.socket.close(1000);
  }
}
