// checkout: a Dapr client app written with the official Dapr JavaScript SDK.
//
// Every two seconds it places an order: it publishes it to the topic `orders`, then asks the
// `orders` app for it through Dapr service invocation until that app has stored it. The coupon
// on each order is a secret read from the secret store at start. Each confirmed order is added to
// this app's own state (`confirmed`), which is what `make example-node` checks.
const { DaprClient, HttpMethod } = require("@dapr/dapr");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const client = new DaprClient({ daprHost: "127.0.0.1" });
  await client.start();

  const secret = await client.secret.get("secretstore", "coupon");
  const coupon = secret.coupon;
  const confirmed = [];

  for (let id = 1; ; id++) {
    const order = { id, item: `book #${id}`, coupon };
    await client.pubsub.publish("pubsub", "orders", order);
    console.log(`checkout: placed order ${id}`);

    for (let attempt = 0; attempt < 50; attempt++) {
      const stored = await client.invoker.invoke("orders", `orders/${id}`, HttpMethod.GET);
      if (stored.status === "received") {
        confirmed.push({ id, coupon: stored.coupon });
        await client.state.save("statestore", [{ key: "confirmed", value: confirmed }]);
        console.log(`checkout: order ${id} confirmed by orders`);
        break;
      }
      await sleep(100);
    }
    await sleep(2000);
  }
}

main().catch((error) => {
  console.error("checkout:", error);
  process.exit(1);
});
