#!/usr/bin/env node
// `npm run bench`: Spindle vs. "the floor" (a bare Queue message -> Durable Object row) vs. a
// one-step Cloudflare Workflow, measured side by side in ONE local `wrangler dev` (one workerd).
// See bench/README.md for what is measured and how to read the output.
//
// Knobs (environment variables): BENCH_ROUNDS (10), BENCH_LATENCY_N (20 runs per system per round),
// BENCH_WARMUP_N (5), BENCH_THROUGHPUT_N (1000), BENCH_CONCURRENCY (= BENCH_THROUGHPUT_N: all in
// flight), BENCH_THROUGHPUT_ROUNDS (2), BENCH_PERSIST_DIR (parent of the fresh state dir; os.tmpdir()),
// BENCH_VERBOSE=1 (echo wrangler's output). Durable: BENCH_CHECKPOINTS (1000), BENCH_DURABLE_ROUNDS (3),
// BENCH_WAKE_N (20), BENCH_FANOUT_N (1000). Dashboard: BENCH_DASHBOARD_RUNS (10000), BENCH_DASHBOARD_SAMPLES (20).
// BENCH_LOCAL_OBSERVABILITY=true keeps wrangler dev's local trace collector on (off by default here).
import { spawn, execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(ROOT, "node_modules", ".bin");
const SYSTEMS = ["spindle", "floor", "workflows", "object"];
const LABEL = {
  spindle: "Spindle (`simple`)",
  floor: "Floor (Queue → DO row)",
  workflows: "Workflows (1 step)",
  object: "One new object per run (a fresh SQLite DO, one row)",
};

const num = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) fail(`${name} must be a positive integer, got '${raw}'`);
  return n;
};
const CONFIG = {
  rounds: num("BENCH_ROUNDS", 10),
  latencyN: num("BENCH_LATENCY_N", 20),
  warmupN: num("BENCH_WARMUP_N", 5),
  throughputN: num("BENCH_THROUGHPUT_N", 1000),
  throughputRounds: num("BENCH_THROUGHPUT_ROUNDS", 2),
};
CONFIG.concurrency = num("BENCH_CONCURRENCY", CONFIG.throughputN);
CONFIG.checkpoints = num("BENCH_CHECKPOINTS", 1000);
CONFIG.durableRounds = num("BENCH_DURABLE_ROUNDS", 3);
CONFIG.wakeN = num("BENCH_WAKE_N", 20);
CONFIG.fanoutN = num("BENCH_FANOUT_N", 1000);
CONFIG.flowN = num("BENCH_FLOW_N", 1000);
CONFIG.flowKeys = num("BENCH_FLOW_KEYS", 100);
CONFIG.dashboardRuns = num("BENCH_DASHBOARD_RUNS", 10_000);
CONFIG.dashboardSamples = num("BENCH_DASHBOARD_SAMPLES", 20);
const VERBOSE = process.env.BENCH_VERBOSE === "1";

const STARTUP_TIMEOUT_MS = 120_000;
/** Per HTTP call into the bench worker; a latency call is n sequential runs. */
const LATENCY_CALL_TIMEOUT_MS = 120_000;
const THROUGHPUT_CALL_TIMEOUT_MS = 300_000;
const DURABLE_CALL_TIMEOUT_MS = 600_000;
/** Making the dashboard's 10,000 runs, and letting them finish, may take this long. */
const DASHBOARD_SEED_TIMEOUT_MS = 1_800_000;
/** The goal: the runs page of 10,000 runs loads its first page in under 300 ms locally. */
const DASHBOARD_GOAL_MS = 300;
/** Lets one system's background work (slot releases, index updates) finish before the next starts. */
const SETTLE_MS = 1_000;

