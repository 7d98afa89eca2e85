import { describe, expect, it } from "vitest";
import { resumeOffset, sseEvent } from "../../src/core/sse";

describe("the stream's event format", () => {
  it("writes a chunk with its offset, one data line per line of the chunk", () => {
    expect(sseEvent({ id: 3, data: "chunk 3" })).toBe("id: 3\ndata: chunk 3\n\n");
    expect(sseEvent({ id: 4, data: "a\nb\r\nc" })).toBe("id: 4\ndata: a\ndata: b\ndata: c\n\n");
    expect(sseEvent({ event: "end", data: "{}" })).toBe("event: end\ndata: {}\n\n");
  });

  it("resumes after Last-Event-ID, else from ?offset=, else from the start", () => {
    expect(resumeOffset("4", 9)).toBe(5);
    expect(resumeOffset(null, 9)).toBe(9);
    expect(resumeOffset(undefined, undefined)).toBe(0);
    expect(resumeOffset("", 2)).toBe(2);
    expect(resumeOffset("four", undefined)).toBeNull();
    expect(resumeOffset("-1", undefined)).toBeNull();
  });
});
