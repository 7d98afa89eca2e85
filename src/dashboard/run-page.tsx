/** @jsxImportSource hono/jsx */
import type { EventLogEntry, RunView, TaskView } from "@spindle/worker-sdk/protocol";
import { layoutDag } from "../core/dag-layout";
import type { StreamChunk } from "../run/stream-store";
import { duration, Json, Layout, Status, time } from "./layout";

export interface RunData {
  tenant: string;
  run: RunView;
  stream: { chunks: StreamChunk[]; length: number };
}

const ENDED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export function RunPage(props: RunData) {
  return (
    <Layout title={`${props.run.workflow} ${props.run.runId}`} page="run" tenant={props.tenant} data={{ "run-id": props.run.runId }}>
      <p>
        <a href="/">← Runs</a>
      </p>
      <div id="live">
        <RunLive {...props} />
      </div>
    </Layout>
  );
}

/** Everything of a run that changes: the live region of its page. */
export function RunLive({ run, stream }: RunData) {
  const ended = ENDED.has(run.status);
  const fanouts = run.tasks.flatMap((t) => (t.waitingFor ?? []).filter((w) => w.children).map((w) => ({ task: t.name, ...w.children! })));
  return (
    <>
      <h1>
        {run.workflow} <Status status={run.status} />
      </h1>
      <div class="actions" role="group" aria-label="Run actions">
        <button type="button" class="danger" id="cancel-run" data-action="cancel-run" data-run-id={run.runId} disabled={ended}>
          Cancel run
        </button>
        <button type="button" id="replay-run" data-action="replay-run" data-run-id={run.runId} disabled={!ended || run.status === "COMPLETED"}>
          Replay run
        </button>
      </div>
      <div class="grid2">
        <section aria-labelledby="facts-h">
          <h2 id="facts-h">Run</h2>
          <dl class="facts">
            <dt>Run id</dt>
            <dd class="mono">{run.runId}</dd>
            <dt>Status</dt>
            <dd>
              <Status status={run.status} />
            </dd>
            <dt>Created</dt>
            <dd>{time(run.createdAt)}</dd>
            <dt>Started</dt>
            <dd>{time(run.startedAt)}</dd>
            <dt>Finished</dt>
            <dd>{time(run.finishedAt)}</dd>
            <dt>Duration</dt>
            <dd>{duration(run.startedAt ?? run.createdAt, run.finishedAt)}</dd>
            <dt>Priority</dt>
            <dd>{run.priority}</dd>
            <dt>Metadata</dt>
            <dd class="mono">{Object.keys(run.additionalMetadata).length ? Object.entries(run.additionalMetadata).map(([k, v]) => `${k}:${v}`).join(", ") : "—"}</dd>
            {run.parent && (
              <>
                <dt>Parent</dt>
                <dd>
                  <a class="mono" href={`/runs/${run.parent.runId}`}>{run.parent.runId}</a> (task {run.parent.taskName})
                </dd>
              </>
            )}
          </dl>
          {run.error && (
            <>
              <h3>Error</h3>
              <p class="error-box" role="alert">
                <strong>{run.error.name}</strong>: {run.error.message}
                {run.error.task ? ` (task ${run.error.task})` : ""}
              </p>
            </>
          )}
        </section>
        <section aria-labelledby="io-h">
          <h2 id="io-h">Input and output</h2>
          <h3>Input</h3>
          <Json value={run.input} label="Input" />
          <h3>Output</h3>
          {run.status === "COMPLETED" ? <Json value={run.output} label="Output" /> : <p class="muted">{ended ? "None: the run did not complete." : "Not yet: the run is going."}</p>}
        </section>
      </div>
      <section aria-labelledby="graph-h">
        <h2 id="graph-h">Graph</h2>
        <DagGraph tasks={run.tasks} />
      </section>
      {fanouts.map((f) => (
        <p>
          <label>
            Children of {f.task}: {f.done} of {f.total} done
            <progress max={f.total} value={f.done}>{`${f.done} / ${f.total}`}</progress>
          </label>
        </p>
      ))}
      <section aria-labelledby="stream-h">
        <h2 id="stream-h">Stream</h2>
        {stream.length === 0 ? (
          <p class="muted">Nothing streamed{ended ? "" : " yet"}.</p>
        ) : (
          <>
            <p class="muted">
              {stream.length} chunk{stream.length === 1 ? "" : "s"}
              {stream.chunks.length < stream.length ? ` (the first ${stream.chunks.length} shown; read them all from /api/v1/runs/${run.runId}/stream)` : ""}
            </p>
            <pre id="stream-output" aria-label="Stream">
              {stream.chunks.map((c) => `${c.data}\n`).join("")}
            </pre>
          </>
        )}
      </section>
      <section aria-labelledby="tasks-h">
        <h2 id="tasks-h">Tasks</h2>
        {run.tasks.map((t) => (
          <TaskSection task={t} />
        ))}
      </section>
      {run.children.length > 0 && (
        <section aria-labelledby="children-h">
          <h2 id="children-h">Child runs ({run.children.length})</h2>
          <details id="children-list">
            <summary>Show the child runs</summary>
            <ul>
              {run.children.slice(0, 500).map((id) => (
                <li>
                  <a class="mono" href={`/runs/${id}`}>{id}</a>
                </li>
              ))}
            </ul>
          </details>
        </section>
      )}
      {run.deadLetters && run.deadLetters.length > 0 && (
        <section aria-labelledby="dead-h">
          <h2 id="dead-h">Dead letters</h2>
          <Json value={run.deadLetters} label="Dead letters" />
        </section>
      )}
    </>
  );
}