function fail(message) {
  console.error(`bench: ${message}`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// Secrets: the engine, the example worker and the bench worker share one SPINDLE_API_TOKEN
// ---------------------------------------------------------------------------------------------

function ensureSecrets() {
  for (const dir of [ROOT, join(ROOT, "worker-sdk", "examples")]) {
    const vars = join(dir, ".dev.vars");
    if (!existsSync(vars)) {
      copyFileSync(join(ROOT, ".dev.vars.example"), vars);
      console.log(`created ${vars.replace(ROOT + "/", "")} from .dev.vars.example`);
    }
  }
  const token = /^SPINDLE_API_TOKEN=(.*)$/m.exec(readFileSync(join(ROOT, ".dev.vars"), "utf8"))?.[1]?.trim();
  if (!token) fail("no SPINDLE_API_TOKEN in .dev.vars");
  const benchVars = join(ROOT, "bench", ".dev.vars");
  const wanted = `# Written by bench/run.mjs from ../.dev.vars (git-ignored).\nSPINDLE_API_TOKEN=${token}\n`;
  if (!existsSync(benchVars) || readFileSync(benchVars, "utf8") !== wanted) writeFileSync(benchVars, wanted);
  writeEngineConfig(token);
}

/**
 * The engine as `wrangler.toml` configures it, plus a binding to the bench worker's durable tasks
 * (WORKER_BENCH). Written to .bench/ (git-ignored) so the committed config stays deployable.
 */
function writeEngineConfig(token) {
  const dir = join(ROOT, ".bench");
  mkdirSync(dir, { recursive: true });
  const base = readFileSync(join(ROOT, "wrangler.toml"), "utf8").replace(/^main = "src\/index.ts"$/m, 'main = "../src/index.ts"');
  if (!base.includes('main = "../src/index.ts"')) fail("wrangler.toml: expected main = \"src/index.ts\"");
  writeFileSync(
    join(dir, "engine.wrangler.toml"),
    `# Written by bench/run.mjs: the engine's wrangler.toml plus the bench worker's binding.\n${base}\n[[services]]\nbinding = "WORKER_BENCH"\nservice = "spindle-bench"\nentrypoint = "BenchSpindleWorker"\n\n[[services]]\nbinding = "WORKER_BENCH_SHARDED"\nservice = "spindle-bench"\nentrypoint = "BenchShardedWorker"\n`,
  );
  writeFileSync(join(dir, ".dev.vars"), `SPINDLE_API_TOKEN=${token}\n`);
}

// ---------------------------------------------------------------------------------------------
// The dev server: engine + example worker + bench worker in one `wrangler dev`
// ---------------------------------------------------------------------------------------------

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const LOG_LIMIT = 400_000;

async function startServer() {
  const port = await freePort();
  const inspectorPort = await freePort();
  const parent = process.env.BENCH_PERSIST_DIR || tmpdir();
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, "spindle-bench-"));
  const state = join(dir, "state");
  let log = "";
  const args = [
    "dev",
    // The bench worker first: it is the one that answers on the port.
    "-c", "bench/wrangler.toml",
    "-c", ".bench/engine.wrangler.toml",
    "-c", "worker-sdk/examples/wrangler.toml",
    "--port", String(port),
    "--ip", "127.0.0.1",
    "--inspector-port", String(inspectorPort),
    "--persist-to", state,
    "--show-interactive-dev-session=false",
  ];
  const child = spawn(join(BIN, "wrangler"), args, {
    cwd: ROOT,
    env: {
      ...process.env,
      // The project's Node 22 (wrangler needs >= 22.12), whatever `node` started this script.
      PATH: `${BIN}:${process.env.PATH ?? ""}`,
      WRANGLER_SEND_METRICS: "false",
      // A private dev registry: other `wrangler dev` sessions on this machine (tests, `npm start`)
      // neither bind to these workers nor make this session reload mid-benchmark.
      WRANGLER_REGISTRY_PATH: join(dir, "registry"),
      // wrangler dev's local trace collector (on by default) writes every invocation of every worker
      // to a SQLite trace store, on the same workerd thread as the systems measured: a cost of the
      // local tool, paid per cross-worker call, that production does not put on a request's path.
      // Off for every system alike; BENCH_LOCAL_OBSERVABILITY=true measures with it.
      X_LOCAL_OBSERVABILITY: process.env.BENCH_LOCAL_OBSERVABILITY ?? "false",
      CI: "1",
      NO_COLOR: "1",
    },
    detached: true, // its own process group: stop() kills wrangler and both workerd processes
    stdio: ["ignore", "pipe", "pipe"],
  });
  // wrangler dev rebuilds and reloads when a source file changes (there is no flag to stop it
  // watching). A reload mid-bench mixes two builds and drops runs in flight, so it is counted, and
  // the bench refuses to report numbers taken across one.
  let reloads = 0;
  let carry = "";
  const onData = (d) => {
    const s = d.toString();
    if (VERBOSE) process.stderr.write(s);
    log += s;
    if (log.length > LOG_LIMIT) log = log.slice(-LOG_LIMIT / 2);
    const lines = (carry + s).split("\n");
    carry = lines.pop() ?? "";
    for (const line of lines) if (line.includes("Reloading local server")) reloads++;
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  let exited = false;
  child.on("exit", () => (exited = true));

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        /* gone */
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    // wrangler may exit before its workerd children do: make sure nothing of the group is left.
    for (let i = 0; i < 50 && groupAlive(child.pid); i++) {
      if (i === 20) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
      await sleep(100);
    }
    if (groupAlive(child.pid)) console.error(`bench: processes of group ${child.pid} are still running`);
    rmSync(dir, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`wrangler dev exited before it answered. Its output:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(2_000) });
      if (res.ok && (await res.json()).ok) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer within ${STARTUP_TIMEOUT_MS / 1000} s. Its output:\n${log}`);
    }
    await sleep(300);
  }
  return { url, port, state, stop, log: () => log, reloads: () => reloads };
}

