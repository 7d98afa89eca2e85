#!/usr/bin/env node
// `npm run soak`: runs of the examples against a `wrangler dev` stack of its own, with the engine
// killed (SIGKILL, the whole process group) and restarted on the same state K times while runs are
// in flight. Then every run is checked as a user would: it exists (else lost), it ended (else
// stuck), it completed with the right output (else failed), and each of its effects happened once:
// fan-out children, memos, runs in the run index (else duplicated). Exits 1 if any run was lost,
// duplicated, stuck or failed. Only talks to 127.0.0.1. See README.md, "Soak".
//
//   npm run soak -- --runs 200 --kills 3 --seed 42
//
// Needs Node 22.18+ (the project's pinned Node): it imports the e2e harness's TypeScript directly.
import { parseArgs } from "node:util";
import { getRun, pool, sleep, surplusRuns, verify, waitEnded } from "../test/e2e/chaos.ts";
import { client, startDevServer } from "../test/e2e/dev-server.ts";

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: "200" },
    kills: { type: "string", default: "3" },
    seed: { type: "string" },
    // How long to wait, after the last restart, for every run to end before calling it stuck.
    "stuck-after": { type: "string", default: "180" },
    // How long to leave the runs alone after the last restart before looking at them: looking at a
    // run wakes its object, and a user does not watch every run.
    quiet: { type: "string", default: "60" },
  },
});
const positive = (name, raw, min) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > 10_000) {
    console.error(`soak: --${name} must be an integer from ${min} to 10000, got '${raw}'`);
    process.exit(2);
  }
  return n;
};
const RUNS = positive("runs", flags.runs, 1);
const KILLS = positive("kills", flags.kills, 0);
const STUCK_AFTER_MS = positive("stuck-after", flags["stuck-after"], 10) * 1000;
const QUIET_MS = positive("quiet", flags.quiet, 0) * 1000;
const SEED = flags.seed === undefined ? Date.now() % 2 ** 31 : positive("seed", flags.seed, 0);
const FANOUT_CHILDREN = 20;

