// Signing in, and the signed-in user's open orders, positions, balances and
// alert firings.
//
// The access token is kept by api.js's `session` (sessionStorage). The panel is
// kept live by `orderUpdates` and `alerts` on a socket of its own (the token
// goes in that socket's connection_init); on any update the panel simply
// re-queries, as one small query is cheaper to get right than merging fills,
// status changes and firings into tables by hand.

import { Socket, graphql, session } from "./api.js";

const LOGIN = `mutation DashboardLogin($username: String!, $password: String!) {
  login(username: $username, password: $password) { tokens { accessToken } userErrors { message } }
}`;
const LOGOUT = "mutation DashboardLogout { logout { ok } }";
const ACCOUNT = `query DashboardAccount {
  me {
    username
    account {
      balances { currency cash reserved buyingPower }
      positions { symbol { code } quantity averageCost lastPrice marketValue unrealizedPnl realizedPnl }
    }
  }
  orders(status: [NEW, PARTIALLY_FILLED], first: 50) {
    edges { node { id symbol { code } side type quantity filledQuantity limitPrice stopPrice status createdAt } }
  }
  alertFirings(first: 10) { edges { node { id symbol { code } price message triggeredAt } } }
}`;
const ORDER_UPDATES = "subscription DashboardOrderUpdates { orderUpdates { id status } }";
const ALERT_FIRINGS = "subscription DashboardAlerts { alerts { id } }";

/** Fill a table body with one row per item; `cells` gives each row's texts. */
function fill(tbody, items, cells, empty) {
  const rows = items.map((item) => {
    const row = document.createElement("tr");
    cells(item).forEach((text, index) => {
      const cell = document.createElement(index === 0 ? "th" : "td");
      if (index === 0) cell.scope = "row";
      cell.textContent = text ?? "–";
      row.append(cell);
    });
    return row;
  });
  if (!rows.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = tbody.closest("table").querySelectorAll("thead th").length;
    cell.textContent = empty;
    row.append(cell);
    rows.push(row);
  }
  tbody.replaceChildren(...rows);
  tbody.closest("table").dataset.rows = String(items.length);
}

export class AccountPanel {
  constructor(root) {
    this.root = root;
    this.form = root.querySelector("#login");
    this.signedIn = root.querySelector("#signed-in");
    this.message = root.querySelector("#login-message");
    this.status = root.querySelector("#account-status");
    this.socket = null;
    this.refreshing = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.login(new FormData(this.form));
    });
    root.querySelector("#logout").addEventListener("click", () => this.logout());
    const token = session.token();
    if (token) this.open(token);
    else this.show(false);
  }

  show(signedIn) {
    this.form.hidden = signedIn;
    this.signedIn.hidden = !signedIn;
    this.root.dataset.signedIn = String(signedIn);
  }

  async login(form) {
    this.message.textContent = "Signing in…";
    try {
      const { login } = await graphql(LOGIN, { username: form.get("username"), password: form.get("password") });
      if (!login.tokens) {
        this.message.textContent = login.userErrors.map((error) => error.message).join("; ") || "Sign-in failed";
        return;
      }
      this.message.textContent = "";
      this.form.reset();
      session.save(login.tokens.accessToken);
      await this.open(login.tokens.accessToken);
      this.root.querySelector("#account-heading").focus();
    } catch (error) {
      this.message.textContent = `Sign-in failed: ${error.message}`;
    }
  }

  async open(token) {
    this.token = token;
    this.show(true);
    try {
      await this.refresh();
    } catch (error) {
      // An expired or revoked token: back to the form, with the reason.
      this.close();
      this.message.textContent = `Please sign in again (${error.message}).`;
      return;
    }
    this.socket = new Socket({ token, onStatus: (text, state) => this.setStatus(text, state) });
    this.socket.subscribe(
      ORDER_UPDATES,
      {},
      () => this.refreshSoon(),
      (message) => this.setStatus(`Updates refused: ${message}`, "error"),
    );
    this.socket.subscribe(
      ALERT_FIRINGS,
      {},
      () => this.refreshSoon(),
      (message) => this.setStatus(`Alert updates refused: ${message}`, "error"),
    );
  }

  setStatus(text, state) {
    this.status.textContent = text === "Live" ? "Live updates" : text;
    this.status.dataset.state = state;
  }

  async logout() {
    const token = this.token;
    this.close();
    // Revoke the session server-side too; the page is signed out either way.
    await graphql(LOGOUT, {}, token).catch(() => {});
    this.form.querySelector("input").focus();
  }

  close() {
    session.forget();
    this.token = null;
    if (this.socket) this.socket.close();
    this.socket = null;
    this.show(false);
  }

  /** Re-query at most once per burst of updates (a fill often comes with a status change). */
  refreshSoon() {
    if (this.refreshing) return;
    this.refreshing = window.setTimeout(() => {
      this.refreshing = null;
      this.refresh().catch((error) => this.setStatus(`Could not refresh: ${error.message}`, "error"));
    }, 200);
  }

  async refresh() {
    const data = await graphql(ACCOUNT, {}, this.token);
    if (!data.me) throw new Error("not signed in");
    this.root.querySelector("#username").textContent = data.me.username;
    const orders = data.orders.edges.map(({ node }) => node);
    fill(
      this.root.querySelector("#orders tbody"),
      orders,
      (o) => [o.symbol.code, o.side, o.type, o.quantity, o.filledQuantity, o.limitPrice ?? o.stopPrice, o.status],
      "No open orders.",
    );
    fill(
      this.root.querySelector("#positions tbody"),
      data.me.account.positions,
      (p) => [p.symbol.code, p.quantity, p.averageCost, p.lastPrice, p.marketValue, p.unrealizedPnl, p.realizedPnl],
      "No positions.",
    );
    fill(
      this.root.querySelector("#balances tbody"),
      data.me.account.balances,
      (b) => [b.currency, b.cash, b.reserved, b.buyingPower],
      "No balances.",
    );
    fill(
      this.root.querySelector("#firings tbody"),
      data.alertFirings.edges.map(({ node }) => node),
      (f) => [f.symbol.code, new Date(f.triggeredAt).toLocaleString(), f.price, f.message],
      "No alert has fired.",
    );
  }
}
