import { describe, expect, it } from "vitest";
import { followEventStream, parseEventStream, type ServerSentEvent } from "../../worker-sdk/src/sse";

/** A body that arrives in these pieces, then ends (or breaks off with an error). */
function body(pieces: string[], breakOff = false): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < pieces.length) controller.enqueue(encoder.encode(pieces[i++]!));
      else if (breakOff) controller.error(new Error("connection reset"));
      else controller.close();
    },
  });
}

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe("parseEventStream", () => {
  it("reads ids, types and multi-line data, whatever the pieces the bytes arrive in", async () => {
    const text = ": a comment\nid: 0\ndata: chunk 0\n\nid: 1\ndata: line one\r\ndata: line two\r\n\r\nevent: end\ndata: {\"status\":\"COMPLETED\"}\n\n";
    for (const size of [1, 2, 3, 7, text.length]) {
      const pieces = Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, (i + 1) * size));
      expect(await all(parseEventStream(body(pieces)))).toEqual([
        { id: "0", event: "message", data: "chunk 0" },
        { id: "1", event: "message", data: "line one\nline two" },
        { id: "1", event: "end", data: '{"status":"COMPLETED"}' },
      ]);
    }
  });

  it("drops an event the stream ended in the middle of", async () => {
    expect(await all(parseEventStream(body(["id: 0\ndata: whole\n\nid: 1\ndata: cut"])))).toEqual([{ id: "0", event: "message", data: "whole" }]);
  });
});

describe("followEventStream", () => {
  const ok = (pieces: string[], breakOff = false) => new Response(body(pieces, breakOff), { status: 200 });
  const toError = async (res: Response) => new Error(`HTTP ${res.status}`);

  it("reconnects after the last id received until the end event, repeating nothing", async () => {
    const asked: (string | null)[] = [];
    const responses = [
      () => ok(["id: 0\ndata: a\n\nid: 1\ndata: b\n\n"], true),
      () => ok([]),
      () => ok(["id: 2\ndata: c\n\nevent: end\ndata: {}\n\n"]),
    ];
    const events = await all(
      followEventStream(
        async (last) => {
          asked.push(last);
          return responses[asked.length - 1]!();
        },
        toError,
        { endEvent: "end", retryDelayMs: () => 0 },
      ),
    );
    expect(events.map((e: ServerSentEvent) => e.data)).toEqual(["a", "b", "c"]);
    expect(asked).toEqual([null, "1", "1"]);
  });

  it("gives up after the retries when connections bring nothing, and at once on a refusal", async () => {
    let calls = 0;
    const broken = followEventStream(async () => (calls++, ok([], true)), toError, { endEvent: "end", maxRetries: 2, retryDelayMs: () => 0 });
    await expect(all(broken)).rejects.toThrow("connection reset");
    expect(calls).toBe(3);
    calls = 0;
    const refused = followEventStream(async () => (calls++, new Response("{}", { status: 404 })), toError, { endEvent: "end", retryDelayMs: () => 0 });
    await expect(all(refused)).rejects.toThrow("HTTP 404");
    expect(calls).toBe(1);
  });
});
