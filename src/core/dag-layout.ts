/** Where each task of a run's graph is drawn: its layer (column) and its row within the layer. */
export interface NodePlace {
  name: string;
  layer: number;
  row: number;
}

export interface DagLayout {
  nodes: NodePlace[];
  edges: { from: string; to: string }[];
  layers: number;
  rows: number;
}

/**
 * Lays a DAG out in layers: a task sits one layer right of its deepest parent, tasks of a layer in
 * the order given. Role tasks (on-failure, on-success) have no parents and run after the rest: they
 * go in a last layer of their own. Parents that are not tasks of the graph are ignored.
 */
export function layoutDag(tasks: readonly { name: string; parents: readonly string[]; role?: string | null }[]): DagLayout {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const depth = new Map<string, number>();
  const depthOf = (name: string, seen: Set<string>): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (seen.has(name)) return 0; // a cycle cannot be registered; stay finite if one shows up anyway
    seen.add(name);
    const parents = (byName.get(name)?.parents ?? []).filter((p) => byName.has(p));
    const d = parents.length === 0 ? 0 : 1 + Math.max(...parents.map((p) => depthOf(p, seen)));
    depth.set(name, d);
    return d;
  };
  const regular = tasks.filter((t) => !t.role);
  for (const t of regular) depthOf(t.name, new Set());
  const last = regular.length ? Math.max(...regular.map((t) => depth.get(t.name)!)) + 1 : 0;
  const rowsPerLayer = new Map<number, number>();
  const nodes = tasks.map((t) => {
    const layer = t.role ? last : depth.get(t.name)!;
    const row = rowsPerLayer.get(layer) ?? 0;
    rowsPerLayer.set(layer, row + 1);
    return { name: t.name, layer, row };
  });
  const edges = regular.flatMap((t) => t.parents.filter((p) => byName.has(p)).map((p) => ({ from: p, to: t.name })));
  return {
    nodes,
    edges,
    layers: nodes.length ? Math.max(...nodes.map((n) => n.layer)) + 1 : 0,
    rows: Math.max(0, ...rowsPerLayer.values()),
  };
}
