// Read OPC UA variables with node-opcua (an implementation independent of asyncua).
// usage: node opcua_read.mjs ENDPOINT NODEID [NODEID ...]
// NodeIds may be "ns=2;s=..." or "nsu=<namespace uri>;s=...", resolved via the server's NamespaceArray.
import { OPCUAClient, AttributeIds } from "node-opcua-client";

const [endpoint, ...nodeIds] = process.argv.slice(2);
if (!endpoint || nodeIds.length === 0) {
  console.error("usage: node opcua_read.mjs ENDPOINT NODEID [NODEID ...]");
  process.exit(2);
}
const client = OPCUAClient.create({
  endpointMustExist: false,
  connectionStrategy: { maxRetry: 3, initialDelay: 200, maxDelay: 1000 },
});
try {
  await client.connect(endpoint);
  const session = await client.createSession();
  const namespaces = (await session.read({ nodeId: "ns=0;i=2255", attributeId: AttributeIds.Value })).value.value;
  for (const nodeId of nodeIds) {
    let resolved = nodeId;
    const m = /^nsu=([^;]+);(.*)$/.exec(nodeId);
    if (m) {
      const index = namespaces.indexOf(m[1]);
      if (index < 0) throw new Error(`namespace ${m[1]} not on the server`);
      resolved = `ns=${index};${m[2]}`;
    }
    const dv = await session.read({ nodeId: resolved, attributeId: AttributeIds.Value });
    console.log(`${nodeId}\t${dv.statusCode.name}\t${JSON.stringify(dv.value.value)}`);
  }
  await session.close();
} finally {
  await client.disconnect();
}
