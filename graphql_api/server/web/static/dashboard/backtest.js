// The backtest form: its parameter fields come from `strategyKinds` (so a new
// kind on the server appears here without a page change), it calls
// `runBacktest`, and shows the metrics, the equity curve and, through the
// `onTrades` callback, the trades on the candle chart.
//
// runBacktest needs a signed-in user (it costs server time), so it sends the
// token the account panel keeps.

import { graphql, session } from "./api.js";

const KINDS = "query DashboardStrategyKinds { strategyKinds { kind description parameters { name type default minimum maximum description } } }";
const RUN = `mutation DashboardBacktest($input: BacktestInput!) {
  runBacktest(input: $input) {
    result {
      totalReturnPct cagrPct sharpe maxDrawdownPct winRatePct tradeCount exposurePct
      initialCash finalEquity totalCommission
      equityCurve { time equity }
      trades { side quantity entryTime entryPrice exitTime exitPrice pnl returnPct }
    }
    userErrors { field message }
  }
}`;

const METRICS = [
  ["totalReturnPct", "Total return", "%"],
  ["cagrPct", "CAGR", "%"],
  ["sharpe", "Sharpe ratio", ""],
  ["maxDrawdownPct", "Max drawdown", "%"],
  ["winRatePct", "Win rate", "%"],
  ["tradeCount", "Trades", ""],
  ["exposurePct", "Exposure", "%"],
  ["initialCash", "Initial cash", ""],
  ["finalEquity", "Final equity", ""],
  ["totalCommission", "Commission", ""],
];

function formatMetric(value, unit) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" && !Number.isInteger(value)) value = value.toFixed(2);
  return `${value}${unit}`;
}

const isoDate = (date) => date.toISOString().slice(0, 10);

export class BacktestPanel {
  /** `currentChart()` gives {symbol, interval} to prefill; `onResult(input, result)` draws it. */
  constructor(root, { currentChart, onResult }) {
    this.root = root;
    this.form = root.querySelector("form");
    this.kind = this.form.elements.kind;
    this.parameters = root.querySelector("#backtest-parameters");
    this.message = root.querySelector("#backtest-message");
    this.currentChart = currentChart;
    this.onResult = onResult;
    this.kinds = new Map();
    const today = new Date();
    this.form.elements.to.value = isoDate(today);
    this.form.elements.from.value = isoDate(new Date(today.getTime() - 365 * 86400000));
    this.kind.addEventListener("change", () => this.showParameters());
    for (const name of ["symbol", "interval"]) {
      const edited = (event) => (event.target.dataset.edited = "true");
      this.form.elements[name].addEventListener("input", edited);
      this.form.elements[name].addEventListener("change", edited);
    }
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
  }

  async load() {
    const { strategyKinds } = await graphql(KINDS);
    this.kind.replaceChildren(
      ...strategyKinds.map(({ kind, description }) => {
        this.kinds.set(kind, { description, parameters: [] });
        const option = new Option(kind.replace(/_/g, " ").toLowerCase(), kind);
        option.title = description;
        return option;
      }),
    );
    for (const info of strategyKinds) this.kinds.get(info.kind).parameters = info.parameters;
    this.showParameters();
  }

  /** One labelled number field per parameter, with the server's range and default. */
  showParameters() {
    const kind = this.kinds.get(this.kind.value);
    if (!kind) return;
    this.root.querySelector("#backtest-kind-description").textContent = kind.description;
    this.parameters.replaceChildren(
      ...kind.parameters.map((parameter) => {
        const label = document.createElement("label");
        const input = document.createElement("input");
        input.type = "number";
        input.name = `parameter.${parameter.name}`;
        input.value = String(parameter.default);
        input.min = String(parameter.minimum);
        input.max = String(parameter.maximum);
        input.step = parameter.type === "INT" ? "1" : "any";
        input.required = true;
        input.title = parameter.description;
        label.append(parameter.name, " ", input);
        return label;
      }),
    );
  }

  /** Symbol and interval follow the chart until the user edits them. */
  prefill() {
    const { symbol, interval } = this.currentChart();
    if (symbol && !this.form.elements.symbol.dataset.edited) this.form.elements.symbol.value = symbol;
    if (interval && !this.form.elements.interval.dataset.edited) this.form.elements.interval.value = interval;
  }

  input() {
    const values = new FormData(this.form);
    const parameters = {};
    for (const [key, value] of values) {
      if (key.startsWith("parameter.")) parameters[key.slice("parameter.".length)] = Number(value);
    }
    return {
      kind: values.get("kind"),
      symbol: values.get("symbol").trim().toUpperCase(),
      interval: values.get("interval"),
      // The date inputs are UTC days; `to` is exclusive, so include the day picked.
      from: `${values.get("from")}T00:00:00Z`,
      to: new Date(Date.parse(`${values.get("to")}T00:00:00Z`) + 86400000).toISOString(),
      parameters,
    };
  }

  async run() {
    const input = this.input();
    if (!session.token()) {
      this.message.textContent = "Sign in (in the Account section) to run a backtest.";
      return;
    }
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    this.message.textContent = "Running…";
    try {
      const { runBacktest } = await graphql(RUN, { input }, session.token());
      if (!runBacktest.result) {
        this.message.textContent = runBacktest.userErrors.map((e) => `${e.field}: ${e.message}`).join("; ");
        return;
      }
      this.message.textContent = `Done: ${runBacktest.result.tradeCount} trades.`;
      this.showMetrics(runBacktest.result);
      await this.onResult(input, runBacktest.result);
    } catch (error) {
      this.message.textContent = `Backtest failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }

  showMetrics(result) {
    const list = this.root.querySelector("#backtest-metrics");
    list.replaceChildren(
      // A <div> per name/value pair keeps each pair together in the grid.
      ...METRICS.map(([key, name, unit]) => {
        const pair = document.createElement("div");
        const term = document.createElement("dt");
        term.textContent = name;
        const value = document.createElement("dd");
        value.textContent = formatMetric(result[key], unit);
        pair.append(term, value);
        return pair;
      }),
    );
    this.root.querySelector("#backtest-result").hidden = false;
  }
}
