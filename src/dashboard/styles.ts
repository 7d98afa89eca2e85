/** The dashboard's stylesheet, served at /assets/app.css (no build step, nothing fetched at run time). */
export const STYLES = `
:root { --fg: #1b1f24; --muted: #57606a; --bg: #fff; --line: #d0d7de; --soft: #f6f8fa; --accent: #0a58ca;
  --ok: #1a7f37; --bad: #cf222e; --run: #0969da; --wait: #9a6700; --off: #6e7781; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg); line-height: 1.45; }
a { color: var(--accent); }
header.top { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; padding: .6rem 1rem; border-bottom: 1px solid var(--line); background: var(--soft); }
header.top .brand { font-weight: 700; text-decoration: none; color: var(--fg); }
header.top nav { display: flex; gap: 1rem; flex-wrap: wrap; }
header.top nav a[aria-current="page"] { font-weight: 700; }
header.top form { margin-left: auto; }
main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
h1 { font-size: 1.35rem; margin: .2rem 0 .8rem; } h2 { font-size: 1.1rem; margin: 1.4rem 0 .5rem; } h3 { font-size: 1rem; margin: .8rem 0 .4rem; }
button, .button { font: inherit; padding: .35rem .75rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); cursor: pointer; text-decoration: none; display: inline-block; }
button.danger { border-color: var(--bad); color: var(--bad); }
button:disabled { opacity: .5; cursor: default; }
:focus-visible { outline: 3px solid #0969da88; outline-offset: 2px; }
input, select { font: inherit; padding: .3rem .4rem; border: 1px solid var(--line); border-radius: 6px; max-width: 100%; }
label { display: inline-flex; flex-direction: column; gap: .15rem; font-size: .9rem; }
.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: flex-end; margin-bottom: .8rem; }
fieldset { border: 1px solid var(--line); border-radius: 6px; padding: .3rem .6rem; display: flex; flex-wrap: wrap; gap: .5rem; }
fieldset label { flex-direction: row; align-items: center; gap: .25rem; }
.counts { display: flex; flex-wrap: wrap; gap: .5rem; list-style: none; padding: 0; margin: .4rem 0 .8rem; }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); }
td ul { margin: 0; padding-left: 1.1rem; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: .5rem; overflow: auto; max-height: 24rem; white-space: pre-wrap; word-break: break-word; }
.status { display: inline-block; padding: .05rem .45rem; border-radius: 999px; font-size: .8rem; font-weight: 600; border: 1px solid currentColor; white-space: nowrap; }
.status::before { content: ""; display: inline-block; width: .55em; height: .55em; border-radius: 50%; background: currentColor; margin-right: .35em; vertical-align: .05em; }
.s-COMPLETED { color: var(--ok); } .s-FAILED { color: var(--bad); } .s-RUNNING { color: var(--run); } .s-QUEUED, .s-PENDING { color: var(--wait); } .s-CANCELLED, .s-SKIPPED { color: var(--off); }
.s-SCHEDULED { color: var(--wait); } .s-FIRED { color: var(--ok); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-word; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 1rem; }
.dag { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; background: var(--soft); }
.dag svg { display: block; }
.dag .node rect { fill: #fff; stroke-width: 2; }
.dag .node text { font-size: 12px; fill: var(--fg); }
.dag .edge { stroke: var(--muted); stroke-width: 1.5; fill: none; marker-end: url(#arrow); }
.dag a:focus rect { stroke-width: 4; }
.task { border: 1px solid var(--line); border-radius: 6px; padding: .2rem .8rem .8rem; margin: .8rem 0; }
.task > h3 { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
ol.timeline { list-style: none; padding: 0; margin: .4rem 0; border-left: 3px solid var(--line); }
ol.timeline li { padding: .3rem .6rem; margin-left: .4rem; }
ol.timeline li.future { opacity: .35; }
ol.timeline li.future .seen { display: none; }
ol.timeline li.current { background: #ddf4ff; border-radius: 6px; }
.stepper { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
ul.logs { list-style: none; padding: 0; margin: 0; font-family: ui-monospace, monospace; font-size: .82rem; max-height: 20rem; overflow: auto; }
ul.logs li { padding: .1rem 0; border-bottom: 1px dashed var(--line); } ul.logs .warn { color: var(--wait); } ul.logs .error { color: var(--bad); }
.muted { color: var(--muted); }
.notice { padding: .5rem .8rem; border-radius: 6px; background: #fff8c5; border: 1px solid #d4a72c; }
.error-box { padding: .5rem .8rem; border-radius: 6px; background: #ffebe9; border: 1px solid var(--bad); }
progress { width: 100%; max-width: 24rem; height: 1rem; }
.signin { max-width: 24rem; margin: 3rem auto; display: flex; flex-direction: column; gap: .8rem; }
.signin label { display: flex; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 640px) {
  main { padding: .6rem; }
  .hide-narrow { display: none; }
  header.top form { margin-left: 0; }
}
`;
