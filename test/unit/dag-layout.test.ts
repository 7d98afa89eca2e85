import { describe, expect, it } from "vitest";
import { layoutDag } from "../../src/core/dag-layout";

describe("layoutDag", () => {
  it("puts each task one layer right of its deepest parent", () => {
    const layout = layoutDag([
      { name: "a", parents: [] },
      { name: "b", parents: ["a"] },
      { name: "c", parents: ["a"] },
      { name: "d", parents: ["b", "a"] },
    ]);
    expect(layout.nodes).toEqual([
      { name: "a", layer: 0, row: 0 },
      { name: "b", layer: 1, row: 0 },
      { name: "c", layer: 1, row: 1 },
      { name: "d", layer: 2, row: 0 },
    ]);
    expect(layout.edges).toEqual([
      { from: "a", to: "b" },
      { from: "a", to: "c" },
      { from: "b", to: "d" },
      { from: "a", to: "d" },
    ]);
    expect(layout).toMatchObject({ layers: 3, rows: 2 });
  });

  it("puts role tasks in a last layer, without edges", () => {
    const layout = layoutDag([
      { name: "fail", parents: [] },
      { name: "on-failure", parents: [], role: "on_failure" },
    ]);
    expect(layout.nodes[1]).toEqual({ name: "on-failure", layer: 1, row: 0 });
    expect(layout.edges).toEqual([]);
  });

  it("lays out a single task", () => {
    expect(layoutDag([{ name: "simple", parents: [] }])).toMatchObject({ layers: 1, rows: 1, edges: [] });
  });
});
