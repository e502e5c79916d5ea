// The candlestick chart: `klineSeries` bars drawn with lightweight-charts
// (vendored, see static/vendor/README.md), the selected indicators over them,
// the last bar kept current from `ticks`, and a backtest's trades as markers.
//
// Prices arrive as Decimal strings; they become Numbers only here, to be drawn.
// Bar times are epoch seconds (UTC), as lightweight-charts wants them, so the
// axis shows UTC like the API does. The canvas says nothing to a screen
// reader, so the figure's caption repeats the last bar in words, and the
// element's data-* attributes state what is drawn (the browser test reads them).

const LWC = window.LightweightCharts;

// Bar widths in seconds: intraday bars are aligned to the Unix epoch in UTC on
// the server, so a tick's bar starts at floor(time / width) * width here too.
export const INTERVAL_SECONDS = { MINUTE_1: 60, MINUTE_5: 300, MINUTE_15: 900, HOUR_1: 3600, DAY_1: 86400 };

// Each indicator: how to ask for it, and how its columns are drawn (which pane,
// which colour variable). Overlays share the price pane (0); oscillators get
// their own pane below, as their scale (0-100, or around 0) is not a price.
export const INDICATORS = {
  sma: {
    field: (p) => `sma(period: ${p.period})`,
    lines: (v) => [{ values: v, colour: "--sma", title: "SMA" }],
    pane: "price",
  },
  ema: {
    field: (p) => `ema(period: ${p.period})`,
    lines: (v) => [{ values: v, colour: "--ema", title: "EMA" }],
    pane: "price",
  },
  bollinger: {
    field: (p) => `bollinger(period: ${p.period}) { upper middle lower }`,
    lines: (v) => [
      { values: v.upper, colour: "--band", title: "BB upper" },
      { values: v.middle, colour: "--band", title: "BB middle" },
      { values: v.lower, colour: "--band", title: "BB lower" },
    ],
    pane: "price",
  },
  rsi: {
    field: (p) => `rsi(period: ${p.period})`,
    lines: (v) => [{ values: v, colour: "--rsi", title: "RSI" }],
    pane: "own",
  },
  macd: {
    field: () => "macd { macd signal histogram }",
    lines: (v) => [
      { values: v.macd, colour: "--macd", title: "MACD" },
      { values: v.signal, colour: "--signal", title: "Signal" },
      { values: v.histogram, colour: "--muted", title: "Histogram", histogram: true },
    ],
    pane: "own",
  },
};

const seconds = (iso) => Math.floor(Date.parse(iso) / 1000);

function cssColour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/**
 * Build the `klineSeries` query for the selected indicators ({name: {period}}).
 * It also asks for `symbol(code:)`: klineSeries of an unknown code is simply
 * empty, and the page should say "unknown" rather than draw nothing.
 */
export function seriesQuery(selected) {
  const fields = Object.entries(selected).map(([name, parameters]) => `${name}: ${INDICATORS[name].field(parameters)}`);
  const indicators = fields.length ? `indicators { ${fields.join(" ")} }` : "";
  return `query DashboardSeries($symbol: String!, $interval: KlineInterval!, $limit: Int!) {
    symbol(code: $symbol) { code name }
    klineSeries(symbol: $symbol, interval: $interval, limit: $limit) {
      symbol interval times opens highs lows closes volumes ${indicators}
    }
  }`;
}

