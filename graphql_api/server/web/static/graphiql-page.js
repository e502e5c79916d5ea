// GraphiQL for quantgraph, on the vendored React and GraphiQL UMD bundles.
//
// Queries and mutations are POSTed as JSON to this page's URL; subscriptions
// use graphql-transport-ws on the same path (ws:// or wss://), through the
// graphql-ws client bundled in GraphiQL. GraphiQL's fetcher sends what is typed
// in the Headers tab as HTTP headers, and as the connection_init payload of a
// subscription's WebSocket, which is where the server reads `Authorization`.
//
// The editor's query and variables are mirrored in the URL (?q=…&variables=…)
// so a link shares them; `q`, not `query`, because a GET with `query` is a
// GraphQL request, not this page. Headers are not: they hold tokens.
"use strict";

(function () {
  const DEFAULT_QUERY = `# quantgraph GraphiQL. Ctrl-Enter (or ▶) runs the operation
# under the cursor.
#
# Market data needs no login. To act as a user, log in:
#   mutation {
#     login(username: "demo", password: "…") {
#       tokens { accessToken }
#     }
#   }
# then put this in the Headers tab below:
#   {"Authorization": "Bearer <accessToken>"}
# It goes with every query and mutation, and in the
# connection_init payload of every subscription.

query Symbols {
  symbols(first: 5) {
    edges { node { code name quote { last time } } }
  }
}

subscription Ticks {
  ticks(symbols: ["BTCUSDT", "ETHUSDT"]) {
    symbol last bid ask time
  }
}
`;

  const endpoint = window.location.origin + window.location.pathname;
  const subscriptionUrl = endpoint.replace(/^http/, "ws");
  const parameters = new URLSearchParams(window.location.search);

  function remember(name, value) {
    if (value) {
      parameters.set(name, value);
    } else {
      parameters.delete(name);
    }
    const search = parameters.toString();
    window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
  }

  const fetcher = GraphiQL.createFetcher({ url: endpoint, subscriptionUrl });

  function QuantgraphGraphiQL() {
    const [query, setQuery] = React.useState(parameters.get("q") || undefined);
    const [variables, setVariables] = React.useState(parameters.get("variables") || undefined);
    return React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: DEFAULT_QUERY,
      query,
      variables,
      onEditQuery(value) {
        setQuery(value);
        remember("q", value);
      },
      onEditVariables(value) {
        setVariables(value);
        remember("variables", value);
      },
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
    });
  }

  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(QuantgraphGraphiQL));
})();
