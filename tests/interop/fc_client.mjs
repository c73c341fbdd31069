// The FC's side with node-opcua (an OPC UA stack independent of asyncua): browse the FC namespace, read the
// PackML state, call a PackML command (Start by default).
// usage: node fc_client.mjs ENDPOINT [METHOD]
// Prints one JSON object: the namespaces, what Objects/Cell and Objects/Cellctl hold, the three CurrentStates,
// Cellctl.StateCurrent, and the call's status.
import { OPCUAClient, AttributeIds, BrowseDirection, makeBrowsePath } from "node-opcua-client";

const FC = "urn:cellctl:fc";
const PACKML = "http://opcfoundation.org/UA/PackML/";
const [endpoint, method = "Start"] = process.argv.slice(2);
if (!endpoint) {
  console.error("usage: node fc_client.mjs ENDPOINT [METHOD]");
  process.exit(2);
}
const client = OPCUAClient.create({
  endpointMustExist: false,
  connectionStrategy: { maxRetry: 3, initialDelay: 200, maxDelay: 1000 },
});

async function resolve(session, path) {
  const result = await session.translateBrowsePath(makeBrowsePath("ns=0;i=85", path));
  if (!result.statusCode.isGood() || result.targets.length === 0) {
    throw new Error(`browse path ${path}: ${result.statusCode.name}`);
  }
  return result.targets[0].targetId.toString();
}

async function children(session, nodeId) {
  const result = await session.browse({ nodeId, browseDirection: BrowseDirection.Forward, resultMask: 63 });
  return result.references.map((r) => r.browseName.name).sort();
}

async function read(session, nodeId) {
  const dv = await session.read({ nodeId, attributeId: AttributeIds.Value });
  const value = dv.value.value;
  return { status: dv.statusCode.name, value: value && value.text !== undefined ? value.text : value };
}

try {
  await client.connect(endpoint);
  const session = await client.createSession();
  const namespaces = (await read(session, "ns=0;i=2255")).value;
  const fc = namespaces.indexOf(FC);
  const p = namespaces.indexOf(PACKML);
  if (fc < 0 || p < 0) throw new Error(`namespaces ${FC} / ${PACKML} not on the server: ${namespaces}`);
  const base = `/${fc}:Cell/${p}:BaseStateMachine`;
  const machine = `${base}/${p}:MachineState`;
  const execute = `${machine}/${p}:ExecuteState`;
  const out = {
    namespaces: { fc, packml: p },
    objects: await children(session, "ns=0;i=85"),
    cell: await children(session, await resolve(session, `/${fc}:Cell`)),
    cellctl: await children(session, await resolve(session, `/${fc}:Cellctl`)),
    execute_methods: await children(session, await resolve(session, execute)),
    state: {
      base: await read(session, await resolve(session, `${base}/CurrentState`)),
      effective: await read(session, await resolve(session, `${base}/CurrentState/EffectiveDisplayName`)),
      machine: await read(session, await resolve(session, `${machine}/CurrentState`)),
      execute: await read(session, await resolve(session, `${execute}/CurrentState`)),
      number: await read(session, await resolve(session, `/${fc}:Cellctl/${fc}:StateCurrent`)),
    },
  };
  const owner = method === "Stop" || method === "Reset" ? machine : execute;
  const result = await session.call({
    objectId: await resolve(session, owner),
    methodId: await resolve(session, `${owner}/${p}:${method}`),
    inputArguments: [],
  });
  out.call = { method, status: result.statusCode.name };
  console.log(JSON.stringify(out));
  await session.close();
} finally {
  await client.disconnect();
}
