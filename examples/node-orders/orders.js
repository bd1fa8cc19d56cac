// orders: a Dapr app written with the official Dapr JavaScript SDK and nothing else.
//
// It subscribes to the topic `orders`, keeps every order it receives in the state store, and
// answers `GET /orders/<id>` (called through Dapr service invocation) with the stored order.
// It serves no `/healthz`: like daprd, devhost only waits for the app's port.
const { DaprServer, HttpMethod } = require("@dapr/dapr");

async function main() {
  const server = new DaprServer({
    serverHost: "127.0.0.1",
    serverPort: process.env.APP_PORT ?? "5001",
    // DAPR_HTTP_PORT and DAPR_API_TOKEN come from the sidecar (daprd or devhost).
    clientOptions: { daprHost: "127.0.0.1" },
  });

  await server.pubsub.subscribe("pubsub", "orders", async (order) => {
    // At-least-once delivery: saving the same order twice is harmless.
    await server.client.state.save("statestore", [
      { key: `order-${order.id}`, value: { ...order, status: "received" } },
    ]);
    console.log(`orders: received order ${order.id}`);
  });

  await server.invoker.listen(
    "orders/:id",
    async ({ query }) => {
      const id = query.split("/").pop();
      const order = await server.client.state.get("statestore", `order-${id}`);
      return order || { id, status: "unknown" };
    },
    { method: HttpMethod.GET },
  );

  await server.start();
}

main().catch((error) => {
  console.error("orders:", error);
  process.exit(1);
});
