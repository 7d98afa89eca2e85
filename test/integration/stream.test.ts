import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { api, getRun, OTHER_TOKEN, result, task, TOKEN, trigger } from "./helpers";
import { durableStreamer, openGate, streamer } from "../worker/streams";

interface Sse {
  id: string | null;
  event: string;
  data: string;
}

/** Opens the stream route as any HTTP client would. */
async function open(runId: string, options: { lastEventId?: string; query?: string; token?: string } = {}): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${options.token ?? TOKEN}` };
  if (options.lastEventId !== undefined) headers["last-event-id"] = options.lastEventId;
  return exports.default.fetch(`http://spindle.test/api/v1/runs/${runId}/stream${options.query ?? ""}`, { headers });
}

/** Reads events until `enough` says so or the stream ends; then drops the connection. */
async function read(res: Response, enough: (events: Sse[]) => boolean = () => false): Promise<Sse[]> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: Sse[] = [];
  let buffer = "";
  try {
    while (!enough(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const e: Sse = { id: null, event: "message", data: "" };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          const [field, ...rest] = line.split(": ");
          if (field === "id") e.id = rest.join(": ");
          if (field === "event") e.event = rest.join(": ");
          if (field === "data") data.push(rest.join(": "));
        }
        e.data = data.join("\n");
        events.push(e);
        if (enough(events)) break;
      }
    }
  } finally {
    await reader.cancel();
  }
  return events;
}

const chunks = (events: Sse[]) => events.filter((e) => e.event === "message").map((e) => [Number(e.id), e.data] as const);

