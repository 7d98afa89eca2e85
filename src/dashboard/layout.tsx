/** @jsxImportSource hono/jsx */
import type { Child } from "hono/jsx";
import type { RunStatus, TaskStatus } from "@spindle/worker-sdk/protocol";

export type Page = "runs" | "run" | "events" | "event" | "crons" | "schedules" | "flow" | "workers" | "sign-in" | "not-found";

/** The pages the navigation names, and the page each one is current on. */
const NAV: { href: string; label: string; current: Page[] }[] = [
  { href: "/", label: "Runs", current: ["runs", "run"] },
  { href: "/events", label: "Events", current: ["events", "event"] },
  { href: "/crons", label: "Crons", current: ["crons"] },
  { href: "/schedules", label: "Schedules", current: ["schedules"] },
  { href: "/flow", label: "Flow control", current: ["flow"] },
  { href: "/workers", label: "Workers", current: ["workers"] },
];

/** The page shell: navigation, sign-out, the live region's status line, the script. */
export function Layout(props: { title: string; page: Page; tenant?: string; data?: Record<string, string>; children: Child }) {
  const data = Object.fromEntries(Object.entries(props.data ?? {}).map(([k, v]) => [`data-${k}`, v]));
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · Spindle`}</title>
        <link rel="stylesheet" href="/assets/app.css" />
      </head>
      <body data-page={props.page} {...data}>
        <header class="top">
          <a class="brand" href="/">Spindle</a>
          {props.tenant !== undefined && (
            <>
              <nav aria-label="Main">
                {NAV.map((n) => (
                  <a href={n.href} aria-current={n.current.includes(props.page) ? "page" : undefined}>
                    {n.label}
                  </a>
                ))}
              </nav>
              <span class="muted">
                tenant <strong>{props.tenant}</strong>
              </span>
              <form method="post" action="/sign-out">
                <button type="submit">Sign out</button>
              </form>
            </>
          )}
        </header>
        <main>
          {props.children}
          <p id="status-message" role="status" aria-live="polite" class="muted"></p>
        </main>
        <script src="/assets/app.js" defer></script>
      </body>
    </html>
  );
}

/** A status shown as text and colour, never colour alone. */
export function Status(props: { status: RunStatus | TaskStatus; evicted?: boolean | undefined }) {
  return (
    <span class={`status s-${props.status}`}>
      {props.status}
      {props.evicted ? " (waiting)" : ""}
    </span>
  );
}

export function Json(props: { value: unknown; label: string }) {
  return <pre aria-label={props.label}>{JSON.stringify(props.value, null, 2)}</pre>;
}

export function time(iso: string | null | undefined): string {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "—";
}

export function duration(from: string | null | undefined, to: string | null | undefined, now = Date.now()): string {
  if (!from) return "—";
  const ms = (to ? Date.parse(to) : now) - Date.parse(from);
  const text = ms < 1000 ? `${ms} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 3_600_000 ? `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s` : `${(ms / 3_600_000).toFixed(1)} h`;
  return to ? text : `${text} so far`;
}

/**
 * A filter's date and time as a form sends it: a datetime-local field has no zone, and the pages
 * say their times are UTC. What cannot be read is reported as a problem, not guessed.
 */
export function utcFilterTime(field: string, value: string, problems: string[]): string | undefined {
  if (!value) return undefined;
  const zoned = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
  if (Number.isNaN(Date.parse(zoned))) {
    problems.push(`${field}: not a date and time`);
    return undefined;
  }
  return new Date(zoned).toISOString();
}

/** Cursor paging: back to the newest page, and on to older items when there are more. */
export function Pager(props: { path: string; base: URLSearchParams; cursor: string; nextCursor: string | null; older: string }) {
  const query = (extra: [string, string][] = []) => {
    const q = new URLSearchParams([...props.base, ...extra]).toString();
    return q ? `${props.path}?${q}` : props.path;
  };
  return (
    <nav class="actions" aria-label="Pages">
      {props.cursor && (
        <a class="button" href={query()}>
          Newest
        </a>
      )}
      {props.nextCursor && (
        <a class="button" href={query([["cursor", props.nextCursor]])}>
          {props.older}
        </a>
      )}
    </nav>
  );
}

/** Pages without a live channel offer a reload of what they show, filters and page kept. */
export function ReloadLink(props: { href: string }) {
  return (
    <a class="button" href={props.href}>
      Reload
    </a>
  );
}
