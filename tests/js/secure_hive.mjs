// A hivebus agent or delegator in JavaScript (nats.js), on a secure bus, with nothing but its
// hivebus credentials file: the nkey seed, and the inbox prefix the server lets it read.
//   node secure_hive.mjs agent CREDS URL AGENT_ID CAPABILITY
//   node secure_hive.mjs delegate CREDS URL CAPABILITY PAYLOAD_JSON
import { readFileSync } from "node:fs";
import { connect, nkeyAuthenticator, JSONCodec } from "nats";

function credentials(path) {
  const fields = {};
  let seed = null;
  for (const raw of readFileSync(path, "utf8").split("\n")) {
    const line = raw.trim();
    const field = line.match(/^#\s*([a-z_]+):\s*(.*)$/);
    if (field) fields[field[1]] = field[2];
    else if (line.startsWith("SU")) seed = line;
  }
  return { seed, inboxPrefix: fields.inbox_prefix, name: fields.name };
}

const [mode, credsPath, url, ...rest] = process.argv.slice(2);
const creds = credentials(credsPath);
const nc = await connect({
  servers: url,
  authenticator: nkeyAuthenticator(new TextEncoder().encode(creds.seed)),
  inboxPrefix: creds.inboxPrefix,
});
const json = JSONCodec();

async function call(subject, body) {
  const reply = json.decode((await nc.request(subject, json.encode(body), { timeout: 5000 })).data);
  if (!reply.ok) throw new Error(`${subject}: ${reply.error.code}: ${reply.error.message}`);
  return reply;
}

if (mode === "agent") {
  const [agentId, capability] = rest;
  const offers = nc.subscribe(`agent.${agentId}.assign`);
  const registered = await call("agent.register", { agent_id: agentId, capabilities: [capability] });
  const beat = setInterval(
    () => nc.publish("agent.heartbeat", json.encode({ agent_id: agentId })),
    registered.heartbeat_interval_s * 1000,
  );
  console.log(`ready ${agentId}`);
  process.on("SIGTERM", async () => {
    clearInterval(beat);
    await call("agent.deregister", { agent_id: agentId }).catch(() => {});
    await nc.drain();
    process.exit(0);
  });
  for await (const msg of offers) {
    const offer = json.decode(msg.data);
    // An offer from the core crosses from its account: the server says so in this header.
    const from = JSON.parse(msg.headers?.get("Nats-Request-Info") || "{}").acc;
    msg.respond(json.encode({ accept: from === "CORE" }));
    if (from !== "CORE") continue;
    const result = String(offer.payload).toUpperCase() + " (js)";
    await call("task.complete", { task_id: offer.task_id, agent_id: agentId, success: true, result });
  }
} else {
  const [capability, payload] = rest;
  const reply = await call("task.delegate", {
    required_capabilities: [capability],
    payload: JSON.parse(payload),
  });
  for (let i = 0; i < 100; i++) {
    const { task } = await call("task.get", { task_id: reply.task_id });
    if (task.status === "completed" || task.status === "failed") {
      console.log(JSON.stringify(task));
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await nc.close();
}
