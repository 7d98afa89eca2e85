/** @jsxImportSource hono/jsx */
import type { CronList, ScheduleList, ScheduleStatus } from "@spindle/worker-sdk/protocol";
import { Layout, Pager, ReloadLink, time } from "./layout";

export const TRIGGERS_PAGE_SIZE = 50;
export const SCHEDULE_STATUSES: ScheduleStatus[] = ["SCHEDULED", "FIRED", "FAILED"];

/** The query a crons or schedules page was asked with: filters, cursor, and the page's own URL. */
export interface TriggersQuery {
  workflow: string;
  status: ScheduleStatus | "";
  cursor: string;
}

export function parseTriggersQuery(q: (name: string) => string | undefined): TriggersQuery {
  const status = (q("status") ?? "").toUpperCase();
  return { workflow: q("workflow") ?? "", status: SCHEDULE_STATUSES.includes(status as ScheduleStatus) ? (status as ScheduleStatus) : "", cursor: q("cursor") ?? "" };
}

/** The filters of a query as URL parameters (no cursor): what paging and reloading keep. */
function filterParams(query: TriggersQuery): URLSearchParams {
  const base = new URLSearchParams();
  if (query.workflow) base.set("workflow", query.workflow);
  if (query.status) base.set("status", query.status);
  return base;
}

function hrefOf(path: string, query: TriggersQuery): string {
  const here = filterParams(query);
  if (query.cursor) here.set("cursor", query.cursor);
  return here.toString() ? `${path}?${here}` : path;
}

function WorkflowSelect(props: { workflows: string[]; selected: string }) {
  return (
    <label>
      Workflow
      <select name="workflow">
        <option value="">All workflows</option>
        {props.workflows.map((w) => (
          <option value={w} selected={w === props.selected}>
            {w}
          </option>
        ))}
      </select>
    </label>
  );
}

export function CronsPage(props: { tenant: string; workflows: string[]; query: TriggersQuery; list: CronList }) {
  const { query, list } = props;
  return (
    <Layout title="Crons" page="crons" tenant={props.tenant}>
      <h1>Crons</h1>
      <form class="filters" method="get" action="/crons" aria-label="Filter crons">
        <WorkflowSelect workflows={props.workflows} selected={query.workflow} />
        <button type="submit">Apply filters</button>
        <a class="button" href="/crons">
          Clear
        </a>
        <ReloadLink href={hrefOf("/crons", query)} />
      </form>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Crons, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Workflow</th>
              <th scope="col">Expression</th>
              <th scope="col">Time zone</th>
              <th scope="col">Source</th>
              <th scope="col">Next run</th>
              <th scope="col">Last run</th>
            </tr>
          </thead>
          <tbody>
            {list.crons.length === 0 && (
              <tr>
                <td colspan={7} class="muted">
                  No crons.
                </td>
              </tr>
            )}
            {list.crons.map((c) => (
              <tr data-cron-id={c.id}>
                <td>
                  <strong>{c.name}</strong>
                  <div class="muted mono">{c.id}</div>
                </td>
                <td>{c.workflow}</td>
                <td class="mono">{c.expression}</td>
                <td>{c.timezone}</td>
                <td>{c.source === "declared" ? "declared in code" : "API"}</td>
                <td>{time(c.nextRunAt)}</td>
                <td>{time(c.lastRunAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager path="/crons" base={filterParams(query)} cursor={query.cursor} nextCursor={list.nextCursor} older="Older crons" />
    </Layout>
  );
}

export function SchedulesPage(props: { tenant: string; workflows: string[]; query: TriggersQuery; list: ScheduleList }) {
  const { query, list } = props;
  return (
    <Layout title="Schedules" page="schedules" tenant={props.tenant}>
      <h1>Schedules</h1>
      <form class="filters" method="get" action="/schedules" aria-label="Filter schedules">
        <WorkflowSelect workflows={props.workflows} selected={query.workflow} />
        <label>
          Status
          <select name="status">
            <option value="">Any status</option>
            {SCHEDULE_STATUSES.map((s) => (
              <option value={s} selected={s === query.status}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Apply filters</button>
        <a class="button" href="/schedules">
          Clear
        </a>
        <ReloadLink href={hrefOf("/schedules", query)} />
      </form>
      <div class="table-wrap">
        <table>
          <caption class="sr-only">One-time schedules, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Schedule</th>
              <th scope="col">Workflow</th>
              <th scope="col">At</th>
              <th scope="col">Status</th>
              <th scope="col">Run</th>
            </tr>
          </thead>
          <tbody>
            {list.schedules.length === 0 && (
              <tr>
                <td colspan={5} class="muted">
                  No schedules.
                </td>
              </tr>
            )}
            {list.schedules.map((s) => (
              <tr data-schedule-id={s.scheduleId}>
                <td class="mono">{s.scheduleId}</td>
                <td>{s.workflow}</td>
                <td>{time(s.at)}</td>
                <td>
                  <span class={`status s-${s.status}`}>{s.status}</span>
                  {s.firedAt ? <div class="muted">fired {time(s.firedAt)}</div> : null}
                </td>
                <td>
                  {s.runId ? (
                    <a class="mono" href={`/runs/${s.runId}`}>
                      {s.runId}
                    </a>
                  ) : (
                    <span class="muted">{s.error ?? "not yet started"}</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager path="/schedules" base={filterParams(query)} cursor={query.cursor} nextCursor={list.nextCursor} older="Older schedules" />
    </Layout>
  );
}