const NODE_W = 168;
const NODE_H = 46;
const GAP_X = 64;
const GAP_Y = 18;
const COLORS: Record<string, string> = {
  COMPLETED: "#1a7f37",
  FAILED: "#cf222e",
  RUNNING: "#0969da",
  QUEUED: "#9a6700",
  PENDING: "#9a6700",
  CANCELLED: "#6e7781",
  SKIPPED: "#6e7781",
};

/** The run's tasks as a graph: one box per task with its state (in words and colour), arrows from parents. */
export function DagGraph({ tasks }: { tasks: TaskView[] }) {
  const layout = layoutDag(tasks);
  const at = new Map(layout.nodes.map((n) => [n.name, { x: 12 + n.layer * (NODE_W + GAP_X), y: 12 + n.row * (NODE_H + GAP_Y) }]));
  const width = 24 + layout.layers * NODE_W + Math.max(0, layout.layers - 1) * GAP_X;
  const height = 24 + layout.rows * NODE_H + Math.max(0, layout.rows - 1) * GAP_Y;
  const byName = new Map(tasks.map((t) => [t.name, t]));
  return (
    <div class="dag">
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`Task graph: ${tasks.map((t) => `${t.name} ${t.status}`).join(", ")}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#57606a" />
          </marker>
        </defs>
        {layout.edges.map((e) => {
          const a = at.get(e.from)!;
          const b = at.get(e.to)!;
          const x1 = a.x + NODE_W;
          const y1 = a.y + NODE_H / 2;
          const x2 = b.x;
          const y2 = b.y + NODE_H / 2;
          return <path class="edge" d={`M ${x1} ${y1} C ${x1 + GAP_X / 2} ${y1}, ${x2 - GAP_X / 2} ${y2}, ${x2} ${y2}`} />;
        })}
        {layout.nodes.map((n) => {
          const t = byName.get(n.name)!;
          const p = at.get(n.name)!;
          const color = COLORS[t.status] ?? "#57606a";
          return (
            <a href={`#task-${slug(t.name)}`} class="node" data-task={t.name} data-status={t.status}>
              <title>{`${t.name}: ${t.status}`}</title>
              <rect x={p.x} y={p.y} width={NODE_W} height={NODE_H} rx="8" stroke={color} />
              <text x={p.x + 10} y={p.y + 18} font-weight="600">
                {t.name.length > 22 ? `${t.name.slice(0, 21)}…` : t.name}
              </text>
              <text x={p.x + 10} y={p.y + 36} fill={color} style={`fill:${color}`}>
                {t.status}
                {t.evicted ? " (waiting)" : ""}
                {t.kind === "durable" ? " · durable" : ""}
              </text>
            </a>
          );
        })}
      </svg>
    </div>
  );
}