describe("a run's stream", () => {
  it("sends each chunk with its offset, then an end event once the run has ended", async () => {
    const runId = await trigger("t-stream", { n: 3 });
    const events = await read(await open(runId));
    expect(chunks(events)).toEqual([
      [0, "chunk 0"],
      [1, "chunk 1"],
      [2, "chunk 2"],
    ]);
    expect(events.at(-1)).toMatchObject({ event: "end" });
    expect(JSON.parse(events.at(-1)!.data)).toEqual({ status: "COMPLETED", length: 3 });
  });

  it("resumes after a disconnect from Last-Event-ID, losing and repeating nothing", async () => {
    const runId = await trigger("t-stream", { n: 10, pauseAt: 5 });
    // Connected while the task runs: it has put chunks 0-4 and waits.
    const first = await read(await open(runId), (e) => e.length === 5);
    expect(chunks(first).map(([offset]) => offset)).toEqual([0, 1, 2, 3, 4]);
    expect((await getRun(runId)).status).toBe("RUNNING");
    // The reader processed up to offset 2 before its connection dropped; the task goes on meanwhile.
    openGate(`stream:${runId}`);
    await result(runId);
    const resumed = await read(await open(runId, { lastEventId: "2" }));
    expect(chunks(resumed)).toEqual([3, 4, 5, 6, 7, 8, 9].map((i) => [i, `chunk ${i}`]));
    expect(resumed.at(-1)?.event).toBe("end");
  });

  it("resumes from ?offset= while the run is still streaming, and follows it live", async () => {
    const runId = await trigger("t-stream", { n: 6, pauseAt: 3 });
    await vi.waitUntil(async () => chunks(await read(await open(runId), (e) => e.length === 3)).length === 3, { timeout: 10_000 });
    const res = await open(runId, { query: "?offset=2" });
    const reading = read(res);
    openGate(`stream:${runId}`);
    const events = await reading;
    expect(chunks(events)).toEqual([2, 3, 4, 5].map((i) => [i, `chunk ${i}`]));
    expect(events.at(-1)?.event).toBe("end");
  });

  it("keeps a multi-line chunk whole, and records chunks the task did not await before the run ends", async () => {
    const run = await result(await trigger("t-stream-unawaited", null));
    expect(run.status).toBe("COMPLETED");
    const events = await read(await open(run.runId));
    expect(chunks(events).map(([, data]) => data)).toEqual(["line one\nline two", "x".repeat(60_000)]);
  });

  it("records a durable task's chunks once, though it replays them after its sleep", async () => {
    const ref = await durableStreamer.runNoWait({});
    await ref.result();
    const events = await read(await open(ref.runId));
    expect(chunks(events)).toEqual([
      [0, "before the sleep"],
      [1, "after the sleep"],
    ]);
    const run = await getRun(ref.runId);
    expect(task(run, "t-stream-durable").invocations).toBeGreaterThan(1);
    expect(task(run, "t-stream-durable").logs.map((l) => l.message)).toEqual(["before the sleep", "before the sleep", "after the sleep"]);
  });

  it("is read chunk by chunk with runRef.stream(), as the chunks come", async () => {
    const ref = await streamer.runNoWait({ n: 4, pauseAt: 2 });
    const seen: string[] = [];
    for await (const chunk of ref.stream()) {
      seen.push(chunk);
      if (seen.length === 2) openGate(`stream:${ref.runId}`);
    }
    expect(seen).toEqual(["chunk 0", "chunk 1", "chunk 2", "chunk 3"]);
  });

  it("refuses a bad Last-Event-ID and another tenant's run", async () => {
    const runId = await trigger("t-stream", { n: 1 });
    await result(runId);
    const bad = await open(runId, { lastEventId: "abc" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.fields).toEqual([{ path: "header.Last-Event-ID", message: "must be the offset of a chunk" }]);
    expect((await open(runId, { query: "?offset=-1" })).status).toBe(400);
    expect(chunks(await read(await open(runId))).length).toBe(1);
    const other = await open(runId, { token: OTHER_TOKEN });
    expect(other.status).toBe(404);
  });
});

describe("live logs", () => {
  it("shows a task's log lines while it runs, each once after its outcome brings them again", async () => {
    const runId = await trigger("t-log-live", null);
    const running = await vi.waitUntil(
      async () => {
        const run = await getRun(runId);
        return task(run, "t-log-live").logs.length === 2 ? run : null;
      },
      { timeout: 10_000 },
    );
    expect(task(running, "t-log-live").status).toBe("RUNNING");
    expect(task(running, "t-log-live").logs.map((l) => [l.level, l.message])).toEqual([
      ["info", "one"],
      ["warn", 'two {"n":2}'],
    ]);
    openGate(`log:${runId}`);
    const done = await result(runId);
    expect(task(done, "t-log-live").logs.map((l) => l.message)).toEqual(["one", 'two {"n":2}', "three"]);
  });
});

describe("the stream's inputs", () => {
  it("refuses a chunk over the limit in the SDK with a typed error, and in the engine naming the chunk", async () => {
    const run = await result(await trigger("t-stream-too-big", null));
    expect(run.output).toEqual({ code: "payload.too_large" });
    const reply = await env.SPINDLE.putStream(TOKEN, run.runId, { task: "t-stream-too-big", attempt: 1, invocation: 0 }, 0, ["x".repeat(64 * 1024 + 1)]);
    expect(reply).toMatchObject({ ok: false, error: { code: "payload.too_large", fields: [{ path: "chunks[0]" }] } });
    expect(chunks(await read(await open(run.runId)))).toEqual([]);
  });

  it("refuses chunks from a dispatch that is no longer running", async () => {
    const run = await result(await trigger("t-stream", { n: 1 }));
    const reply = await env.SPINDLE.putStream(TOKEN, run.runId, { task: "t-stream", attempt: 1, invocation: 0 }, 1, ["late"]);
    expect(reply).toMatchObject({ ok: false, error: { code: "task.superseded" } });
    expect(chunks(await read(await open(run.runId)))).toEqual([[0, "chunk 0"]]);
  });

  it("answers 404 for a run that does not exist", async () => {
    const res = await api("GET", `/api/v1/runs/01JH8X7Q2K3M4N5P6Q7R8S9T0V/stream`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("run.not_found");
  });
});
