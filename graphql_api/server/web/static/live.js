// The live prices page: one GraphQL query for names and the last daily close,
// then the `ticks` subscription over graphql-transport-ws, spoken by hand.
//
// No library and no build step, so the page is readable as it is served. The
// query is POSTed as JSON (the server refuses "simple" cross-site POSTs as
// CSRF). Market data is public, so the socket's connection_init carries no
// token. A dropped socket reconnects with exponential backoff; a subscription
// the server refuses (an `error` message) does not, as retrying cannot help.
"use strict";

(function () {
  const DEFAULT_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "600519.SH", "000001.SZ"];
  const MAX_SYMBOLS = 20;
  const MAX_RETRY_DELAY_MS = 30000;

  const endpoint = new URL("graphql", document.baseURI).href;
  const socketUrl = endpoint.replace(/^http/, "ws");
  const tbody = document.querySelector("#prices tbody");
  const statusLine = document.getElementById("status");
  const rows = new Map();

  function requestedSymbols() {
    const given = new URLSearchParams(window.location.search).get("symbols");
    const codes = (given ? given.split(",") : DEFAULT_SYMBOLS)
      .map((code) => code.trim().toUpperCase())
      .filter(Boolean);
    return [...new Set(codes)].slice(0, MAX_SYMBOLS);
  }

  function setStatus(text, state) {
    statusLine.textContent = text;
    statusLine.dataset.state = state;
  }

  function cell(tag, className) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    return element;
  }

  function addRow(code) {
    const row = cell("tr");
    row.dataset.symbol = code;
    row.dataset.ticks = "0";
    const heading = cell("th");
    heading.scope = "row";
    const codeText = cell("span", "code");
    codeText.textContent = code;
    const name = cell("span", "name");
    heading.append(codeText, " ", name);
    const last = cell("td", "number last");
    const change = cell("td", "number change");
    const time = cell("td", "number time");
    last.textContent = change.textContent = time.textContent = "–";
    row.append(heading, last, change, time);
    tbody.append(row);
    rows.set(code, { row, name, last, change, time, close: null });
  }

  function decimals(value) {
    const point = value.indexOf(".");
    return point < 0 ? 0 : value.length - point - 1;
  }

  function showChange(entry, last) {
    if (entry.close === null) {
      entry.change.textContent = "–";
      return;
    }
    const close = Number(entry.close);
    const difference = Number(last) - close;
    const sign = difference > 0 ? "+" : difference < 0 ? "−" : "±";
    const absolute = Math.abs(difference).toFixed(decimals(last));
    const percent = close ? Math.abs((difference / close) * 100).toFixed(2) : "0.00";
    entry.change.textContent = `${sign}${absolute} (${sign}${percent}%)`;
    entry.change.dataset.direction = difference > 0 ? "up" : difference < 0 ? "down" : "flat";
  }

  function showPrice(entry, tick) {
    const previous = entry.last.textContent;
    entry.last.textContent = tick.last;
    showChange(entry, tick.last);
    const time = cell("time");
    time.dateTime = tick.time;
    time.textContent = new Date(tick.time).toLocaleTimeString([], { hour12: false });
    entry.time.replaceChildren(time);
    const moved = Number(tick.last) - Number(previous);
    if (previous !== "–" && moved !== 0) {
      // Restart the flash animation: drop the class, force a style flush, add it back.
      entry.last.classList.remove("up", "down");
      void entry.last.offsetWidth;
      entry.last.classList.add(moved > 0 ? "up" : "down");
    }
  }

  async function graphql(query, variables) {
    const response = await fetch(endpoint, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/graphql-response+json, application/json",
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = await response.json();
    if (body.errors && body.errors.length) {
      throw new Error(body.errors.map((error) => error.message).join("; "));
    }
    return body.data;
  }

  // One `symbol(code:)` field per code, under aliases s0, s1…
  async function loadSymbols(codes) {
    const declarations = codes.map((_, index) => `$c${index}: String!`).join(", ");
    const fields = codes.map((_, index) => `s${index}: symbol(code: $c${index}) { ...Row }`);
    const query = `query LiveSymbols(${declarations}) { ${fields.join(" ")} }
      fragment Row on Symbol { code name quote { last time } dailyBars(limit: 1) { close } }`;
    const variables = Object.fromEntries(codes.map((code, index) => [`c${index}`, code]));
    const data = await graphql(query, variables);
    const known = [];
    codes.forEach((code, index) => {
      const symbol = data[`s${index}`];
      const entry = rows.get(code);
      if (!symbol) {
        entry.name.textContent = "unknown symbol";
        entry.row.dataset.unknown = "true";
        return;
      }
      known.push(code);
      entry.name.textContent = symbol.name;
      entry.close = symbol.dailyBars.length ? symbol.dailyBars[0].close : null;
      if (symbol.quote) showPrice(entry, symbol.quote);
    });
    return known;
  }

  const TICKS = "subscription LiveTicks($symbols: [String!]!) { ticks(symbols: $symbols) { symbol last time } }";

  function subscribe(codes) {
    let failures = 0;
    let refused = false;

    function connect() {
      const socket = new WebSocket(socketUrl, "graphql-transport-ws");
      const send = (message) => socket.send(JSON.stringify(message));
      socket.addEventListener("open", () => send({ type: "connection_init", payload: {} }));
      socket.addEventListener("message", (event) => {
        const message = JSON.parse(event.data);
        switch (message.type) {
          case "connection_ack":
            failures = 0;
            setStatus("Live", "live");
            send({ id: "ticks", type: "subscribe", payload: { query: TICKS, variables: { symbols: codes } } });
            break;
          case "ping":
            send({ type: "pong" });
            break;
          case "next": {
            const tick = message.payload.data && message.payload.data.ticks;
            const entry = tick && rows.get(tick.symbol);
            if (entry) {
              showPrice(entry, tick);
              entry.row.dataset.ticks = String(Number(entry.row.dataset.ticks) + 1);
            }
            break;
          }
          case "error":
            refused = true;
            setStatus(`Refused: ${message.payload.map((error) => error.message).join("; ")}`, "error");
            socket.close(1000);
            break;
          case "complete":
            setStatus("The server ended the stream", "ended");
            break;
        }
      });
      socket.addEventListener("close", () => {
        if (refused) return;
        const delay = Math.min(MAX_RETRY_DELAY_MS, 1000 * 2 ** failures);
        failures += 1;
        setStatus(`Disconnected; reconnecting in ${Math.round(delay / 1000)} s…`, "reconnecting");
        window.setTimeout(connect, delay);
      });
    }

    connect();
  }

  async function start() {
    const codes = requestedSymbols();
    codes.forEach(addRow);
    let known = codes;
    try {
      known = await loadSymbols(codes);
    } catch (error) {
      // Names and closes are extras: the prices can still stream.
      setStatus(`Could not load the symbols (${error.message}); connecting…`, "connecting");
    }
    if (known.length) {
      subscribe(known);
    } else {
      setStatus("None of these symbols exist", "error");
    }
  }

  start();
})();
