// A hivebus client in another language: nats.js and JSON, written from subjects.md alone.
//
//   node contract.mjs SCENARIO      run one scenario against a running core
//   node contract.mjs --list        name the scenarios
//
// HIVEBUS_NATS_URL (default nats://127.0.0.1:4222) and HIVEBUS_PREFIX say where the bus is.
// Exit status 0: the scenario held. Otherwise it prints what failed and exits 1 (2 for a
// usage error). Each scenario is one async function in SCENARIOS taking a Bus; add more
// (retries, delays, dependencies) the same way. Everything is named uniquely per run, so
// scenarios can share a core with other tests.

import { connect } from "nats";

const WAIT_MS = 5000; // how long anything that should happen promptly may take (a guard)

class ContractError extends Error {}

function check(condition, what, detail) {
  if (!condition) {
    const shown = detail === undefined ? "" : `: ${JSON.stringify(detail)}`;
    throw new ContractError(`${what}${shown}`);
  }
}

function unique(name) {
  return `${name}-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
}

function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ContractError(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const encode = (body) => encoder.encode(JSON.stringify(body));
const decode = (data) => JSON.parse(decoder.decode(data));

// --- the bus: request/reply in the contract's terms ---------------------------------------

class Bus {
  constructor(nc, prefix) {
    this.nc = nc;
    this.prefix = prefix;
  }

  subject(name) {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  async request(name, body) {
    const msg = await this.nc.request(this.subject(name), encode(body), { timeout: WAIT_MS });
    return decode(msg.data);
  }

  /** A request that must succeed: {"ok": true, ...}. */
  async ok(name, body) {
    const reply = await this.request(name, body);
    check(reply.ok === true, `${name} should succeed`, reply);
    return reply;
  }

  /** A request that must be refused with `code`; returns the error message. */
  async fails(name, body, code) {
    const reply = await this.request(name, body);
    check(reply.ok === false, `${name} should be refused with ${code}`, reply);
    check(reply.error?.code === code, `${name} should be refused with ${code}`, reply);
    check(typeof reply.error.message === "string", `${name}: error.message is a string`, reply);
    return reply.error.message;
  }

  /** Every message on `task.<task_id>.updates`, in arrival order; subscribed at once. */
  follow(taskId) {
    return new Updates(this, taskId);
  }
}

class Updates {
  constructor(bus, taskId) {
    this.events = [];
    this.waiters = [];
    this.sub = bus.nc.subscribe(bus.subject(`task.${taskId}.updates`));
    (async () => {
      for await (const msg of this.sub) {
        this.events.push(decode(msg.data));
        for (const wake of this.waiters.splice(0)) wake();
      }
    })();
  }

  names() {
    return this.events.map((e) => e.event);
  }

  /** The first update called `name`. */
  async waitFor(name) {
    const found = () => this.events.find((e) => e.event === name);
    await withTimeout(
      (async () => {
        while (!found()) await new Promise((wake) => this.waiters.push(wake));
      })(),
      `task update ${name} (seen: ${this.names().join(", ") || "none"})`,
    );
    return found();
  }

  stop() {
    this.sub.unsubscribe();
  }
}

// --- an agent, as subjects.md's "writing an agent in another language" says ---------------

class Agent {
  constructor(bus, agentId, capabilities) {
    this.bus = bus;
    this.agentId = agentId;
    this.capabilities = capabilities;
    this.offers = [];
    this.waiters = [];
    this.heartbeat = null;
  }

  /** Subscribe to the assign subject first (and flush), then register, then heartbeat. */
  async start() {
    const assign = this.bus.subject(`agent.${this.agentId}.assign`);
    this.sub = this.bus.nc.subscribe(assign, {
      callback: (err, msg) => {
        if (err) return;
        msg.respond(encode({ accept: true })); // answer first, then start the work
        this.offers.push(decode(msg.data));
        for (const wake of this.waiters.splice(0)) wake();
      },
    });
    await this.bus.nc.flush();
    const reply = await this.bus.ok("agent.register", {
      agent_id: this.agentId,
      capabilities: this.capabilities,
      max_tasks: 1,
    });
    check(reply.assign_subject === assign, "the reply names the assign subject", reply);
    check(reply.heartbeat_interval_s > 0, "the reply gives a heartbeat interval", reply);
    this.heartbeat = setInterval(() => {
      this.bus.nc.publish(this.bus.subject("agent.heartbeat"), encode({ agent_id: this.agentId }));
    }, reply.heartbeat_interval_s * 1000);
    return reply;
  }

  async nextOffer() {
    await withTimeout(
      (async () => {
        while (this.offers.length === 0) await new Promise((wake) => this.waiters.push(wake));
      })(),
      `an offer on agent.${this.agentId}.assign`,
    );
    return this.offers.shift();
  }

  progress(taskId, fields) {
    return this.bus.ok("task.progress", { task_id: taskId, agent_id: this.agentId, ...fields });
  }

  complete(taskId, fields) {
    return this.bus.ok("task.complete", { task_id: taskId, agent_id: this.agentId, ...fields });
  }

  async stop() {
    clearInterval(this.heartbeat);
    this.sub?.unsubscribe();
    await this.bus.ok("agent.deregister", { agent_id: this.agentId });
  }
}

// --- scenarios ----------------------------------------------------------------------------

/** Register, delegate, accept, report progress, follow task.<id>.updates, complete. */
async function progress(bus) {
  const capability = unique("js-cap");
  const agent = new Agent(bus, unique("js-agent"), [capability]);
  await agent.start();
  try {
    const taskId = `${unique("js-task")}.step-1`; // a dotted id: a longer updates subject
    const updates = bus.follow(taskId); // subscribe before delegating: nothing is missed
    await bus.nc.flush();
    const delegated = await bus.ok("task.delegate", {
      task_id: taskId,
      task_type: "build",
      required_capabilities: [capability],
      payload: { files: 3 },
      execution_timeout_s: 30,
    });
    check(delegated.status === "assigned", "an agent with a free slot accepts", delegated);
    check(delegated.agent_id === agent.agentId, "the task went to our agent", delegated);
    const offer = await agent.nextOffer();
    check(offer.task_id === taskId && offer.attempt === 1, "the offer is attempt 1", offer);
    check(offer.payload?.files === 3, "the offer carries the payload", offer);

    // Progress: stored on the task (not its data), published with its data.
    const data = { step: 1, of: 3 };
    await agent.progress(taskId, { progress: 0.5, message: "half way", data });
    let task = (await bus.ok("task.get", { task_id: taskId })).task;
    check(task.status === "assigned", "progress keeps the task assigned", task);
    check(task.progress === 0.5, "task.get shows the fraction", task);
    check(task.progress_message === "half way", "task.get shows the message", task);
    check(typeof task.progress_at === "number", "task.get shows when it was reported", task);
    check(task.progress_at >= task.assigned_at, "progress_at comes after assigned_at", task);
    check(!("data" in task), "data is not stored on the task", task);
    const reported = await updates.waitFor("task.progress");
    check(reported.task_id === taskId, "the update names the task", reported);
    check(reported.agent_id === agent.agentId, "the update names the agent", reported);
    check(reported.progress === 0.5, "the update carries the fraction", reported);
    check(reported.message === "half way", "the update carries the message", reported);
    check(JSON.stringify(reported.data) === JSON.stringify(data), "and the data", reported);

    // Only the holder reports, within bounds; a refusal changes nothing.
    const outsider = unique("js-outsider");
    await bus.fails(
      "task.progress",
      { task_id: taskId, agent_id: outsider, progress: 0.9 },
      "not_task_owner",
    );
    await bus.fails(
      "task.progress",
      { task_id: taskId, agent_id: agent.agentId, progress: 1.5 },
      "invalid_request",
    );
    await bus.fails(
      "task.progress",
      { task_id: taskId, agent_id: agent.agentId, data: { blob: "x".repeat(17000) } },
      "payload_too_large",
    );
    await bus.fails(
      "task.progress",
      { task_id: unique("js-nope"), agent_id: agent.agentId },
      "unknown_task",
    );
    task = (await bus.ok("task.get", { task_id: taskId })).task;
    check(task.progress === 0.5, "a refused report changes nothing", task);

    // Complete: the updates end with the completion.
    const done = (await agent.complete(taskId, { result: { built: true } })).task;
    check(done.status === "completed", "the completion is recorded", done);
    check(done.result?.built === true, "with its result", done);
    await updates.waitFor("task.completed");
    const names = updates.names();
    const expected = ["task.assigned", "task.progress", "task.completed"];
    check(JSON.stringify(names) === JSON.stringify(expected), "the task's updates, in order", names);
    check(
      updates.events.every((e) => e.task_id === taskId && typeof e.timestamp === "number"),
      "every update names this task and has a timestamp",
      updates.events,
    );
    await bus.fails(
      "task.progress",
      { task_id: taskId, agent_id: agent.agentId, progress: 1 },
      "invalid_state",
    );
    updates.stop();
  } finally {
    await agent.stop();
  }
}

/** A task cancelled while its agent works: the agent hears it, and its reports are refused. */
async function cancel(bus) {
  const capability = unique("js-cap");
  const agent = new Agent(bus, unique("js-agent"), [capability]);
  await agent.start();
  const notices = bus.nc.subscribe(bus.subject(`agent.${agent.agentId}.cancel`), { max: 1 });
  try {
    const taskId = unique("js-task");
    const other = unique("js-other"); // queued for nobody: its events are not ours
    const updates = bus.follow(taskId);
    await bus.nc.flush();
    await bus.ok("task.delegate", { task_id: other, required_capabilities: [unique("none")] });
    await bus.ok("task.delegate", { task_id: taskId, required_capabilities: [capability] });
    await agent.nextOffer();
    await agent.progress(taskId, { message: "started" });

    const cancelled = (await bus.ok("task.cancel", { task_id: taskId })).task;
    check(cancelled.status === "cancelled", "task.cancel cancels an assigned task", cancelled);
    check(cancelled.progress_message === "started", "the last report is kept", cancelled);
    const notice = await withTimeout(
      (async () => {
        for await (const msg of notices) return decode(msg.data);
      })(),
      `a notice on agent.${agent.agentId}.cancel`,
    );
    check(notice.task_id === taskId && notice.reason === "cancelled", "the notice", notice);
    await bus.fails(
      "task.progress",
      { task_id: taskId, agent_id: agent.agentId, progress: 0.2 },
      "invalid_state",
    );
    await updates.waitFor("task.cancelled");
    const names = updates.names();
    const expected = ["task.assigned", "task.progress", "task.cancelled"];
    check(JSON.stringify(names) === JSON.stringify(expected), "the task's updates, in order", names);
    check(updates.events.every((e) => e.task_id === taskId), "only this task's", updates.events);
    await bus.ok("task.cancel", { task_id: other });
    updates.stop();
  } finally {
    notices.unsubscribe();
    await agent.stop();
  }
}

/** The task's record, read with task.get. */
async function get(bus, taskId) {
  return (await bus.ok("task.get", { task_id: taskId })).task;
}

/** Fails twice, completes on the third attempt with its backoff in the history; a task
 * allowed two attempts dies, and task.retry brings it back. */
async function retries(bus) {
  const capability = unique("js-cap");
  const agent = new Agent(bus, unique("js-agent"), [capability]);
  await agent.start();
  try {
    const taskId = unique("js-flaky");
    const updates = bus.follow(taskId);
    await bus.nc.flush();
    const retry = { max_attempts: 3, backoff_s: 0.2, backoff_factor: 2 };
    await bus.ok("task.delegate", { task_id: taskId, required_capabilities: [capability], retry });
    for (const attempt of [1, 2]) {
      const offer = await agent.nextOffer();
      check(offer.attempt === attempt, `offer ${attempt} is attempt ${attempt}`, offer);
      const failed = (await agent.complete(taskId, { success: false, error: `boom ${attempt}` })).task;
      check(failed.status === "retrying", "a failed attempt is retried", failed);
      check(failed.next_attempt_at > failed.history.at(-1).finished_at, "later", failed);
    }
    const third = await agent.nextOffer();
    check(third.attempt === 3, "the third offer is attempt 3", third);
    const done = (await agent.complete(taskId, { result: "third time lucky" })).task;
    check(done.status === "completed", "the third attempt completes", done);
    const outcomes = done.history.map((h) => `${h.attempt}:${h.outcome}`);
    check(outcomes.join() === "1:failed,2:failed,3:completed", "the history", done.history);
    check(done.history[0].error === "boom 1", "each attempt's error", done.history);
    for (const [i, wait] of [[1, 0.2], [2, 0.4]]) {
      const gap = done.history[i].assigned_at - done.history[i - 1].finished_at;
      check(gap >= wait, `attempt ${i + 1} waited its backoff of ${wait} s`, done.history);
    }
    await updates.waitFor("task.completed");
    check(updates.names().filter((n) => n === "task.retrying").length === 2, "two retries",
      updates.names());
    updates.stop();

    const doomed = unique("js-doomed");
    const policy = { max_attempts: 2, backoff_s: 0 };
    await bus.ok("task.delegate", { task_id: doomed, required_capabilities: [capability], retry: policy });
    for (const attempt of [1, 2]) {
      check((await agent.nextOffer()).attempt === attempt, "the next attempt");
      await agent.complete(doomed, { success: false, error: "still broken" });
    }
    let task = await get(bus, doomed);
    check(task.status === "dead", "out of attempts, the task is dead", task);
    const back = (await bus.ok("task.retry", { task_id: doomed })).task;
    check(["queued", "offered", "assigned"].includes(back.status), "task.retry requeues", back);
    check((await agent.nextOffer()).attempt === 3, "attempts count on");
    task = (await agent.complete(doomed, { result: "fixed" })).task;
    check(task.status === "completed" && task.attempts === 3, "brought back, it completes", task);
    await bus.fails("task.retry", { task_id: doomed }, "invalid_state");
  } finally {
    await agent.stop();
  }
}

/** A delayed task is scheduled and offered no earlier than its not_before. */
async function delay(bus) {
  const capability = unique("js-cap");
  const agent = new Agent(bus, unique("js-agent"), [capability]);
  await agent.start();
  try {
    const taskId = unique("js-later");
    const reply = await bus.ok("task.delegate", {
      task_id: taskId,
      required_capabilities: [capability],
      delay_s: 0.5,
    });
    check(reply.status === "scheduled", "a delayed task is scheduled", reply);
    const scheduled = await get(bus, taskId);
    check(typeof scheduled.not_before === "number", "it shows when it is due", scheduled);
    const offer = await agent.nextOffer();
    const offeredAt = Date.now() / 1000;
    check(offer.task_id === taskId, "it is offered once due", offer);
    check(offeredAt >= scheduled.not_before, "no earlier than not_before", { offeredAt, scheduled });
    const done = (await agent.complete(taskId, {})).task;
    check(done.assigned_at >= scheduled.not_before, "assigned no earlier", done);
    await bus.fails(
      "task.delegate",
      { task_id: unique("js-both"), delay_s: 1, not_before: Date.now() / 1000 + 5 },
      "invalid_request",
    );
  } finally {
    await agent.stop();
  }
}

/** Three tasks chained with depends_on run in order; a failure propagates down a chain. */
async function dependencies(bus) {
  const capability = unique("js-cap");
  const agent = new Agent(bus, unique("js-agent"), [capability]);
  await agent.start();
  try {
    const [a, b, c] = ["a", "b", "c"].map((n) => unique(`js-${n}`));
    const caps = [capability];
    await bus.ok("task.delegate", { task_id: a, required_capabilities: caps });
    const second = await bus.ok("task.delegate", { task_id: b, required_capabilities: caps, depends_on: [a] });
    const third = await bus.ok("task.delegate", { task_id: c, required_capabilities: caps, depends_on: [b] });
    check(second.status === "blocked" && third.status === "blocked", "blocked", [second, third]);
    for (const [taskId, waitedFor] of [[a, []], [b, [a]], [c, [b]]]) {
      const offer = await agent.nextOffer();
      check(offer.task_id === taskId, "the chain runs in order", offer);
      check(JSON.stringify(offer.depends_on) === JSON.stringify(waitedFor), "the offer says", offer);
      await agent.complete(taskId, { result: taskId });
    }
    check((await get(bus, c)).status === "completed", "the chain completes");

    const [x, y, z] = ["x", "y", "z"].map((n) => unique(`js-${n}`));
    await bus.ok("task.delegate", { task_id: x, required_capabilities: caps });
    await bus.ok("task.delegate", { task_id: y, required_capabilities: caps, depends_on: [x] });
    await bus.ok("task.delegate", { task_id: z, required_capabilities: caps, depends_on: [y] });
    await agent.nextOffer();
    await agent.complete(x, { success: false, error: "root cause" });
    for (const [taskId, cause] of [[y, x], [z, y]]) {
      let task = await get(bus, taskId);
      for (let i = 0; i < 50 && task.status !== "failed"; i++) {
        await new Promise((r) => setTimeout(r, 50));
        task = await get(bus, taskId);
      }
      check(task.status === "failed", "a failed dependency fails the task", task);
      check(task.error === `dependency_failed: task '${cause}' is failed`, "naming it", task);
    }
    const message = await bus.fails(
      "task.delegate",
      { task_id: unique("js-orphan"), depends_on: [unique("js-ghost")] },
      "invalid_request",
    );
    check(message.includes("depends_on"), "an unknown dependency is named", message);
  } finally {
    await agent.stop();
  }
}

/** A concurrency key holds its limit across many delegations at once. */
async function concurrency(bus) {
  const capability = unique("js-cap");
  const agents = [];
  for (let i = 0; i < 4; i++) agents.push(new Agent(bus, unique(`js-agent-${i}`), [capability]));
  for (const agent of agents) await agent.start();
  try {
    const key = unique("repo");
    const ids = Array.from({ length: 12 }, (_, i) => unique(`js-k${i}`));
    await Promise.all(ids.map((id) =>
      bus.ok("task.delegate", {
        task_id: id,
        required_capabilities: [capability],
        concurrency: { key, limit: 2 },
      })));
    let done = 0;
    let most = 0;
    while (done < ids.length) {
      const held = [];
      for (const id of ids) {
        const task = await get(bus, id);
        if (task.status === "assigned" || task.status === "offered") held.push(task);
      }
      most = Math.max(most, held.length);
      check(held.length <= 2, "never more than the limit at once", held.map((t) => t.task_id));
      for (const task of held) {
        const agent = agents.find((a) => a.agentId === task.agent_id);
        agent.offers.length = 0;
        await agent.complete(task.task_id, {});
        done++;
      }
      if (held.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    check(most === 2, "the limit is reached", most);
  } finally {
    for (const agent of agents) await agent.stop();
  }
}

const SCENARIOS = { progress, cancel, retries, delay, dependencies, concurrency };

// --- running one ----------------------------------------------------------------------------

async function main(argv) {
  const name = argv[0];
  if (name === "--list") {
    console.log(Object.keys(SCENARIOS).join("\n"));
    return 0;
  }
  const scenario = SCENARIOS[name];
  if (!scenario) {
    console.error(`usage: node contract.mjs SCENARIO|--list; scenarios: ${Object.keys(SCENARIOS)}`);
    return 2;
  }
  const servers = process.env.HIVEBUS_NATS_URL || "nats://127.0.0.1:4222";
  const nc = await connect({ servers: servers.split(","), name: `hivebus-contract-js-${name}` });
  try {
    await scenario(new Bus(nc, process.env.HIVEBUS_PREFIX || ""));
    console.log(`ok: ${name}`);
    return 0;
  } catch (error) {
    const kind = error instanceof ContractError ? "contract broken" : "failed";
    console.error(`${kind}: ${name}: ${error.message}`);
    if (!(error instanceof ContractError)) console.error(error.stack);
    return 1;
  } finally {
    await nc.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