export class CandleChart {
  /** `figure` holds the chart's `.canvas` element and a `figcaption`. */
  constructor(figure) {
    this.figure = figure;
    this.caption = figure.querySelector("figcaption");
    this.chart = LWC.createChart(figure.querySelector(".canvas"), {
      autoSize: true,
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    this.candles = this.chart.addSeries(LWC.CandlestickSeries, {});
    this.volume = this.chart.addSeries(LWC.HistogramSeries, {
      priceFormat: { type: "volume" },
      priceScaleId: "volume",
      lastValueVisible: false,
      priceLineVisible: false,
    });
    this.chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.markers = LWC.createSeriesMarkers(this.candles, []);
    this.overlays = [];
    this.trades = [];
    this.bars = [];
    this.interval = null;
    this.symbol = null;
    this.ticks = 0;
    this.applyColours();
    // Follow the system's light/dark switch: the canvas does not read CSS itself.
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.applyColours());
  }

  applyColours() {
    const text = cssColour("--text");
    const rule = cssColour("--rule");
    this.chart.applyOptions({
      layout: { background: { color: cssColour("--background") }, textColor: text },
      grid: { vertLines: { color: rule }, horzLines: { color: rule } },
    });
    const up = cssColour("--up");
    const down = cssColour("--down");
    this.candles.applyOptions({
      upColor: up,
      downColor: down,
      borderUpColor: up,
      borderDownColor: down,
      wickUpColor: up,
      wickDownColor: down,
    });
    this.volume.applyOptions({ color: cssColour("--volume") });
    for (const { series, colour } of this.overlays) series.applyOptions({ color: cssColour(colour) });
  }

  /** Draw a `klineSeries` result (replacing what was drawn). */
  show(series) {
    // A backtest's trades stay on a re-query of the same bars, not on other ones.
    const same = series.symbol === this.symbol && series.interval === this.interval;
    if (!same) {
      this.trades = [];
      this.ticks = 0;
    }
    // DAY_1 bars are the stored history only: keep a bar the ticks started today.
    const live = same ? this.bars.at(-1) : null;
    this.symbol = series.symbol;
    this.interval = series.interval;
    this.bars = series.times.map((time, i) => ({
      time: seconds(time),
      open: Number(series.opens[i]),
      high: Number(series.highs[i]),
      low: Number(series.lows[i]),
      close: Number(series.closes[i]),
      volume: Number(series.volumes[i]),
    }));
    if (live && (!this.bars.length || live.time > this.bars.at(-1).time)) this.bars.push(live);
    this.candles.setData(this.bars.map(({ volume, ...bar }) => bar));
    this.volume.setData(this.bars.map(({ time, volume }) => ({ time, value: volume })));
    this.drawIndicators(series.indicators || {});
    this.showTrades(this.trades);
    this.chart.timeScale().fitContent();
    this.describe();
  }

  drawIndicators(indicators) {
    for (const { series } of this.overlays) this.chart.removeSeries(series);
    this.overlays = [];
    let nextPane = 1;
    for (const [name, values] of Object.entries(indicators)) {
      const { lines, pane } = INDICATORS[name];
      const paneIndex = pane === "price" ? 0 : nextPane++;
      for (const line of lines(values)) {
        const type = line.histogram ? LWC.HistogramSeries : LWC.LineSeries;
        const series = this.chart.addSeries(
          type,
          { color: cssColour(line.colour), lineWidth: 1, title: line.title, priceLineVisible: false },
          paneIndex,
        );
        // null while the indicator warms up: whitespace points keep the bars aligned.
        series.setData(
          this.bars.map(({ time }, i) => (line.values[i] === null ? { time } : { time, value: line.values[i] })),
        );
        this.overlays.push({ series, colour: line.colour, name });
      }
    }
    this.figure.dataset.indicators = [...new Set(this.overlays.map(({ name }) => name))].join(",");
  }

  /**
   * Fold a live tick into the last bar, or start a new bar when the tick falls
   * in the next interval. Returns true when a bar was started, so the caller
   * can re-query for the indicators of the bar just closed (computed by the
   * server, not re-implemented here).
   */
  applyTick(tick) {
    if (tick.symbol !== this.symbol || !this.interval) return false;
    const width = INTERVAL_SECONDS[this.interval];
    const start = Math.floor(seconds(tick.time) / width) * width;
    const price = Number(tick.last);
    const last = this.bars.at(-1);
    if (last && start < last.time) return false; // older than what is drawn
    let rolled = false;
    if (last && start === last.time) {
      last.high = Math.max(last.high, price);
      last.low = Math.min(last.low, price);
      last.close = price;
      last.volume += Number(tick.volume);
    } else {
      this.bars.push({ time: start, open: price, high: price, low: price, close: price, volume: Number(tick.volume) });
      rolled = true;
    }
    const bar = this.bars.at(-1);
    this.candles.update({ time: bar.time, open: bar.open, high: bar.high, low: bar.low, close: bar.close });
    this.volume.update({ time: bar.time, value: bar.volume });
    this.ticks += 1;
    this.describe();
    return rolled;
  }

  /** A backtest's round trips as entry/exit markers on the candles. */
  showTrades(trades) {
    this.trades = trades;
    const markers = [];
    for (const trade of trades) {
      const long = trade.side === "LONG";
      markers.push({
        time: this.barAt(seconds(trade.entryTime)),
        position: long ? "belowBar" : "aboveBar",
        shape: long ? "arrowUp" : "arrowDown",
        color: cssColour(long ? "--up" : "--down"),
        text: `${long ? "Buy" : "Sell"} ${trade.entryPrice}`,
      });
      markers.push({
        time: this.barAt(seconds(trade.exitTime)),
        position: long ? "aboveBar" : "belowBar",
        shape: long ? "arrowDown" : "arrowUp",
        color: cssColour("--muted"),
        text: `Exit ${trade.exitPrice}`,
      });
    }
    // Markers must be in time order and on drawn bars.
    markers.sort((a, b) => a.time - b.time);
    this.markers.setMarkers(markers);
    this.figure.dataset.markers = String(markers.length);
  }

  /** The start of the drawn bar holding `time` (markers attach to bars). */
  barAt(time) {
    let found = this.bars.length ? this.bars[0].time : time;
    for (const bar of this.bars) {
      if (bar.time > time) break;
      found = bar.time;
    }
    return found;
  }

  describe() {
    const data = this.figure.dataset;
    data.symbol = this.symbol || "";
    data.interval = this.interval || "";
    data.bars = String(this.bars.length);
    data.ticks = String(this.ticks);
    const last = this.bars.at(-1);
    if (!last) {
      this.caption.textContent = `${this.symbol}: no bars at this interval yet.`;
      delete data.lastClose;
      return;
    }
    data.lastTime = new Date(last.time * 1000).toISOString();
    data.lastClose = String(last.close);
    this.caption.textContent =
      `${this.symbol}, ${this.interval.replace("_", " ").toLowerCase()} bars: ${this.bars.length}. ` +
      `Last bar ${data.lastTime.replace(".000Z", "Z")}: open ${last.open}, high ${last.high}, ` +
      `low ${last.low}, close ${last.close}.`;
  }
}

/** A small line chart of a backtest's equity over time. */
export class EquityChart {
  constructor(figure) {
    this.figure = figure;
    this.chart = LWC.createChart(figure.querySelector(".canvas"), {
      autoSize: true,
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    this.line = this.chart.addSeries(LWC.LineSeries, { lineWidth: 2, priceLineVisible: false });
    this.applyColours();
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.applyColours());
  }

  applyColours() {
    const rule = cssColour("--rule");
    this.chart.applyOptions({
      layout: { background: { color: cssColour("--background") }, textColor: cssColour("--text") },
      grid: { vertLines: { color: rule }, horzLines: { color: rule } },
    });
    this.line.applyOptions({ color: cssColour("--link") });
  }

  show(curve) {
    // One point per time: the curve can hold several at the same bar.
    const points = new Map(curve.map(({ time, equity }) => [seconds(time), equity]));
    this.line.setData([...points].map(([time, value]) => ({ time, value })));
    // The figure was hidden until now: fit again once autoSize has measured it.
    this.chart.timeScale().fitContent();
    window.requestAnimationFrame(() => this.chart.timeScale().fitContent());
    this.figure.dataset.points = String(points.size);
  }
}