function groupAlive(pgid) {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

async function call(server, path, timeoutMs) {
  const reloadsBefore = server.reloads();
  try {
    return await callOnce(server, path, timeoutMs);
  } catch (err) {
    if (server.reloads() > reloadsBefore) {
      throw new BenchError(`${err.message}\n(wrangler dev reloaded during this call: a source file changed. Re-run when the tree is quiet.)`);
    }
    throw err;
  }
}

async function callOnce(server, path, timeoutMs) {
  let res;
  try {
    res = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const why = err?.name === "TimeoutError" ? `timed out after ${timeoutMs / 1000} s` : String(err);
    throw new BenchError(`GET ${path}: ${why}`);
  }
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new BenchError(`GET ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 2000)}`);
  }
  if (!res.ok) throw new BenchError(`GET ${path}: HTTP ${res.status}: ${body.error ?? text.slice(0, 2000)}`);
  if (body.errors?.length) {
    const distinct = [...new Set(body.errors)];
    throw new BenchError(`GET ${path}: ${body.errors.length} of ${body.n} runs failed:\n  ${distinct.slice(0, 5).join("\n  ")}`);
  }
  return body;
}

class BenchError extends Error {}

function quantile(values, q) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const rotate = (list, k) => list.map((_, i) => list[(i + k) % list.length]);

