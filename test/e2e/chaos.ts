// What a user checks after the engine was killed: every run accepted is there (none lost), has ended
// (none stuck), completed, and did each of its effects once (none duplicated). Shared by the e2e
// crash test and `npm run soak`, which runs this file under Node's type stripping: type-only imports
// and annotations, nothing else TypeScript-specific.
import type { client } from "./dev-server";

export type Api = ReturnType<typeof client>;

/** A run the harness triggered, and what it must have produced. */
export interface Submitted {
  runId: string;
  workflow: string;
  input: any;
  /** The event payload pushed for a `durable-event` run, which becomes its output. */
  payload?: unknown;
}

export interface Verdict {
  /** The run does not exist (a 404 after it was accepted). */
  lost: boolean;
  /** Still QUEUED or RUNNING. */
  stuck: boolean;
  status: string;
  /** An effect that happened more than once: a child run, a memo, a run of the workflow. */
  duplicated: string[];
  /** Anything else wrong with a run that ended: a wrong output, a child in the wrong state. */
  wrong: string[];
  finishedAt: number | null;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** GET with a few retries on a network error (the stack may be busy restarting a worker). */
export async function getRun(api: Api, runId: string): Promise<{ status: number; body: any }> {
  for (let tries = 0; ; tries++) {
    try {
      return await api.call("GET", `/api/v1/runs/${runId}`);
    } catch (err) {
      if (tries >= 5) throw err;
      await sleep(500);
    }
  }
}

/** Every run of a workflow the run index lists. */
export async function listRuns(api: Api, workflow: string): Promise<any[]> {
  const runs: any[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `workflow=${encodeURIComponent(workflow)}&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const res = await api.call("GET", `/api/v1/runs?${query}`);
    if (res.status !== 200) throw new Error(`list ${workflow}: ${res.status} ${JSON.stringify(res.body)}`);
    runs.push(...res.body.runs);
    cursor = res.body.nextCursor;
  } while (cursor);
  return runs;
}

const ENDED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

/**
 * Polls until every run has ended or `deadline` (epoch ms) passes; returns each run's last view
 * (null for a 404). Polls only the runs still going, so it stays cheap with thousands of runs.
 */
export async function waitEnded(api: Api, runIds: string[], deadline: number, progress?: (going: number) => void): Promise<Map<string, any>> {
  const views = new Map<string, any>();
  let going = [...runIds];
  for (;;) {
    progress?.(going.length);
    await pool(going, 16, async (runId) => {
      const res = await getRun(api, runId);
      views.set(runId, res.status === 404 ? null : res.body);
    });
    going = going.filter((id) => {
      const view = views.get(id);
      return view && !ENDED.has(view.status);
    });
    if (going.length === 0 || Date.now() > deadline) return views;
    await sleep(1_000);
  }
}

/** A task as the run's detail shows it, cut to what tells why it did not complete. */
const taskSummary = (t: any) => ({
  name: t.name,
  status: t.status,
  attempt: t.attempt,
  evicted: t.evicted,
  queuedAt: t.queuedAt,
  startedAt: t.startedAt,
  finishedAt: t.finishedAt,
  error: t.error?.message,
  attempts: t.attempts?.map((a: any) => `${a.attempt}:${a.status} ${a.startedAt}..${a.finishedAt}`),
  lostDispatches: t.lostDispatches,
  waitingFor: t.waitingFor,
});

/** Each memo in a durable task's event log. */
const memos = (run: any) => (run.tasks[0]?.eventLog ?? []).filter((c: any) => c.kind === "memo");

/** Checks one run against what it was asked to do. Fan-out parents also get their children fetched. */
export async function verify(api: Api, submitted: Submitted, run: any): Promise<Verdict> {
  const verdict: Verdict = { lost: run === null, stuck: false, status: run?.status ?? "LOST", duplicated: [], wrong: [], finishedAt: null };
  if (run === null) return verdict;
  verdict.stuck = !ENDED.has(run.status);
  verdict.finishedAt = run.finishedAt ? Date.parse(run.finishedAt) : null;
  if (run.status !== "COMPLETED") {
    if (!verdict.stuck) verdict.wrong.push(`${run.status}: ${run.error?.message}`);
    verdict.wrong.push(`tasks: ${JSON.stringify(run.tasks.map(taskSummary))}`);
    // Why a fan-out did not complete is usually one of its children: show those that did not.
    for (const childId of (run.children ?? []) as string[]) {
      const child = (await getRun(api, childId)).body;
      if (child?.status !== "COMPLETED") verdict.wrong.push(`child ${childId} ${child?.status}: ${JSON.stringify(child?.tasks?.map(taskSummary))}`);
    }
    return verdict;
  }
  const { input } = submitted;
  const expectOutput = (expected: unknown) => {
    if (JSON.stringify(run.output) !== JSON.stringify(expected)) verdict.wrong.push(`output ${JSON.stringify(run.output)}, expected ${JSON.stringify(expected)}`);
  };
  switch (submitted.workflow) {
    case "simple":
      expectOutput({ TransformedMessage: input.Message.toLowerCase() });
      break;
    case "dag":
      expectOutput({
        "to-lower": { TransformedMessage: input.Message.toLowerCase() },
        reverse: { Original: input.Message, Transformed: [...input.Message.toLowerCase()].reverse().join("") },
      });
      break;
    case "slow-task":
      expectOutput({ workedMs: input.ms });
      break;
    case "durable-event":
      expectOutput(submitted.payload);
      break;
    case "durable-checkout": {
      // Two memos, each recorded once; the output carries the ids they recorded, so a memo body
      // that ran again after its result was recorded (and had its new result used) shows here.
      const recorded = memos(run);
      if (recorded.length !== 2) verdict.duplicated.push(`${recorded.length} memos recorded, expected 2: ${JSON.stringify(recorded)}`);
      const charge = recorded[0]?.result?.value;
      const receipt = recorded[1]?.result?.value;
      expectOutput({ chargeId: charge?.chargeId, orderId: input.orderId, receiptId: receipt?.receiptId });
      if (receipt?.chargeId !== charge?.chargeId) verdict.duplicated.push(`the receipt names charge ${receipt?.chargeId}, the recorded charge is ${charge?.chargeId}`);
      break;
    }
    case "durable-fanout": {
      const n: number = input.N;
      expectOutput({ sum: (n * (n - 1)) / 2 });
      const children: string[] = run.children;
      if (children.length !== n || new Set(children).size !== children.length) verdict.duplicated.push(`${children.length} children (${new Set(children).size} distinct), expected ${n}`);
      const indices = new Map<number, number>();
      await pool(children, 8, async (childId) => {
        const res = await getRun(api, childId);
        if (res.status !== 200) return void verdict.wrong.push(`child ${childId}: ${res.status}`);
        const child = res.body;
        if (child.parent?.runId !== run.runId) verdict.wrong.push(`child ${childId} names parent ${child.parent?.runId}`);
        if (child.status !== "COMPLETED") verdict.wrong.push(`child ${childId} ${child.status}`);
        indices.set(child.input.index, (indices.get(child.input.index) ?? 0) + 1);
      });
      const twice = [...indices].filter(([, count]) => count > 1).map(([index]) => index);
      if (twice.length) verdict.duplicated.push(`child indices spawned more than once: ${twice.join(", ")}`);
      const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !indices.has(i));
      if (missing.length) verdict.wrong.push(`child indices never spawned: ${missing.join(", ")}`);
      break;
    }
    default:
      throw new Error(`no check for workflow ${submitted.workflow}`);
  }
  return verdict;
}

/**
 * Runs the run index lists beyond those the harness triggered (fan-out children: beyond N per
 * parent): a run created twice. Per workflow, `expected` runs; returns the surplus of each.
 */
export async function surplusRuns(api: Api, expected: Map<string, number>): Promise<Map<string, number>> {
  const surplus = new Map<string, number>();
  for (const [workflow, count] of expected) {
    const listed = (await listRuns(api, workflow)).length;
    if (listed > count) surplus.set(workflow, listed - count);
  }
  return surplus;
}