// mulberry32: a seeded PRNG, so a run of the soak can be repeated.
let state = SEED;
const random = () => {
  state = (state + 0x6d2b79f5) | 0;
  let t = Math.imul(state ^ (state >>> 15), 1 | state);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

/** The mix, by weight: what each kind of run is asked to do. */
const MIX = [
  { weight: 6, workflow: "simple", input: (i) => ({ Message: `Soak Run ${i}` }) },
  { weight: 3, workflow: "dag", input: (i) => ({ Message: `Soak DAG ${i}` }) },
  { weight: 3, workflow: "slow-task", input: () => ({ ms: between(2_000, 8_000) }) },
  { weight: 3, workflow: "durable-checkout", input: (i) => ({ orderId: `soak-${i}`, sleepMs: between(2_000, 10_000) }) },
  { weight: 2, workflow: "durable-fanout", input: () => ({ N: FANOUT_CHILDREN, childMs: 500 }) },
  { weight: 3, workflow: "durable-event", input: (i) => ({ userId: `soak-user-${SEED}-${i}` }) },
];
const pick = () => {
  let r = random() * MIX.reduce((s, m) => s + m.weight, 0);
  for (const m of MIX) if ((r -= m.weight) < 0) return m;
  return MIX[0];
};

const log = (line) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`);

let server = await startDevServer();
const api = client(server);
const submitted = [];
const kills = [];
let exitCode = 1;
try {
  log(`stack up on ${server.url} (state in ${server.dir}); ${RUNS} runs, ${KILLS} kills, seed ${SEED}`);
  if ((await api.result(await api.trigger("simple", { Message: "warm-up" }))).status !== "COMPLETED") throw new Error("the warm-up run failed");

  // Pushes each durable-event run's event once the run waits for it, retrying across restarts.
  const toPush = [];
  let pushing = true;
  const pusher = (async () => {
    while (pushing || toPush.length) {
      for (const s of [...toPush]) {
        try {
          const run = (await getRun(api, s.runId)).body;
          if (!run?.tasks?.[0]?.waitingFor?.length) continue;
          const res = await api.call("POST", "/api/v1/events", { key: "user:update", payload: s.payload });
          if (res.status === 200 || res.status === 202) toPush.splice(toPush.indexOf(s), 1);
        } catch {
          /* the stack is down: next round */
        }
      }
      await sleep(500);
    }
  })();

  const batches = KILLS + 1;
  let numbered = 0;
  for (let batch = 0; batch < batches; batch++) {
    const count = Math.floor(RUNS / batches) + (batch < RUNS % batches ? 1 : 0);
    const specs = Array.from({ length: count }, () => ({ kind: pick(), i: numbered++ }));
    await pool(specs, 8, async ({ kind, i }) => {
      const input = kind.input(i);
      const res = await api.call("POST", `/api/v1/workflows/${kind.workflow}/runs`, { input });
      if (res.status !== 202) throw new Error(`trigger ${kind.workflow}: ${res.status} ${JSON.stringify(res.body)}`);
      const s = { runId: res.body.runId, workflow: kind.workflow, input, triggeredAt: Date.now() };
      if (kind.workflow === "durable-event") {
        s.payload = { userId: input.userId, name: `Soak ${i}` };
        toPush.push(s);
      }
      submitted.push(s);
    });
    log(`batch ${batch + 1}/${batches}: ${count} runs triggered (${submitted.length} in all)`);
    if (batch === batches - 1) break;

    await sleep(between(2_000, 6_000)); // runs in flight: slow tasks mid-run, sleeps pending, children running
    const killedAt = Date.now();
    await server.kill();
    server = await startDevServer({ dir: server.dir, port: server.port });
    const upAt = Date.now();
    kills.push({ killedAt, upAt });
    log(`kill ${kills.length}/${KILLS}: engine SIGKILLed and restarted on its state; answering again after ${((upAt - killedAt) / 1000).toFixed(1)} s`);
  }
  pushing = false;

  const lastUp = kills.at(-1)?.upAt ?? Date.now();
  await Promise.race([pusher, sleep(30_000)]);
  log(`leaving the runs alone for ${QUIET_MS / 1000} s, then waiting for every run to end (stuck after ${STUCK_AFTER_MS / 1000} s)`);
  await sleep(Math.max(0, lastUp + QUIET_MS - Date.now()));
  let reported = 0;
  const views = await waitEnded(api, submitted.map((s) => s.runId), lastUp + STUCK_AFTER_MS, (going) => {
    if (Date.now() - reported < 10_000) return;
    reported = Date.now();
    log(`${going} runs still going`);
  });
  const verdicts = await pool(submitted, 4, async (s) => ({ ...s, ...(await verify(api, s, views.get(s.runId))) }));

  const expected = new Map();
  for (const s of submitted) {
    expected.set(s.workflow, (expected.get(s.workflow) ?? 0) + 1);
    if (s.workflow === "durable-fanout") expected.set("fanout-child", (expected.get("fanout-child") ?? 0) + s.input.N);
  }
  expected.set("simple", (expected.get("simple") ?? 0) + 1); // the warm-up
  const surplus = await surplusRuns(api, expected);

  const lost = verdicts.filter((v) => v.lost);
  const stuck = verdicts.filter((v) => v.stuck);
  const duplicated = verdicts.filter((v) => v.duplicated.length);
  const failed = verdicts.filter((v) => !v.lost && !v.stuck && (v.status !== "COMPLETED" || v.wrong.length));
  const completed = verdicts.filter((v) => v.status === "COMPLETED" && !v.wrong.length && !v.duplicated.length);
  const surplusCount = [...surplus.values()].reduce((a, b) => a + b, 0);

  // Recovery after a restart: until every run that was in flight at the kill had ended.
  const recoveries = kills.map(({ killedAt, upAt }) => {
    const inFlight = verdicts.filter((v) => v.triggeredAt < killedAt && (v.finishedAt === null || v.finishedAt > killedAt));
    if (inFlight.some((v) => v.finishedAt === null)) return { inFlight: inFlight.length, downMs: upAt - killedAt, recoveredMs: null };
    return { inFlight: inFlight.length, downMs: upAt - killedAt, recoveredMs: Math.max(upAt, ...inFlight.map((v) => v.finishedAt)) - upAt };
  });

  const byWorkflow = {};
  for (const v of verdicts) {
    byWorkflow[v.workflow] ??= { triggered: 0, completed: 0 };
    byWorkflow[v.workflow].triggered++;
    if (completed.includes(v)) byWorkflow[v.workflow].completed++;
  }
  console.log("");
  console.log(`| triggered | completed | failed | lost | duplicated | stuck |`);
  console.log(`|---:|---:|---:|---:|---:|---:|`);
  console.log(`| ${submitted.length} | ${completed.length} | ${failed.length} | ${lost.length} | ${duplicated.length + surplusCount} | ${stuck.length} |`);
  console.log("");
  console.log(`by workflow: ${Object.entries(byWorkflow).map(([w, c]) => `${w} ${c.completed}/${c.triggered}`).join(", ")}; plus ${expected.get("fanout-child") ?? 0} fan-out children`);
  recoveries.forEach((r, i) =>
    console.log(
      `restart ${i + 1}: down ${(r.downMs / 1000).toFixed(1)} s; ${r.inFlight} runs in flight at the kill ${r.recoveredMs === null ? "did NOT all end" : `all ended ${(r.recoveredMs / 1000).toFixed(1)} s after the engine answered again`}`,
    ),
  );
  if (surplus.size) console.log(`runs listed beyond those triggered: ${JSON.stringify(Object.fromEntries(surplus))}`);
  const problems = [...lost, ...stuck, ...failed, ...duplicated];
  for (const v of problems.slice(0, 20)) {
    const run = views.get(v.runId);
    const tasks = run?.tasks?.map((t) => ({ name: t.name, status: t.status, evicted: t.evicted, attempts: t.attempts?.map((a) => a.status), waitingFor: t.waitingFor })) ?? null;
    console.log(`  ${v.workflow} ${v.runId}: ${v.lost ? "LOST" : v.status} ${[...v.duplicated, ...v.wrong].join("; ")} tasks=${JSON.stringify(tasks)}`);
  }
  if (problems.length > 20) console.log(`  ... and ${problems.length - 20} more`);
  console.log(`SOAK_RESULT ${JSON.stringify({ seed: SEED, runs: RUNS, kills: KILLS, triggered: submitted.length, completed: completed.length, failed: failed.length, lost: lost.length, duplicated: duplicated.length + surplusCount, stuck: stuck.length, recoveries })}`);
  exitCode = problems.length || surplusCount ? 1 : 0;
} catch (err) {
  console.error(`soak: ${err?.stack ?? err}\n--- the stack's last output ---\n${server.output().slice(-5_000)}`);
} finally {
  await server.stop();
}
process.exit(exitCode);
