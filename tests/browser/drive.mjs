// Drives Debian's Chromium (through playwright-core) over GraphiQL and the dashboard.
//
//   node drive.mjs http://127.0.0.1:8000 ./screenshots
//
// Environment: CHROMIUM (default /usr/bin/chromium), QUANTGRAPH_TOKEN (an access
// token of a TRADER), QUANTGRAPH_USERNAME and QUANTGRAPH_PASSWORD (that TRADER's,
// typed into the dashboard's sign-in form), QUANTGRAPH_SYMBOL (a symbol the caller is feeding ticks to,
// default BTCUSDT). It prints one JSON object per line for the test to check,
// saves screenshots into the directory, and exits non-zero on the first step that
// fails (after a screenshot of every open page, named failure-*.png).
//
// Every request off the server's origin is refused and reported: the pages must
// work offline.
import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { chromium } from "playwright-core";

const [base, screenshots] = process.argv.slice(2);
if (!base || !screenshots) {
  console.error("usage: node drive.mjs BASE_URL SCREENSHOT_DIR");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const token = process.env.QUANTGRAPH_TOKEN;
const symbol = process.env.QUANTGRAPH_SYMBOL || "BTCUSDT";
const username = process.env.QUANTGRAPH_USERNAME || "demo";
const password = process.env.QUANTGRAPH_PASSWORD;
const STEP_TIMEOUT_MS = 20000;

const QUERY_EDITOR = "section.graphiql-query-editor .CodeMirror";
const TOOL_EDITOR = "section.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror";
const RESULT = "section.result-window .CodeMirror";
const EXECUTE = "button.graphiql-execute-button";

const AXE_SOURCE = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const origin = new URL(base).origin;
const problems = { console: [], pageErrors: [], failedRequests: [], offsite: [] };

function emit(event, fields = {}) {
  console.log(JSON.stringify({ event, ...fields }));
}

function watch(page) {
  page.on("console", (message) => {
    if (message.type() === "error") problems.console.push(message.text());
  });
  page.on("pageerror", (error) => problems.pageErrors.push(String(error)));
  page.on("requestfailed", (request) => {
    if (request.url().startsWith(origin)) {
      problems.failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`);
    }
  });
  page.on("response", (response) => {
    if (response.status() >= 400) problems.failedRequests.push(`${response.url()}: ${response.status()}`);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, probe) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last.done) return last.value;
    await sleep(100);
  }
  throw new Error(`timed out after ${STEP_TIMEOUT_MS} ms waiting for ${what}; last seen: ${JSON.stringify(last?.seen)}`);
}

// Type into a CodeMirror editor as a person would (select all, then type), then
// read it back: insertText skips the editor's bracket auto-closing.
async function typeInto(page, selector, text) {
  const editor = page.locator(selector);
  await editor.click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(text);
  const value = await editor.evaluate((element) => element.CodeMirror.getValue());
  if (value !== text) throw new Error(`${selector} holds ${JSON.stringify(value)} after typing`);
}

async function result(page) {
  return page.locator(RESULT).evaluate((element) => element.CodeMirror.getValue());
}

async function waitForResult(page, what, accept) {
  return until(what, async () => {
    const text = await result(page);
    let parsed = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not yet a whole JSON document
    }
    return { done: parsed !== null && accept(parsed), value: parsed, seen: text.slice(0, 500) };
  });
}

// GraphiQL parses the editor after a short debounce, and runs what it parsed last
// (a subscription still parsed as the previous query would go over HTTP). The
// active tab takes the name of the parsed operation: wait for it, and for the
// button to be a plain button (with several operations it is a menu).
async function execute(page, operationName) {
  await until(`GraphiQL to parse ${operationName}`, async () => {
    const title = await page.locator(".graphiql-tab-active .graphiql-tab-button").textContent();
    return { done: title === operationName, seen: title };
  });
  await page.locator(`${EXECUTE}:not([aria-haspopup])`).click();
}

// A running subscription turns the execute button into a stop button.
async function stop(page) {
  const button = page.locator(EXECUTE);
  if ((await button.getAttribute("aria-label"))?.startsWith("Stop")) await button.click();
  await until("the subscription to stop", async () => {
    const label = await button.getAttribute("aria-label");
    return { done: !label?.startsWith("Stop"), seen: label };
  });
}

async function postGraphQL(query, variables) {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const ACCOUNT_QUERY = `query Account {
  me { username }
  symbols(first: 3) { edges { node { code name } } }
}`;
const TICKS_SUBSCRIPTION = `subscription Ticks {
  ticks(symbols: ["${symbol}"]) { symbol last time }
}`;
const ORDERS_SUBSCRIPTION = `subscription Orders {
  orderUpdates { id status side symbol { code } }
}`;
const CREATE_ALERT = `mutation CreateAlert($input: CreateAlertInput!) {
  createAlert(input: $input) { alert { id } userErrors { field message } }
}`;
const PLACE_ORDER = `mutation PlaceOrder($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } userErrors { code message } }
}`;

async function placeRestingBuy(reference) {
  const limitPrice = (Math.floor(Number(reference) * 0.95 * 100) / 100).toFixed(2);
  const input = { symbol, side: "BUY", type: "LIMIT", quantity: "0.001", limitPrice };
  const { placeOrder } = await postGraphQL(PLACE_ORDER, { input });
  if (!placeOrder.order) throw new Error(`placeOrder refused: ${JSON.stringify(placeOrder.userErrors)}`);
  return placeOrder.order;
}

async function graphiql(page, shot) {
  await page.goto(`${base}/graphql`);
  await page.locator(QUERY_EDITOR).waitFor();

  // the schema came in by introspection: the docs list the root types
  await page.getByRole("button", { name: "Show Documentation Explorer" }).click();
  await page.locator(".graphiql-doc-explorer").getByText("Subscription", { exact: true }).waitFor();
  emit("docs", { rootTypes: await page.locator(".graphiql-doc-explorer-root-type").allTextContents() });
  await page.getByRole("button", { name: "Hide Documentation Explorer" }).click();

  // (a) a query, with a token typed into the Headers tab (sent as an HTTP header)
  await page.getByRole("button", { name: "Headers" }).click();
  await typeInto(page, TOOL_EDITOR, JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2));
  await typeInto(page, QUERY_EDITOR, ACCOUNT_QUERY);
  await execute(page, "Account");
  const query = await waitForResult(page, "the query's data", (body) => body.data?.symbols?.edges?.length === 3);
  emit("query", { response: query });
  await page.screenshot({ path: shot("graphiql-query.png") });

  // (b) a subscription: two different ticks of the fed symbol
  await typeInto(page, QUERY_EDITOR, TICKS_SUBSCRIPTION);
  await execute(page, "Ticks");
  const first = await waitForResult(page, "a tick", (body) => body.data?.ticks?.symbol === symbol);
  const second = await waitForResult(
    page,
    "a second tick",
    (body) => body.data?.ticks?.symbol === symbol && body.data.ticks.time !== first.data.ticks.time,
  );
  emit("ticks", { responses: [first, second] });
  await page.screenshot({ path: shot("graphiql-subscription.png") });
  await stop(page);

  // (c) a subscription that needs the token: it must have gone in connection_init.
  // The order is placed (again) until it shows, as nothing on the page tells
  // when the server has set the subscription up.
  await typeInto(page, QUERY_EDITOR, ORDERS_SUBSCRIPTION);
  await execute(page, "Orders");
  const placed = [];
  const update = await until("the order update", async () => {
    if (placed.length === 0 || Date.now() - placed.at(-1).at > 1500) {
      placed.push({ ...(await placeRestingBuy(second.data.ticks.last)), at: Date.now() });
    }
    const text = await result(page);
    const body = text ? JSON.parse(text) : null;
    if (body?.errors) throw new Error(`orderUpdates failed: ${text}`);
    return { done: Boolean(body?.data?.orderUpdates), value: body, seen: text };
  });
  emit("orderUpdates", { response: update, placed: placed.map(({ id, status }) => ({ id, status })) });
  await page.screenshot({ path: shot("graphiql-order-updates.png") });
  await stop(page);
}

// axe-core's WCAG 2.x A/AA and best-practice rules. It is evaluated through the
// DevTools protocol, which the page's Content-Security-Policy does not cover.
async function audit(page) {
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(AXE_SOURCE);
  return page.evaluate(async () => {
    const report = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    });
    return {
      passes: report.passes.map((rule) => rule.id),
      violations: report.violations.map((rule) => ({
        id: rule.id,
        impact: rule.impact,
        help: rule.help,
        targets: rule.nodes.map((node) => node.target.join(" ")),
      })),
    };
  });
}

// The chart's figure states what it draws in data-* attributes (see chart.js).
async function chartState(page, selector = "#chart") {
  return page.locator(selector).evaluate((figure) => ({ ...figure.dataset }));
}

async function chartUntil(page, what, accept) {
  return until(what, async () => {
    const state = await chartState(page);
    return { done: accept(state), value: state, seen: state };
  });
}

async function dashboard(page, shot) {
  // (a) candles of the fed symbol at daily bars, with the default SMA overlay
  const opened = Date.now();
  await page.goto(`${base}/?symbol=${encodeURIComponent(symbol)}&interval=DAY_1`);
  const daily = await chartUntil(page, `${symbol} daily candles`, (s) => s.symbol === symbol && Number(s.bars) > 0);
  const firstCandlesMs = Date.now() - opened;
  // (b) a live tick changes the last candle (ticks are fed every 0.2 s)
  const ticked = await chartUntil(
    page,
    "two live ticks on the last candle",
    (s) => Number(s.ticks) >= 2 && s.lastClose !== undefined,
  );
  const later = await chartUntil(
    page,
    "the last candle to move",
    (s) => Number(s.ticks) > Number(ticked.ticks) && s.lastClose !== ticked.lastClose,
  );
  emit("chart", { daily, ticked, later, firstCandlesMs, status: await page.locator("#status").textContent() });

  // (c) switching interval, symbol and indicators redraws
  const controls = page.getByRole("form", { name: "Chart" });
  await controls.getByLabel("Interval").selectOption("MINUTE_1");
  const minute = await chartUntil(page, "1-minute candles", (s) => s.interval === "MINUTE_1" && Number(s.bars) > 0);
  await controls.getByLabel("Interval").selectOption("DAY_1");
  await chartUntil(page, "daily candles again", (s) => s.interval === "DAY_1");
  await controls.getByLabel("Symbol").fill("600519.SH");
  await controls.getByLabel("Symbol").press("Enter");
  const other = await chartUntil(page, "600519.SH candles", (s) => s.symbol === "600519.SH" && Number(s.bars) > 0);
  // an unknown code is reported and leaves the chart as it was
  await controls.getByLabel("Symbol").fill("NOPE");
  await controls.getByLabel("Symbol").press("Enter");
  const unknown = await until("the unknown symbol's message", async () => {
    const text = await page.locator("#status").textContent();
    return { done: text.startsWith("Unknown symbol NOPE"), value: text, seen: text };
  });
  const kept = await chartState(page);
  await controls.getByLabel("Bollinger (20, 2σ)").check();
  await controls.getByLabel("RSI (14)").check();
  await controls.getByLabel("MACD (12, 26, 9)").check();
  await controls.getByLabel("SMA", { exact: true }).uncheck();
  const indicators = await chartUntil(page, "the chosen indicators", (s) => s.indicators === "bollinger,rsi,macd");
  emit("switch", { minute, other, unknown, kept, indicators, caption: await page.locator("#chart figcaption").textContent() });
  await page.screenshot({ path: shot("dashboard-chart.png") });
  const signedOutAudit = await audit(page); // the sign-in form is only visible now

  // (d) a wrong password is refused with a message; signing in, with the
  // keyboard only, shows open orders and positions
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByLabel("Password").press("Enter");
  const refused = await until("the refusal", async () => {
    const text = await page.locator("#login-message").textContent();
    return { done: text !== "" && text !== "Signing in…", value: text, seen: text };
  });
  emit("refused", { message: refused, signedIn: await page.locator("#account").getAttribute("data-signed-in") });
  await page.getByLabel("Username").fill("");
  await page.getByLabel("Password").fill("");
  await page.getByLabel("Username").focus();
  await page.keyboard.type(username);
  await page.keyboard.press("Tab");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
  await page.locator("#account[data-signed-in=true] #orders[data-rows]").waitFor();
  const before = await page.locator("#orders").getAttribute("data-rows");
  // a new resting order and a market order: orderUpdates must bring both in
  const quote = await postGraphQL(`query Q { quote(symbol: "${symbol}") { last } }`);
  const resting = await placeRestingBuy(quote.quote.last);
  const market = { symbol, side: "BUY", type: "MARKET", quantity: "0.001" };
  await postGraphQL(PLACE_ORDER, { input: market });
  const account = await until("the new order and the position", async () => {
    // texts and counts read in one turn of the page, so they agree with each other
    const tables = await page.locator("#account").evaluate((account) => {
      const table = (id) => account.querySelector(`#${id}`);
      const texts = (id) => [...table(id).querySelectorAll("tbody tr")].map((row) => row.textContent);
      return {
        orders: texts("orders"),
        positions: texts("positions"),
        rows: Number(table("orders").dataset.rows),
        positionRows: Number(table("positions").dataset.rows),
      };
    });
    const { rows, positionRows, ...texts } = tables;
    const seen = { ...texts, before };
    return { done: rows > Number(before) && positionRows > 0, value: { ...seen, rows, positionRows }, seen };
  });
  emit("account", {
    ...account,
    resting: resting.id,
    username: await page.locator("#username").textContent(),
    stored: await page.evaluate(() => Boolean(sessionStorage.getItem("quantgraph.accessToken"))),
    formVisible: await page.getByRole("form", { name: "Sign in" }).isVisible(),
  });
  // an alert just above the rising feed's price: its firing must arrive live
  const now = await postGraphQL(`query Q { quote(symbol: "${symbol}") { last } }`);
  const level = (Number(now.quote.last) + 3).toFixed(2);
  const alert = { symbol, kind: "PRICE_CROSSES_ABOVE", level };
  const created = await postGraphQL(CREATE_ALERT, { input: alert });
  const firing = await until("the alert firing", async () => {
    // rows and count read in one turn of the page: read apart, a refresh in
    // between gave the old rows with the new count
    const value = await page.locator("#firings").evaluate((table) => ({
      rows: [...table.querySelectorAll("tbody tr")].map((row) => row.textContent),
      count: Number(table.dataset.rows),
    }));
    return { done: value.count > 0, value, seen: value.rows };
  });
  emit("firing", { ...firing, level, errors: created.createAlert.userErrors });
  await page.locator("#account").screenshot({ path: shot("dashboard-account.png") });

  // (e) a backtest draws its equity curve and marks its trades on the chart
  const form = page.getByRole("form", { name: "Backtest" });
  await form.getByLabel("Strategy").selectOption("SMA_CROSS");
  await form.getByLabel("Symbol").fill("600519.SH");
  await form.getByLabel("fast").fill("5");
  await form.getByLabel("slow").fill("20");
  await form.getByRole("button", { name: "Run backtest" }).click();
  const equity = await until("the equity curve", async () => {
    const state = await chartState(page, "#equity");
    return { done: Number(state.points) > 0, value: state, seen: state };
  });
  const marked = await chartUntil(page, "trade markers", (s) => Number(s.markers) > 0);
  const metrics = await page.locator("#backtest-metrics").evaluate((list) =>
    Object.fromEntries([...list.querySelectorAll("dt")].map((term) => [term.textContent, term.nextElementSibling.textContent])),
  );
  emit("backtest", { equity, chart: marked, metrics, message: await page.locator("#backtest-message").textContent() });

  // (f) accessibility, in both colour schemes
  const audits = {};
  for (const colorScheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme, reducedMotion: "reduce" });
    await sleep(200); // the charts repaint in the new colours
    audits[colorScheme] = await audit(page);
    await page.screenshot({ path: shot(colorScheme === "light" ? "dashboard.png" : "dashboard-dark.png"), fullPage: true });
  }
  emit("accessibility", { page: "/", signedOut: signedOutAudit, ...audits });
  await page.emulateMedia({ colorScheme: "light" });

  // (g) signing out forgets the token
  // (the page signs out at once; wait for its logout request, which leaving
  // the page would otherwise abort)
  const loggedOut = page.waitForResponse((response) => response.request().postData()?.includes("DashboardLogout"));
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.locator("#account[data-signed-in=false]").waitFor();
  const logout = await (await loggedOut).json();
  emit("signout", {
    stored: await page.evaluate(() => sessionStorage.getItem("quantgraph.accessToken")),
    formVisible: await page.getByRole("form", { name: "Sign in" }).isVisible(),
    logout,
  });

  // the link to GraphiQL leads to it
  await page.getByRole("link", { name: /GraphiQL/ }).click();
  await page.locator(QUERY_EDITOR).waitFor();
  emit("link", { url: page.url() });
}