async function bench(server) {
  const raw = { latency: [], throughput: [] };
  const t0 = Date.now();
  const phase = (name) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${name}`);

  phase(`warm-up: ${CONFIG.warmupN} runs each, then ${Math.min(100, CONFIG.throughputN)} concurrent each, then one sequential round (discarded)`);
  for (const system of SYSTEMS) {
    await call(server, `/latency?system=${system}&n=${CONFIG.warmupN}`, LATENCY_CALL_TIMEOUT_MS);
  }
  for (const system of SYSTEMS) {
    const n = Math.min(100, CONFIG.throughputN);
    await call(server, `/throughput?system=${system}&n=${n}&concurrency=${Math.min(n, CONFIG.concurrency)}`, THROUGHPUT_CALL_TIMEOUT_MS);
    await sleep(SETTLE_MS);
  }
  // One more sequential round, discarded: what the concurrent warm-up leaves behind (hundreds of
  // objects going idle, their last writes) otherwise falls on the first measured round (in one run
  // it doubled that round's median for the system that came first).
  for (const system of SYSTEMS) {
    await call(server, `/latency?system=${system}&n=${CONFIG.latencyN}`, LATENCY_CALL_TIMEOUT_MS);
  }

  // Every measured phase must run against one build.
  const reloadsAtStart = server.reloads();
  const checkNoReload = () => {
    if (server.reloads() > reloadsAtStart) {
      throw new BenchError(
        "wrangler dev reloaded during the measurements (a source file changed), so they mix two builds. Re-run when the tree is quiet.",
      );
    }
  };

  phase(`latency: ${CONFIG.rounds} rounds x ${CONFIG.latencyN} sequential runs per system, order rotating`);
  for (let round = 0; round < CONFIG.rounds; round++) {
    for (const system of rotate(SYSTEMS, round)) {
      const body = await call(server, `/latency?system=${system}&n=${CONFIG.latencyN}`, LATENCY_CALL_TIMEOUT_MS);
      raw.latency.push({ round, system, samples: body.samples });
      checkNoReload();
    }
  }

  // The durable measurements run before the throughput phase leaves thousands of objects behind.
  phase(`durable: ${CONFIG.checkpoints} memo checkpoints vs ${CONFIG.checkpoints} step.do, ${CONFIG.durableRounds} rounds each`);
  raw.durable = { memo: [], steps: [], replay: [], replayOne: [], wake: [], fanout: [] };
  const d = raw.durable;
  const k = CONFIG.checkpoints;
  for (let round = 0; round < CONFIG.durableRounds; round++) {
    const pair = [
      ["memo", `/durable/memo?system=spindle&n=${k}`],
      ["steps", `/durable/memo?system=workflows&n=${k}`],
    ];
    for (const [key, path] of round % 2 === 0 ? pair : [...pair].reverse()) {
      d[key].push((await call(server, path, DURABLE_CALL_TIMEOUT_MS)).ms);
      checkNoReload();
    }
  }
  phase(`durable: resume after eviction with ${k} checkpoints to replay (and with 1), ${CONFIG.durableRounds} rounds`);
  for (let round = 0; round < CONFIG.durableRounds; round++) {
    d.replay.push((await call(server, `/durable/replay?n=${k}`, DURABLE_CALL_TIMEOUT_MS)).ms);
    d.replayOne.push((await call(server, `/durable/replay?n=1`, DURABLE_CALL_TIMEOUT_MS)).ms);
    checkNoReload();
  }
  phase(`durable: event pushed → woken task's next checkpoint, ${CONFIG.wakeN} samples`);
  for (let i = 0; i < CONFIG.wakeN; i++) d.wake.push((await call(server, `/durable/wake`, DURABLE_CALL_TIMEOUT_MS)).ms);
  checkNoReload();
  phase(`durable: a ${CONFIG.fanoutN}-child fan-out, ${CONFIG.durableRounds} rounds`);
  for (let round = 0; round < CONFIG.durableRounds; round++) {
    d.fanout.push((await call(server, `/durable/fanout?n=${CONFIG.fanoutN}`, DURABLE_CALL_TIMEOUT_MS)).ms);
    checkNoReload();
    await sleep(SETTLE_MS);
  }
  for (let round = 0; round < CONFIG.throughputRounds; round++) {
    const order = round % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
    for (const system of order) {
      phase(`throughput round ${round + 1}/${CONFIG.throughputRounds}: ${system}, ${CONFIG.throughputN} runs, ${CONFIG.concurrency} in flight`);
      const body = await call(
        server,
        `/throughput?system=${system}&n=${CONFIG.throughputN}&concurrency=${CONFIG.concurrency}`,
        THROUGHPUT_CALL_TIMEOUT_MS,
      );
      raw.throughput.push({ round, system, elapsedMs: body.elapsedMs, samples: body.samples });
      checkNoReload();
      await sleep(SETTLE_MS);
    }
  }
  // Flow control's overhead: the same job with and without a round-robin key, rounds alternating.
  // And the task queue sharded: the same job without a key, on a pool of the same size served by 4 queues.
  raw.flow = { rr: [], plain: [], sharded: [] };
  for (let round = 0; round < CONFIG.throughputRounds; round++) {
    const order = round % 2 === 0 ? ["rr", "plain", "sharded"] : ["sharded", "plain", "rr"];
    for (const variant of order) {
      phase(`flow round ${round + 1}/${CONFIG.throughputRounds}: ${variant}, ${CONFIG.flowN} runs over ${CONFIG.flowKeys} keys`);
      const body = await call(server, `/flow?variant=${variant}&n=${CONFIG.flowN}&keys=${CONFIG.flowKeys}`, THROUGHPUT_CALL_TIMEOUT_MS);
      if (body.errors.length > 0) throw new BenchError(`flow ${variant}: ${body.errors.length} runs failed, first: ${body.errors[0]}`);
      raw.flow[variant].push(body.elapsedMs);
      checkNoReload();
      await sleep(SETTLE_MS);
    }
  }
  // Last: it tops the tenant up to 10,000 runs, which would weigh on every measurement after it.
  phase(`dashboard: the runs page with ${CONFIG.dashboardRuns} runs in the tenant (making them first), ${CONFIG.dashboardSamples} loads`);
  const seedDeadline = Date.now() + DASHBOARD_SEED_TIMEOUT_MS;
  for (let expect = 0; ; ) {
    const s = await call(server, `/dashboard/seed?runs=${CONFIG.dashboardRuns}&expect=${expect}`, THROUGHPUT_CALL_TIMEOUT_MS);
    if (s.triggered > 0) expect = s.total + s.triggered;
    else if (s.total >= CONFIG.dashboardRuns && s.going === 0) break;
    if (Date.now() > seedDeadline) throw new BenchError(`the tenant holds ${s.total} runs (${s.going} going) after ${DASHBOARD_SEED_TIMEOUT_MS / 60_000} min`);
    await sleep(s.triggered > 0 ? 0 : 2_000);
  }
  raw.dashboard = await call(server, `/dashboard/measure?samples=${CONFIG.dashboardSamples}`, LATENCY_CALL_TIMEOUT_MS);
  checkNoReload();
  phase("done");
  return raw;
}