function TaskSection({ task: t }: { task: TaskView }) {
  const id = slug(t.name);
  return (
    <section class="task" id={`task-${id}`} aria-labelledby={`task-h-${id}`}>
      <h3 id={`task-h-${id}`}>
        {t.name} <Status status={t.status} evicted={t.evicted} />
        <span class="muted">
          {t.kind}
          {t.role ? ` · ${t.role.replace("_", "-")}` : ""} · attempt {t.attempt} · {duration(t.startedAt, t.finishedAt)}
        </span>
      </h3>
      {t.queuedReason && <p class="notice">Waiting to start: {t.queuedReason}</p>}
      {t.error && (
        <p class="error-box">
          <strong>{t.error.name}</strong>: {t.error.message}
        </p>
      )}
      {t.conditionErrors?.map((e) => (
        <p class="notice">Condition error: {e}</p>
      ))}
      {(t.waitingFor ?? []).length > 0 && (
        <div>
          <h4>Waiting for</h4>
          <ul>
            {t.waitingFor!.map((w) => (
              <li>
                <span class="mono">
                  {w.kind}({w.key})
                </span>
                {w.children && ` — children ${w.children.done} of ${w.children.total} done`}
                {w.conditions && (
                  <ul>
                    {w.conditions.map((c) => (
                      <li>
                        {c.kind === "sleep" ? `sleep until ${time(c.dueAt)}` : c.kind === "event" ? `event ${c.eventKey}${c.expression ? ` where ${c.expression}` : ""}${c.scope ? ` (scope ${c.scope})` : ""}` : `parent ${c.parent}: ${c.expression}`}
                        {c.satisfied ? " — satisfied" : ""}
                        {c.error ? ` — error: ${c.error}` : ""}
                      </li>
                    ))}
                  </ul>
                )}
              </li>
            ))}
          </ul>
        </div>
      )}
      {t.eventLog && <Timeline task={t} entries={t.eventLog} />}
      {t.status === "COMPLETED" && (
        <details id={`output-${id}`}>
          <summary>Output</summary>
          <Json value={t.output} label={`Output of ${t.name}`} />
        </details>
      )}
      <details id={`attempts-${id}`}>
        <summary>Attempts ({t.attempts.length})</summary>
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Attempt</th>
                <th scope="col">Status</th>
                <th scope="col">Started</th>
                <th scope="col">Finished</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {t.attempts.map((a) => (
                <tr>
                  <td>{a.attempt}</td>
                  <td>
                    <Status status={a.status} />
                  </td>
                  <td>{time(a.startedAt)}</td>
                  <td>{time(a.finishedAt)}</td>
                  <td>{a.error ? `${a.error.name}: ${a.error.message}` : ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {t.lostDispatches.length > 0 && (
          <ul>
            {t.lostDispatches.map((l) => (
              <li>
                Attempt {l.attempt} invocation {l.invocation} lost at {time(l.at)}: {l.reason}
              </li>
            ))}
          </ul>
        )}
      </details>
      <h4>Logs</h4>
      {t.logs.length === 0 ? (
        <p class="muted">No log lines.</p>
      ) : (
        <ul class="logs" aria-label={`Logs of ${t.name}`}>
          {t.logs.map((l) => (
            <li class={l.level}>
              <span class="muted">{new Date(l.at).toISOString().slice(11, 23)}</span> [{l.level}] (attempt {l.attempt}) {l.message}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** A durable task's event log, one checkpoint per step, with a control to step through it. */
function Timeline({ task, entries }: { task: TaskView; entries: EventLogEntry[] }) {
  const id = slug(task.name);
  const ordered = [...entries].sort((a, b) => a.seq - b.seq);
  const n = ordered.length;
  return (
    <div>
      <h4 id={`timeline-h-${id}`}>Event log</h4>
      {n === 0 ? (
        <p class="muted">No checkpoints yet.</p>
      ) : (
        <>
          <div class="stepper" role="group" aria-label={`Step through the event log of ${task.name}`}>
            <button type="button" data-step-by="-1" data-range={`step-${id}`} aria-label="Previous checkpoint">
              ◀ Previous
            </button>
            <input type="range" id={`step-${id}`} min="0" max={String(n)} value={String(n)} data-timeline={`timeline-${id}`} data-output={`step-out-${id}`} aria-label={`Checkpoint of ${task.name}`} />
            <button type="button" data-step-by="1" data-range={`step-${id}`} aria-label="Next checkpoint">
              Next ▶
            </button>
            <output id={`step-out-${id}`} for={`step-${id}`} aria-live="polite">
              Step {n} of {n}
            </output>
          </div>
          <ol class="timeline" id={`timeline-${id}`} aria-labelledby={`timeline-h-${id}`}>
            {ordered.map((e, i) => (
              <li data-step={String(i + 1)} data-label={`${e.kind}(${e.key}) ${e.status}`} data-kind={e.kind} data-status={e.status}>
                <strong>
                  {i + 1}. {label(e)}
                </strong>{" "}
                <span class="mono">{e.key}</span> <span class={`status s-${e.status === "resolved" ? "COMPLETED" : "RUNNING"}`}>{e.status}</span>
                <div class="muted">
                  {e.recordedAt && `recorded ${time(e.recordedAt)}`}
                  {e.dueAt && ` · deadline ${time(e.dueAt)}`}
                  {e.order !== undefined && ` · resolved #${e.order}`}
                </div>
                <div class="seen">
                  <ChildLinks entry={e} />
                  {e.result && ("error" in e.result ? <p class="error-box">{`${e.result.error.name}: ${e.result.error.message}`}</p> : <Json value={e.result.value} label={`What the task saw at step ${i + 1}`} />)}
                </div>
              </li>
            ))}
          </ol>
        </>
      )}
    </div>
  );
}

function label(e: EventLogEntry): string {
  switch (e.kind) {
    case "memo":
      return "Memo";
    case "sleep":
      return "Sleep";
    case "wait":
      return "Wait";
    case "child":
      return "Child";
    case "children":
      return "Children";
    case "spawn":
      return "Spawn";
  }
}

function ChildLinks({ entry }: { entry: EventLogEntry }) {
  if (!entry.result || !("value" in entry.result) || !Array.isArray(entry.result.value)) return null;
  const runs = (entry.result.value as { runId?: unknown; status?: unknown }[]).filter((c) => typeof c?.runId === "string").slice(0, 50);
  if (runs.length === 0) return null;
  return (
    <ul>
      {runs.map((c) => (
        <li>
          <a class="mono" href={`/runs/${String(c.runId)}`}>{String(c.runId)}</a> {String(c.status ?? "")}
        </li>
      ))}
    </ul>
  );
}

export function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}
