// Wires the dashboard's panels together: the chart controls, the public
// `ticks` socket, the account panel and the backtest form. Each panel is its
// own module; this file only decides what follows what.

import { AccountPanel } from "./account.js";
import { Socket, graphql } from "./api.js";
import { BacktestPanel } from "./backtest.js";
import { CandleChart, EquityChart, seriesQuery } from "./chart.js";

const BAR_LIMIT = 500;
const TICKS = "subscription DashboardTicks($symbols: [String!]!) { ticks(symbols: $symbols) { symbol last volume time } }";
const SYMBOLS = "query DashboardSymbols { symbols(first: 100) { edges { node { code name } } } }";

const controls = document.getElementById("chart-controls");
const status = document.getElementById("status");
const chart = new CandleChart(document.getElementById("chart"));
const equity = new EquityChart(document.getElementById("equity"));

function setStatus(text, state) {
  status.textContent = text;
  status.dataset.state = state;
}

// Market data is public: this socket carries no token.
const socket = new Socket({ onStatus: setStatus });
let stopTicks = () => {};
let tickSymbol = null; // the symbol whose ticks the socket carries
let loading = 0;
let reloadTimer = null;
let backtests = null; // the backtest panel, whose symbol and interval follow the chart

/** What the controls ask for: symbol, interval and {indicator: {period}}. */
function selection() {
  const form = controls.elements;
  const indicators = {};
  for (const box of controls.querySelectorAll("input[name=indicator]:checked")) {
    const period = form[`${box.value}-period`];
    indicators[box.value] = { period: period ? Number(period.value) : null };
  }
  return { symbol: form.symbol.value.trim().toUpperCase(), interval: form.interval.value, indicators };
}

/**
 * Query the bars (and indicators) and (re)subscribe to the symbol's ticks.
 * `redraw` re-queries what is drawn (symbol and interval of the chart, not of
 * the form, which may hold an unsubmitted edit), without announcing it.
 */
async function load({ redraw = false } = {}) {
  const chosen = selection();
  const { symbol, interval, indicators } = redraw ? { ...chosen, symbol: chart.symbol, interval: chart.interval } : chosen;
  if (!symbol || !controls.checkValidity()) return;
  window.clearTimeout(reloadTimer); // this query supersedes a pending redraw
  const ticket = ++loading;
  if (!redraw) setStatus(`Loading ${symbol}…`, "connecting");
  try {
    const data = await graphql(seriesQuery(indicators), { symbol, interval, limit: BAR_LIMIT });
    if (ticket !== loading) return; // a newer selection won
    if (!data.symbol) {
      setStatus(`Unknown symbol ${symbol}; still showing ${chart.symbol || "nothing"}`, "error");
      // Keep the controls saying what is drawn, so the next change applies to it.
      if (chart.symbol) controls.elements.symbol.value = chart.symbol;
      return;
    }
    const { klineSeries } = data;
    chart.show(klineSeries);
    const width = interval.replace("_", " ").toLowerCase();
    document.getElementById("chart-heading").textContent = `${data.symbol.name} (${data.symbol.code}) · ${width}`;
    const url = new URL(window.location.href);
    url.searchParams.set("symbol", klineSeries.symbol);
    url.searchParams.set("interval", interval);
    window.history.replaceState(null, "", url);
    if (backtests) backtests.prefill();
    if (tickSymbol !== klineSeries.symbol) {
      stopTicks();
      tickSymbol = klineSeries.symbol;
      stopTicks = socket.subscribe(TICKS, { symbols: [klineSeries.symbol] }, ({ ticks }) => onTick(ticks), (message) =>
        setStatus(`Refused: ${message}`, "error"),
      );
    }
    if (!redraw) setStatus(socket.ready ? "Live" : "Connecting…", socket.ready ? "live" : "connecting");
  } catch (error) {
    if (ticket === loading) setStatus(`Could not load ${symbol}: ${error.message}`, "error");
  }
}

// A new bar means the previous one closed: re-query so the indicators include
// it (computed by the server), once the burst of ticks has settled.
function onTick(tick) {
  if (chart.applyTick(tick)) {
    window.clearTimeout(reloadTimer);
    reloadTimer = window.setTimeout(() => load({ redraw: true }), 1000);
  }
}

async function fillSymbolList() {
  const { symbols } = await graphql(SYMBOLS);
  document.getElementById("symbol-list").replaceChildren(
    ...symbols.edges.map(({ node }) => new Option(node.name, node.code)),
  );
}

function start() {
  const params = new URLSearchParams(window.location.search);
  if (params.get("symbol")) controls.elements.symbol.value = params.get("symbol");
  if (params.get("interval")) controls.elements.interval.value = params.get("interval");
  controls.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  // Selects and checkboxes apply at once; typed fields on submit (Enter or the button).
  controls.addEventListener("change", (event) => {
    if (event.target.type !== "text") load();
  });

  new AccountPanel(document.getElementById("account"));
  backtests = new BacktestPanel(document.getElementById("backtest"), {
    currentChart: () => ({ symbol: chart.symbol, interval: chart.interval }),
    async onResult(input, result) {
      equity.show(result.equityCurve);
      // Show the trades on the bars they were made on.
      if (input.symbol !== chart.symbol || input.interval !== chart.interval) {
        controls.elements.symbol.value = input.symbol;
        controls.elements.interval.value = input.interval;
        await load();
      }
      chart.showTrades(result.trades);
    },
  });
  load();
  backtests.load().catch((error) => (backtests.message.textContent = `Could not load strategy kinds: ${error.message}`));
  fillSymbolList().catch(() => {}); // suggestions only: any code can still be typed
}

start();
