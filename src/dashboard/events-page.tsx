/** @jsxImportSource hono/jsx */
import type { EventFilter, EventList, EventView } from "@spindle/worker-sdk/protocol";
import { Json, Layout, Pager, ReloadLink, time, utcFilterTime } from "./layout";

export const EVENTS_PAGE_SIZE = 50;
/** How much of a payload a row of the list shows; the event's own page shows all of it. */
const PAYLOAD_PREVIEW_CHARS = 160;

/** What the events page's form asks for, as typed (kept to fill the form again). */
export interface EventsQuery {
  key: string;
  since: string;
  until: string;
  cursor: string;
}

export function parseEventsQuery(q: (name: string) => string | undefined): { query: EventsQuery; filter: EventFilter; problems: string[] } {
  const problems: string[] = [];
  const query: EventsQuery = { key: (q("key") ?? "").trim(), since: q("since") ?? "", until: q("until") ?? "", cursor: q("cursor") ?? "" };
  const filter: EventFilter = { limit: EVENTS_PAGE_SIZE };
  if (query.key) filter.key = query.key;
  for (const field of ["since", "until"] as const) {
    const at = utcFilterTime(field, query[field], problems);
    if (at) filter[field] = at;
  }
  if (query.cursor) filter.cursor = query.cursor;
  return { query, filter, problems };
}

const metadataText = (metadata: Record<string, string>) =>
  Object.entries(metadata)
    .map(([k, v]) => `${k}:${v}`)
    .join(", ");

function preview(payload: unknown): string {
  const text = JSON.stringify(payload) ?? "null";
  return text.length > PAYLOAD_PREVIEW_CHARS ? `${text.slice(0, PAYLOAD_PREVIEW_CHARS)}…` : text;
}

export function EventsPage(props: { tenant: string; query: EventsQuery; problems: string[]; list: EventList }) {
  const { query, list } = props;
  const base = new URLSearchParams();
  for (const field of ["key", "since", "until"] as const) if (query[field]) base.set(field, query[field]);
  const here = new URLSearchParams(base);
  if (query.cursor) here.set("cursor", query.cursor);
  return (
    <Layout title="Events" page="events" tenant={props.tenant}>
      <h1>Events</h1>
      <form class="filters" method="get" action="/events" aria-label="Filter events">
        <label>
          Event key
          <input type="text" name="key" value={query.key} placeholder="user:created" />
        </label>
        <label>
          From (UTC)
          <input type="datetime-local" name="since" value={query.since} step="1" />
        </label>
        <label>
          Until (UTC)
          <input type="datetime-local" name="until" value={query.until} step="1" />
        </label>
        <button type="submit">Apply filters</button>
        <a class="button" href="/events">
          Clear
        </a>
        <ReloadLink href={here.toString() ? `/events?${here}` : "/events"} />
      </form>
      {props.problems.length > 0 && (
        <p class="error-box" role="alert">
          {props.problems.join("; ")}
        </p>
      )}
      <div class="table-wrap">
        <table>
          <caption class="sr-only">Pushed events, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Pushed</th>
              <th scope="col">Payload</th>
              <th scope="col">Runs started</th>
              <th scope="col">Refused</th>
              <th scope="col">Woke</th>
              <th scope="col" class="hide-narrow">
                Metadata
              </th>
            </tr>
          </thead>
          <tbody>
            {list.events.length === 0 && (
              <tr>
                <td colspan={7} class="muted">
                  No events match.
                </td>
              </tr>
            )}
            {list.events.map((e) => (
              <tr data-event-id={e.eventId}>
                <td>
                  <a href={`/events/${e.eventId}`}>
                    <strong>{e.key}</strong>
                  </a>
                  <div class="muted mono">{e.eventId}</div>
                </td>
                <td>{time(e.createdAt)}</td>
                <td class="mono">{preview(e.payload)}</td>
                <td>
                  <RunLinks runs={e.runs} />
                </td>
                <td>
                  {e.refused.length === 0 ? (
                    <span class="muted">none</span>
                  ) : (
                    <ul>
                      {e.refused.map((r) => (
                        <li>
                          <span class="status s-FAILED">REFUSED</span> {r.workflow}
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
                <td>
                  <WokeLinks woke={e.woke} />
                </td>
                <td class="hide-narrow mono">{metadataText(e.additionalMetadata)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager path="/events" base={base} cursor={query.cursor} nextCursor={list.nextCursor} older="Older events" />
    </Layout>
  );
}

function RunLinks(props: { runs: EventView["runs"] }) {
  if (props.runs.length === 0) return <span class="muted">none</span>;
  return (
    <ul>
      {props.runs.map((r) => (
        <li>
          {r.workflow}:{" "}
          <a class="mono" href={`/runs/${r.runId}`}>
            {r.runId}
          </a>
        </li>
      ))}
    </ul>
  );
}

function WokeLinks(props: { woke: EventView["woke"] }) {
  if (props.woke.length === 0) return <span class="muted">none</span>;
  return (
    <ul>
      {props.woke.map((w) => (
        <li>
          {w.task} of{" "}
          <a class="mono" href={`/runs/${w.runId}`}>
            {w.runId}
          </a>
        </li>
      ))}
    </ul>
  );
}

export function EventPage(props: { tenant: string; event: EventView }) {
  const { event } = props;
  return (
    <Layout title={`Event ${event.key}`} page="event" tenant={props.tenant}>
      <p>
        <a href="/events">← Events</a>
      </p>
      <h1>
        Event <span class="mono">{event.key}</span>
      </h1>
      <div class="grid2">
        <section aria-labelledby="event-facts-h">
          <h2 id="event-facts-h">Event</h2>
          <dl class="facts">
            <dt>Event id</dt>
            <dd class="mono">{event.eventId}</dd>
            <dt>Key</dt>
            <dd class="mono">{event.key}</dd>
            <dt>Pushed</dt>
            <dd>{time(event.createdAt)}</dd>
            <dt>Scope</dt>
            <dd>{event.scope ?? "—"}</dd>
            <dt>Metadata</dt>
            <dd class="mono">{metadataText(event.additionalMetadata) || "—"}</dd>
          </dl>
        </section>
        <section aria-labelledby="event-payload-h">
          <h2 id="event-payload-h">Payload</h2>
          <Json value={event.payload} label="Payload" />
        </section>
      </div>
      <section aria-labelledby="event-runs-h">
        <h2 id="event-runs-h">Runs started</h2>
        <RunLinks runs={event.runs} />
      </section>
      <section aria-labelledby="event-refused-h">
        <h2 id="event-refused-h">Workflows refused</h2>
        {event.refused.length === 0 ? (
          <p class="muted">none</p>
        ) : (
          <ul>
            {event.refused.map((r) => (
              <li>
                <span class="status s-FAILED">REFUSED</span> <strong>{r.workflow}</strong>: {r.error.message}
                {r.error.fields?.length ? (
                  <ul>
                    {r.error.fields.map((f) => (
                      <li>
                        <code>{f.path}</code>: {f.message}
                      </li>
                    ))}
                  </ul>
                ) : null}
              </li>
            ))}
          </ul>
        )}
      </section>
      <section aria-labelledby="event-woke-h">
        <h2 id="event-woke-h">Waiting tasks woken</h2>
        <WokeLinks woke={event.woke} />
      </section>
    </Layout>
  );
}
