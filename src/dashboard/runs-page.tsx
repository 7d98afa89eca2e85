/** @jsxImportSource hono/jsx */
import type { RunFilter, RunList, RunStatus } from "@spindle/worker-sdk/protocol";
import { duration, Layout, Status, time, utcFilterTime } from "./layout";

export const RUN_STATUSES: RunStatus[] = ["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
export const RUNS_PAGE_SIZE = 50;

/** What the runs page's form asks for, as typed (kept to fill the form again). */
export interface RunsQuery {
  workflow: string;
  status: RunStatus[];
  since: string;
  until: string;
  metadata: string;
  cursor: string;
}

/** Reads the form's query; what cannot be read is reported, not guessed. */
export function parseRunsQuery(q: (name: string) => string | undefined, all: (name: string) => string[] | undefined): { query: RunsQuery; filter: RunFilter; problems: string[] } {
  const problems: string[] = [];
  const status = (all("status") ?? []).flatMap((s) => s.split(",")).map((s) => s.trim().toUpperCase()).filter((s): s is RunStatus => RUN_STATUSES.includes(s as RunStatus));
  const query: RunsQuery = { workflow: q("workflow") ?? "", status, since: q("since") ?? "", until: q("until") ?? "", metadata: q("metadata") ?? "", cursor: q("cursor") ?? "" };
  const filter: RunFilter = { limit: RUNS_PAGE_SIZE };
  if (query.workflow) filter.workflow = query.workflow;
  if (status.length) filter.status = status;
  for (const field of ["since", "until"] as const) {
    const at = utcFilterTime(field, query[field], problems);
    if (at) filter[field] = at;
  }
  const metadata: Record<string, string> = {};
  for (const pair of query.metadata.split(",").map((p) => p.trim()).filter(Boolean)) {
    const at = pair.indexOf(":");
    if (at <= 0) problems.push(`metadata: '${pair}' is not key:value`);
    else metadata[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  if (Object.keys(metadata).length) filter.metadata = metadata;
  if (query.cursor) filter.cursor = query.cursor;
  return { query, filter, problems };
}

export interface RunsData {
  tenant: string;
  shards: number;
  workflows: string[];
  query: RunsQuery;
  filter: RunFilter;
  problems: string[];
  list: RunList;
  counts: Partial<Record<RunStatus, number>>;
}

export function RunsPage(props: RunsData) {
  const { query } = props;
  const { cursor: _cursor, limit: _limit, ...matching } = props.filter;
  return (
    <Layout title="Runs" page="runs" tenant={props.tenant} data={{ shards: String(props.shards) }}>
      <h1>Runs</h1>
      <form class="filters" method="get" action="/" aria-label="Filter runs">
        <label>
          Workflow
          <select name="workflow">
            <option value="">All workflows</option>
            {props.workflows.map((w) => (
              <option value={w} selected={w === query.workflow}>
                {w}
              </option>
            ))}
          </select>
        </label>
        <fieldset>
          <legend>Status</legend>
          {RUN_STATUSES.map((s) => (
            <label>
              <input type="checkbox" name="status" value={s} checked={query.status.includes(s)} />
              {s}
            </label>
          ))}
        </fieldset>
        <label>
          From (UTC)
          <input type="datetime-local" name="since" value={query.since} step="1" />
        </label>
        <label>
          Until (UTC)
          <input type="datetime-local" name="until" value={query.until} step="1" />
        </label>
        <label>
          Metadata (key:value, …)
          <input type="text" name="metadata" value={query.metadata} placeholder="customer:acme" />
        </label>
        <button type="submit">Apply filters</button>
        <a class="button" href="/">
          Clear
        </a>
      </form>
      {props.problems.length > 0 && (
        <p class="error-box" role="alert">
          {props.problems.join("; ")}
        </p>
      )}
      <div class="actions" role="group" aria-label="Bulk actions">
        <button type="button" data-action="cancel-selected" data-needs-selection disabled>
          Cancel selected
        </button>
        <button type="button" data-action="replay-selected" data-needs-selection disabled>
          Replay selected
        </button>
        <button type="button" data-action="cancel-matching" data-filter={JSON.stringify(matching)}>
          Cancel all matching
        </button>
        <button type="button" data-action="replay-matching" data-filter={JSON.stringify(matching)}>
          Replay all matching
        </button>
        <span id="selection-count" class="muted" aria-live="polite"></span>
      </div>
      <div id="live">
        <RunsLive {...props} />
      </div>
    </Layout>
  );
}

/** The part of the runs page that live updates reload: counts, the table, the pager. */
export function RunsLive(props: RunsData) {
  const { query, list } = props;
  const base = new URLSearchParams();
  if (query.workflow) base.set("workflow", query.workflow);
  for (const s of query.status) base.append("status", s);
  if (query.since) base.set("since", query.since);
  if (query.until) base.set("until", query.until);
  if (query.metadata) base.set("metadata", query.metadata);
  const withStatus = (s: RunStatus) => {
    const q = new URLSearchParams(base);
    q.delete("status");
    q.set("status", s);
    return `/?${q}`;
  };
  const older = list.nextCursor ? `/?${new URLSearchParams([...base, ["cursor", list.nextCursor]])}` : null;
  const total = RUN_STATUSES.reduce((n, s) => n + (props.counts[s] ?? 0), 0);
  return (
    <>
      <ul class="counts" aria-label="Runs per status">
        <li>
          <strong>{total}</strong> matching
        </li>
        {RUN_STATUSES.map((s) => (
          <li>
            <a href={withStatus(s)} aria-label={`${props.counts[s] ?? 0} ${s}`}>
              <Status status={s} /> {props.counts[s] ?? 0}
            </a>
          </li>
        ))}
      </ul>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Runs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">
                <input type="checkbox" id="select-all" aria-label="Select every run on this page" />
              </th>
              <th scope="col">Run</th>
              <th scope="col">Workflow</th>
              <th scope="col">Status</th>
              <th scope="col">Started</th>
              <th scope="col">Duration</th>
              <th scope="col" class="hide-narrow">
                Metadata
              </th>
            </tr>
          </thead>
          <tbody>
            {list.runs.length === 0 && (
              <tr>
                <td colspan={7} class="muted">
                  No runs match.
                </td>
              </tr>
            )}
            {list.runs.map((r) => (
              <tr data-run-id={r.runId}>
                <td>
                  <input type="checkbox" id={`select-${r.runId}`} value={r.runId} data-run-select aria-label={`Select run ${r.runId}`} />
                </td>
                <td>
                  <a class="mono" href={`/runs/${r.runId}`}>
                    {r.runId}
                  </a>
                </td>
                <td>{r.workflow}</td>
                <td>
                  <Status status={r.status} />
                </td>
                <td>{time(r.createdAt)}</td>
                <td>{duration(r.createdAt, r.finishedAt)}</td>
                <td class="hide-narrow mono">
                  {Object.entries(r.additionalMetadata)
                    .map(([k, v]) => `${k}:${v}`)
                    .join(", ")}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <nav class="actions" aria-label="Pages">
        {query.cursor && (
          <a class="button" href={`/?${base}`}>
            Newest
          </a>
        )}
        {older && (
          <a class="button" href={older}>
            Older runs
          </a>
        )}
      </nav>
    </>
  );
}