function summarize(raw) {
  const out = {};
  for (const system of SYSTEMS) {
    const lat = raw.latency.filter((r) => r.system === system).flatMap((r) => r.samples);
    const ms = lat.map((s) => s.ms);
    const tp = raw.throughput.filter((r) => r.system === system);
    const rates = tp.map((r) => (CONFIG.throughputN / r.elapsedMs) * 1000);
    const loaded = tp.flatMap((r) => r.samples.map((s) => s.ms));
    const s = {
      samples: ms.length,
      latencyP50: quantile(ms, 0.5),
      latencyP95: quantile(ms, 0.95),
      latencyMin: Math.min(...ms),
      latencyMax: Math.max(...ms),
      triggerP50: quantile(lat.map((x) => x.triggerMs), 0.5),
      throughputRounds: rates,
      throughput: rates.reduce((a, b) => a + b, 0) / rates.length,
      throughputElapsedMs: tp.map((r) => r.elapsedMs),
      loadedLatencyP50: quantile(loaded, 0.5),
      loadedLatencyP95: quantile(loaded, 0.95),
    };
    if (lat[0]?.parts) {
      s.parts = {};
      for (const key of Object.keys(lat[0].parts)) {
        s.parts[key] = { p50: quantile(lat.map((x) => x.parts[key]), 0.5), p95: quantile(lat.map((x) => x.parts[key]), 0.95) };
      }
      s.loadedParts = {};
      const loadedSamples = tp.flatMap((r) => r.samples);
      for (const key of Object.keys(lat[0].parts)) {
        s.loadedParts[key] = { p50: quantile(loadedSamples.map((x) => x.parts[key]), 0.5) };
      }
    }
    out[system] = s;
  }
  if (raw.flow) {
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    out.flow = {
      rrMs: mean(raw.flow.rr),
      plainMs: mean(raw.flow.plain),
      shardedMs: mean(raw.flow.sharded),
      rrRounds: raw.flow.rr,
      plainRounds: raw.flow.plain,
      shardedRounds: raw.flow.sharded,
    };
  }
  const d = raw.durable;
  if (d) {
    const med = (xs) => quantile(xs, 0.5);
    const k = CONFIG.checkpoints;
    out.durable = {
      memoMs: med(d.memo),
      stepsMs: med(d.steps),
      perMemoMs: med(d.memo) / k,
      perStepMs: med(d.steps) / k,
      replayMs: med(d.replay),
      replayOneMs: med(d.replayOne),
      perReplayedCheckpointMs: (med(d.replay) - med(d.replayOne)) / (k - 1),
      wakeP50: quantile(d.wake, 0.5),
      wakeP95: quantile(d.wake, 0.95),
      fanoutMs: med(d.fanout),
    };
  }
  if (raw.dashboard) {
    const xs = raw.dashboard.samples;
    out.dashboard = { runs: raw.dashboard.runs, p50: quantile(xs, 0.5), p95: quantile(xs, 0.95), max: Math.max(...xs) };
  }
  return out;
}

