import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { client, ROOT } from "./dev-server";

const server = inject("devServer");
const api = client(server);

const task = (run: any, name: string) => run.tasks.find((t: any) => t.name === name);

describe("the example worker over HTTP, as `npm start` runs it", () => {
  it("prints simple's output with the README's quickstart curl", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const command = /<!-- quickstart-curl -->\s*```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(command, "README has a quickstart curl block").toBeTruthy();
    const out = execFileSync("bash", ["-c", command!.replaceAll("localhost:8787", `127.0.0.1:${server.port}`)], { cwd: ROOT, encoding: "utf8" });
    expect(out).toContain('"TransformedMessage":"hello world"');
  });

  it("simple lower-cases the message", async () => {
    const run = await api.result(await api.trigger("simple", { Message: "Hello World" }));
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ TransformedMessage: "hello world" });
  });

  it("simple refuses input without Message, naming the field", async () => {
    const res = await api.call("POST", "/api/v1/workflows/simple/runs", { input: { message: "lower-case key" } });
    expect(res.status).toBe(400);
    expect(res.body.error.fields).toContainEqual({ path: "input.Message", message: "is required" });
  });

  it("dag lower-cases, then reverses using its parent's output", async () => {
    const run = await api.result(await api.trigger("dag", { Message: "Hello World" }));
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({
      "to-lower": { TransformedMessage: "hello world" },
      reverse: { Original: "Hello World", Transformed: "dlrow olleh" },
    });
    expect(Date.parse(task(run, "reverse").startedAt)).toBeGreaterThanOrEqual(Date.parse(task(run, "to-lower").finishedAt));
  });

  it("retries fails twice and succeeds on its third attempt", async () => {
    const run = await api.result(await api.trigger("retries", {}));
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ retryCount: 2 });
    expect(task(run, "retries").attempts.map((a: any) => a.status)).toEqual(["FAILED", "FAILED", "COMPLETED"]);
  });

  it("non-retryable fails on its first attempt with retries left", async () => {
    const run = await api.result(await api.trigger("non-retryable", {}));
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ name: "NonRetryableError", message: "not retried" });
    expect(task(run, "non-retryable").attempts).toHaveLength(1);
  });

  it("timeout fails with a timeout error after about 2 s", async () => {
    const run = await api.result(await api.trigger("timeout", {}));
    expect(run.status).toBe("FAILED");
    expect(run.error).toMatchObject({ code: "task.timeout", name: "TimeoutError" });
    const t = task(run, "timeout");
    const took = Date.parse(t.finishedAt) - Date.parse(t.startedAt);
    expect(took).toBeGreaterThanOrEqual(2_000);
    expect(took).toBeLessThan(30_000); // not the 30 s the task would have slept
  });

  it("on-failure handles the failure with the errors", async () => {
    const run = await api.result(await api.trigger("on-failure", {}));
    expect(run.status).toBe("FAILED");
    expect(task(run, "fail").error.message).toBe("intentional failure");
    expect(task(run, "on-failure")).toMatchObject({
      status: "COMPLETED",
      output: { handled: true, errors: { fail: "intentional failure" } },
    });
  });

  it("on-success runs after first and second", async () => {
    const run = await api.result(await api.trigger("on-success", {}));
    expect(run.status).toBe("COMPLETED");
    const hook = task(run, "on-success");
    expect(hook.output).toEqual({ after: [1, 2] });
    expect(Date.parse(hook.startedAt)).toBeGreaterThanOrEqual(Date.parse(task(run, "second").finishedAt));
  });

  it("child-workflows sums its children's outputs", async () => {
    const run = await api.result(await api.trigger("child-workflows", { N: 10 }));
    expect(run.status).toBe("COMPLETED");
    expect(run.output).toEqual({ parent: { Result: 45 } });
  });

  it("cancellation ends CANCELLED within two seconds of the cancel", async () => {
    const runId = await api.trigger("cancellation", {});
    const deadline = Date.now() + 20_000;
    while ((await api.call("GET", `/api/v1/runs/${runId}`)).body.status !== "RUNNING") {
      if (Date.now() > deadline) throw new Error("cancellation never started");
      await new Promise((r) => setTimeout(r, 100));
    }
    const cancel = await api.call("POST", `/api/v1/runs/${runId}/cancel`);
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe("CANCELLED");
    const run = await api.result(runId);
    expect(run.status).toBe("CANCELLED");
    expect(Date.parse(run.finishedAt) - Date.parse(task(run, "cancellation").startedAt)).toBeLessThan(60_000);
  });
});
