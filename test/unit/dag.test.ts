import { describe, expect, it } from "vitest";
import { taskDef as t } from "../support/definitions";
import type { TaskDefinition, WorkflowDefinition } from "@spindle/worker-sdk/protocol";
import { descendants, validateWorkflow } from "../../src/core/dag";

const wf = (...tasks: TaskDefinition[]): WorkflowDefinition => ({ name: "wf", kind: "workflow", tasks });

describe("validateWorkflow", () => {
  it("accepts a diamond", () => {
    expect(() => validateWorkflow(wf(t("a"), t("b", ["a"]), t("c", ["a"]), t("d", ["b", "c"])))).not.toThrow();
  });
  it("names the cycle", () => {
    expect(() => validateWorkflow(wf(t("a", ["c"]), t("b", ["a"]), t("c", ["b"])))).toThrow(/dependency cycle: a -> c -> b -> a/);
  });
  it("names an unknown parent with its path", () => {
    expect(() => validateWorkflow(wf(t("a"), t("b", ["nope"])))).toThrow(/tasks\[1\]\.parents\[0\]: unknown parent 'nope'/);
  });
  it("refuses duplicate names, bad names and parents on an on-failure task", () => {
    expect(() => validateWorkflow(wf(t("a"), t("a")))).toThrow(/duplicate task name 'a'/);
    expect(() => validateWorkflow(wf(t("has space")))).toThrow(/tasks\[0\]\.name/);
    expect(() => validateWorkflow(wf(t("a"), t("f", ["a"], { role: "on_failure" })))).toThrow(/on_failure task has no parents/);
    expect(() => validateWorkflow(wf(t("a"), t("f", [], { role: "on_failure" }), t("g", [], { role: "on_failure" })))).toThrow(
      /at most one on_failure/,
    );
  });
});

describe("descendants", () => {
  it("finds everything downstream, in definition order", () => {
    const def = wf(t("a"), t("b", ["a"]), t("c"), t("d", ["b", "c"]), t("e", ["d"]));
    expect(descendants(def, ["b"])).toEqual(["d", "e"]);
    expect(descendants(def, ["a", "c"])).toEqual(["b", "d", "e"]);
    expect(descendants(def, ["e"])).toEqual([]);
  });
});