const fmtMs = (v) => (Number.isFinite(v) ? String(Math.round(v)) : "–");
const fmtRate = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const fmtX = (v) => `${v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)}x`;

function report(summary, meta) {
  const lines = [];
  const nRuns = CONFIG.throughputN.toLocaleString("en-US");
  lines.push(
    `Local \`wrangler dev\` (one workerd), ${meta.wrangler}, workerd ${meta.workerd}, Node ${meta.node}, ${meta.cpus};` +
      ` local trace collector ${(process.env.BENCH_LOCAL_OBSERVABILITY ?? "false") === "false" ? "off" : "on"} (BENCH_LOCAL_OBSERVABILITY).`,
    `Latency: ${CONFIG.rounds} interleaved rounds x ${CONFIG.latencyN} sequential runs = ${summary.spindle.samples} samples per system.` +
      ` Throughput: ${nRuns} runs, ${CONFIG.concurrency === CONFIG.throughputN ? "all" : CONFIG.concurrency} in flight,` +
      ` ${CONFIG.throughputRounds} round${CONFIG.throughputRounds > 1 ? "s (mean; each round in brackets)" : ""}.`,
    "",
    `| System | Latency p50 (ms) | Latency p95 (ms) | Throughput (runs/s) | Latency p50 under load (ms) |`,
    `|---|---:|---:|---:|---:|`,
  );
  for (const system of SYSTEMS) {
    const s = summary[system];
    const rounds = s.throughputRounds.length > 1 ? ` (${s.throughputRounds.map(fmtRate).join(", ")})` : "";
    lines.push(
      `| ${LABEL[system]} | ${fmtMs(s.latencyP50)} | ${fmtMs(s.latencyP95)} | ${fmtRate(s.throughput)}${rounds} | ${fmtMs(s.loadedLatencyP50)} |`,
    );
  }
  const sp = summary.spindle;
  const fl = summary.floor;
  const wf = summary.workflows;
  const ob = summary.object;
  lines.push(
    "",
    "Spindle as a ratio (latency: higher is slower; throughput: higher is better):",
    `- latency p50: ${fmtX(sp.latencyP50 / fl.latencyP50)} floor, ${fmtX(sp.latencyP50 / wf.latencyP50)} Workflows`,
    `- latency p95: ${fmtX(sp.latencyP95 / fl.latencyP95)} floor, ${fmtX(sp.latencyP95 / wf.latencyP95)} Workflows`,
    `- throughput:  ${fmtX(sp.throughput / fl.throughput)} floor, ${fmtX(sp.throughput / wf.throughput)} Workflows`,
    "",
    "The bound of one Durable Object per run (Spindle's design): merely creating a fresh object and committing one row in it" +
      ` gives ${fmtX(ob.throughput / wf.throughput)} a Workflow's throughput and ${fmtX(ob.latencyP50 / wf.latencyP50)} its latency p50;` +
      ` Spindle reaches ${fmtX(sp.throughput / ob.throughput)} of that throughput and takes ${fmtX(sp.latencyP50 / ob.latencyP50)} that latency.`,
  );
  if (sp.parts) {
    const p = sp.parts;
    const lp = sp.loadedParts;
    lines.push(
      "",
      "Where a Spindle run's time goes (p50 ms, from the run's own timestamps; idle | under load):",
      `- trigger → task queued (auth, resolve, create the run object): ${fmtMs(p.toQueued.p50)} | ${fmtMs(lp.toQueued.p50)}`,
      `- queued → started (outbox → task queue → the run, in the enqueue's answer or handed over → start): ${fmtMs(p.queuedToStarted.p50)} | ${fmtMs(lp.queuedToStarted.p50)}`,
      `- started → run finished (execute on the example worker from the run's object, completeTask): ${fmtMs(p.startedToFinished.p50)} | ${fmtMs(lp.startedToFinished.p50)}`,
      `- finished → waitForRun returned: ${fmtMs(p.finishedToObserved.p50)} | ${fmtMs(lp.finishedToObserved.p50)}`,
    );
  }
  const du = summary.durable;
  if (du) {
    const k = CONFIG.checkpoints.toLocaleString("en-US");
    const f = CONFIG.fanoutN.toLocaleString("en-US");
    const floor1000 = summary.floor.throughputElapsedMs.reduce((a, b) => a + b, 0) / summary.floor.throughputElapsedMs.length;
    const wf1000 = summary.workflows.throughputElapsedMs.reduce((a, b) => a + b, 0) / summary.workflows.throughputElapsedMs.length;
    lines.push(
      "",
      `Durable tasks (medians of ${CONFIG.durableRounds} rounds; the event delay over ${CONFIG.wakeN} samples):`,
      "",
      "| Measure | Spindle | Reference | Ratio |",
      "|---|---:|---:|---:|",
      `| one checkpoint: ${k} sequential \`memo\` vs ${k} \`step.do\` (ms each) | ${du.perMemoMs.toFixed(2)} | ${du.perStepMs.toFixed(2)} (Workflows) | ${fmtX(du.perMemoMs / du.perStepMs)} |`,
      `| resume after eviction, replaying ${k} checkpoints (ms) | ${fmtMs(du.replayMs)} | ${fmtMs(du.replayOneMs)} (replaying 1) | ${fmtX(du.replayMs / du.replayOneMs)} |`,
      `| event pushed → woken task's next checkpoint, p50 / p95 (ms) | ${fmtMs(du.wakeP50)} / ${fmtMs(du.wakeP95)} | ${fmtMs(summary.floor.latencyP50)} (floor latency) | ${fmtX(du.wakeP50 / summary.floor.latencyP50)} |`,
      `| ${f}-child fan-out, wall time (ms) | ${fmtMs(du.fanoutMs)} | ${fmtMs(floor1000)} (floor: ${nRuns} runs) / ${fmtMs(wf1000)} (Workflows: ${nRuns} instances) | ${fmtX(du.fanoutMs / floor1000)} / ${fmtX(du.fanoutMs / wf1000)} |`,
      "",
      `Replaying costs ${du.perReplayedCheckpointMs.toFixed(3)} ms per recorded checkpoint.`,
    );
  }
  const fw = summary.flow;
  if (fw) {
    const n = CONFIG.flowN.toLocaleString("en-US");
    const rate = (ms) => fmtRate((CONFIG.flowN / ms) * 1000);
    lines.push(
      "",
      `Flow control (${n} one-task runs triggered at once over ${CONFIG.flowKeys} keys; mean of ${fw.rrRounds.length} rounds, each in brackets):`,
      "",
      "| Runs | Wall time (ms) | Throughput (runs/s) |",
      "|---|---:|---:|",
      `| with a round-robin key (maxRuns 5) | ${fmtMs(fw.rrMs)} (${fw.rrRounds.map(fmtMs).join(", ")}) | ${rate(fw.rrMs)} |`,
      `| the same, no concurrency | ${fmtMs(fw.plainMs)} (${fw.plainRounds.map(fmtMs).join(", ")}) | ${rate(fw.plainMs)} |`,
      `| the same, no concurrency, task queue sharded (4 queues x 25 slots) | ${fmtMs(fw.shardedMs)} (${fw.shardedRounds.map(fmtMs).join(", ")}) | ${rate(fw.shardedMs)} |`,
      "",
      `Concurrency overhead: ${fmtX(fw.rrMs / fw.plainMs)} the wall time (target: under 1.5x). Sharded over unsharded throughput: ${fmtX(fw.plainMs / fw.shardedMs)}.`,
    );
  }
  const da = summary.dashboard;
  if (da) {
    lines.push(
      "",
      `Dashboard: the runs page (first page of 50, counts per status) with ${da.runs.toLocaleString("en-US")} runs in the tenant, ${CONFIG.dashboardSamples} loads:` +
        ` p50 ${fmtMs(da.p50)} ms, p95 ${fmtMs(da.p95)} ms, max ${fmtMs(da.max)} ms (goal: under ${DASHBOARD_GOAL_MS} ms: ${da.p95 < DASHBOARD_GOAL_MS ? "met" : "NOT met"} at p95).`,
    );
  }
  return lines.join("\n");
}

