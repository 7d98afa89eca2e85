import { afterEach, describe, expect, it, vi } from "vitest";
import { RunIndex } from "../../src/run/run-index";
import type { IndexEntry } from "../../src/run/run-index";
import { gates } from "../worker/liveness";
import { api, result, trigger } from "./helpers";

const original = RunIndex.prototype.upsert;
afterEach(() => {
  RunIndex.prototype.upsert = original;
});

/** Counts the index reports of one run, by status, as they reach its shard. */
function countReports(): Map<string, string[]> {
  const reports = new Map<string, string[]>();
  RunIndex.prototype.upsert = async function (this: RunIndex, entry: IndexEntry) {
    reports.set(entry.runId, [...(reports.get(entry.runId) ?? []), entry.status]);
    return original.call(this, entry);
  };
  return reports;
}

describe("listing runs", () => {
  it("filters by workflow, status, time range and metadata, newest first, with a cursor", async () => {
    const tag = `list-${crypto.randomUUID()}`;
    const since = new Date().toISOString();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await trigger("t-echo", { i }, { additionalMetadata: { tag, n: String(i) } }));
    const failed = await trigger("t-non-retryable", {}, { additionalMetadata: { tag } });
    await Promise.all([...ids, failed].map((id) => result(id)));
    // A run tells its waiters it ended before its index update is on the wire: wait for the index.
    await vi.waitUntil(async () => {
      const runs = (await api("GET", `/api/v1/runs?metadata=tag:${tag}&status=COMPLETED,FAILED`)).body.runs;
      return runs.length === 6;
    }, { timeout: 5_000 });

    const all = await api("GET", `/api/v1/runs?metadata=tag:${tag}`);
    expect(all.status).toBe(200);
    expect(all.body.runs.map((r: any) => r.runId)).toEqual([failed, ...ids.reverse()]);
    ids.reverse();

    const echoOnly = await api("GET", `/api/v1/runs?metadata=tag:${tag}&workflow=t-echo&status=COMPLETED`);
    expect(echoOnly.body.runs).toHaveLength(5);
    expect(echoOnly.body.runs.every((r: any) => r.workflow === "t-echo" && r.status === "COMPLETED")).toBe(true);

    const failures = await api("GET", `/api/v1/runs?metadata=tag:${tag}&status=FAILED,CANCELLED`);
    expect(failures.body.runs.map((r: any) => r.runId)).toEqual([failed]);

    const byTwoKeys = await api("GET", `/api/v1/runs?metadata=tag:${tag}&metadata=n:3`);
    expect(byTwoKeys.body.runs.map((r: any) => r.runId)).toEqual([ids[3]]);

    const future = await api("GET", `/api/v1/runs?metadata=tag:${tag}&since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
    expect(future.body.runs).toEqual([]);
    const window = await api("GET", `/api/v1/runs?metadata=tag:${tag}&since=${encodeURIComponent(since)}&until=${encodeURIComponent(new Date(Date.now() + 1000).toISOString())}`);
    expect(window.body.runs).toHaveLength(6);

    // Pages of two, following the cursor, give every run once, in order.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await api("GET", `/api/v1/runs?metadata=tag:${tag}&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.body.runs.length).toBeLessThanOrEqual(2);
      paged.push(...page.body.runs.map((r: any) => r.runId));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(paged).toEqual([failed, ...[...ids].reverse()]);
  });

  it("refuses a bad filter with the field named", async () => {
    const status = await api("GET", "/api/v1/runs?status=DONE");
    expect(status.status).toBe(400);
    expect(status.body.error.fields[0].path).toBe("query.status");
    const since = await api("GET", "/api/v1/runs?since=yesterday");
    expect(since.status).toBe(400);
    expect(since.body.error.fields[0].path).toBe("query.since");
    const limit = await api("GET", "/api/v1/runs?limit=0");
    expect(limit.status).toBe(400);
    expect(limit.body.error.fields[0].path).toBe("query.limit");
  });

  it("lists a running run as RUNNING, and the index hears of its start and its end once each (the start replaces the creation)", async () => {
    const reports = countReports();
    const tag = `held-${crypto.randomUUID()}`;
    const held = await trigger("t-gated", { tag, hold: true }, { additionalMetadata: { tag } });
    await vi.waitUntil(async () => (await api("GET", `/api/v1/runs?metadata=tag:${tag}&status=RUNNING`)).body.runs.length === 1, { timeout: 10_000, interval: 50 });
    gates.add(tag);
    const run = await result(held);
    await vi.waitUntil(async () => (await api("GET", `/api/v1/runs?metadata=tag:${tag}&status=COMPLETED`)).body.runs.length === 1, { timeout: 10_000 });
    const startedWithin = Date.parse(run.tasks[0]!.startedAt!) - Date.parse(run.createdAt);
    // A task that starts within a second of its run's creation replaces the creation's report with
    // its start's (the usual case; a loaded machine may take longer, and then all three are told).
    if (startedWithin < 900) expect(reports.get(held)).toEqual(["RUNNING", "COMPLETED"]);
    else expect([["QUEUED", "RUNNING", "COMPLETED"], ["RUNNING", "COMPLETED"]]).toContainEqual(reports.get(held));
  });

  it("tells the index of a run that ends within a second once, at its end", async () => {
    const reports = countReports();
    const tag = `quick-${crypto.randomUUID()}`;
    const quick = await trigger("t-echo", { tag }, { additionalMetadata: { tag } });
    const run = await result(quick);
    expect(run.status).toBe("COMPLETED");
    await vi.waitUntil(async () => (await api("GET", `/api/v1/runs?metadata=tag:${tag}&status=COMPLETED`)).body.runs.length === 1, { timeout: 10_000 });
    const endedWithin = Date.parse(run.finishedAt!) - Date.parse(run.createdAt);
    // The usual case; on a machine so loaded that the run took longer, what it was by then is told first.
    if (endedWithin < 900) expect(reports.get(quick)).toEqual(["COMPLETED"]);
    else expect(reports.get(quick)?.at(-1)).toBe("COMPLETED");
  });

  it("lists a run that waits in its queue as QUEUED: its creation is told when nothing replaces it", async () => {
    const reports = countReports();
    const tag = `waiting-${crypto.randomUUID()}`;
    // Its rate limit is never defined, so its task stays queued.
    const waiting = await trigger("f-rate-undefined", {}, { additionalMetadata: { tag } });
    await vi.waitUntil(async () => (await api("GET", `/api/v1/runs?metadata=tag:${tag}&status=QUEUED`)).body.runs.length === 1, { timeout: 10_000, interval: 50 });
    expect(reports.get(waiting)).toEqual(["QUEUED"]);
    expect((await api("POST", `/api/v1/runs/${waiting}/cancel`)).status).toBe(200);
    await vi.waitUntil(async () => (await api("GET", `/api/v1/runs?metadata=tag:${tag}&status=CANCELLED`)).body.runs.length === 1, { timeout: 10_000 });
    expect(reports.get(waiting)).toEqual(["QUEUED", "CANCELLED"]);
  });
});