// A shared link (?q=…) opens GraphiQL with that query.
async function sharedLink(page) {
  const shared = "query Shared { exchanges }";
  await page.goto(`${base}/graphql?q=${encodeURIComponent(shared)}`);
  await execute(page, "Shared");
  const exchanges = await waitForResult(page, "the shared query's data", (body) => Boolean(body.data?.exchanges));
  const editor = await page.locator(QUERY_EDITOR).evaluate((element) => element.CodeMirror.getValue());
  emit("shared", { editor, response: exchanges });
}

await mkdir(screenshots, { recursive: true });
const shot = (name) => path.join(screenshots, name);
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
});
let failed = false;
try {
  emit("browser", { version: browser.version() });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`)) return route.continue();
    problems.offsite.push(url);
    return route.abort("blockedbyclient");
  });
  // Content-Security-Policy violations are reported through the console, as errors.
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
    });
  });
  context.on("page", watch);
  try {
    await graphiql(await context.newPage(), shot);
    await dashboard(await context.newPage(), shot);
    await sharedLink(await context.newPage());
  } catch (error) {
    failed = true;
    console.error(error.stack || String(error));
    for (const [index, page] of context.pages().entries()) {
      await page.screenshot({ path: shot(`failure-${index}.png`) }).catch(() => {});
    }
  }
  emit("problems", problems);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