function versions() {
  const read = (p) => {
    try {
      return JSON.parse(readFileSync(join(ROOT, p), "utf8")).version;
    } catch {
      return "?";
    }
  };
  const wranglerWorkerd = existsSync(join(ROOT, "node_modules/wrangler/node_modules/workerd/package.json"))
    ? "node_modules/wrangler/node_modules/workerd/package.json"
    : "node_modules/workerd/package.json";
  let node = "?";
  try {
    node = execFileSync(join(BIN, "node"), ["--version"], { encoding: "utf8" }).trim().replace(/^v/, "");
  } catch {
    node = process.versions.node;
  }
  const cpu = cpus();
  return {
    wrangler: `wrangler ${read("node_modules/wrangler/package.json")}`,
    workerd: read(wranglerWorkerd),
    node,
    cpus: `${cpu.length} x ${cpu[0]?.model?.trim() ?? "?"}`,
  };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  ensureSecrets();
  const meta = versions();
  console.log(`bench: starting wrangler dev (engine + example worker + bench worker) ...`);
  let server;
  try {
    server = await startServer();
  } catch (err) {
    fail(err.message);
  }
  const cleanup = async (code) => {
    await server.stop();
    process.exit(code);
  };
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => void cleanup(130));
  console.log(`bench: up on ${server.url} after ${((Date.now() - started) / 1000).toFixed(1)} s`);

  let raw;
  try {
    raw = await bench(server);
  } catch (err) {
    console.error(`bench: ${err.message}`);
    if (!(err instanceof BenchError)) console.error(err.stack);
    // The per-request and per-batch info lines say nothing about a failure, and one error repeated
    // a thousand times is one error: show the rest, each distinct line once.
    const seen = new Set();
    const tail = server
      .log()
      .split("\n")
      .filter((l) => !/^\[wrangler:info\] (QUEUE|GET|POST) /.test(l))
      .reverse()
      .filter((l) => l.trim() === "" || (!seen.has(l) && seen.add(l)))
      .reverse()
      .slice(-80)
      .join("\n");
    console.error(`\n--- last lines of wrangler's output ---\n${tail}`);
    await cleanup(1);
    return;
  }
  await server.stop();

  const summary = summarize(raw);
  const text = report(summary, meta);
  const totalS = (Date.now() - started) / 1000;
  console.log(`\n${text}\n\nbench: took ${totalS.toFixed(0)} s in all; raw results in .bench/results.json`);
  mkdirSync(join(ROOT, ".bench"), { recursive: true });
  writeFileSync(
    join(ROOT, ".bench", "results.json"),
    JSON.stringify({ at: new Date(started).toISOString(), tookSeconds: totalS, config: CONFIG, meta, summary, report: text, raw }, null, 1),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
