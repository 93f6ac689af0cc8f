// The report for people: Markdown (terminals, tickets) and one self-contained HTML file with inline SVG
// charts (latency distributions side by side, match rate over time) that reads offline.
import { MAX_PATHS, type FeatureReport, type Report } from "./build.ts";

const pct = (x: number | null, d = 2) => (x === null ? "n/a" : `${(x * 100).toFixed(d)} %`);
/** A difference's share of pairs, and its share on the route the noise rate beside it is from, when that differs. */
const rateCell = (d: { rate: number; route_rate: number }) => (Math.abs(d.route_rate - d.rate) < 0.00005 ? pct(d.rate) : `${pct(d.rate)} (${pct(d.route_rate)} on its route)`);
const ms = (x: number | null) => (x === null ? "n/a" : x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(0)} ms`);
const signed = (x: number | null) => (x === null ? "n/a" : `${x > 0 ? "+" : ""}${x.toFixed(1)} %`);
const show = (v: unknown) => {
  const s = v === null || v === undefined ? "(absent)" : typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

function significance(f: FeatureReport): string {
  const mw = f.latency.mann_whitney;
  const hl = f.latency.hodges_lehmann_ms;
  if (!mw || !hl) return "n/a (no pairs with both latencies)";
  const dir = hl.shift < 0 ? "new faster" : hl.shift > 0 ? "new slower" : "no shift";
  const m = f.latency.method;
  const how = m.sampled < m.pairs
    ? ` Tests on a seeded random sample of ${m.sampled.toLocaleString("en-US")} of ${m.pairs.toLocaleString("en-US")} pairs; quantiles from 7 %-wide buckets (within 3.5 %).`
    : ` Exact, on all ${m.pairs.toLocaleString("en-US")} pairs with both latencies.`;
  return `Mann-Whitney p ${mw.p < 0.0001 ? "< 0.0001" : `= ${mw.p.toFixed(4)}`} (${mw.p < 0.05 ? "significant" : "not significant"} at 5 %); Hodges-Lehmann shift ${hl.shift.toFixed(2)} ms [95 % CI ${hl.low.toFixed(2)}, ${hl.high.toFixed(2)}] (${dir}).${how}`;
}

const untracked = (f: FeatureReport) => (f.untracked_paths > 0 ? ` ${f.untracked_paths} more differences on paths beyond the ${MAX_PATHS.toLocaleString("en-US")} tracked are not itemised.` : "");

export function renderMarkdown(r: Report): string {
  const out: string[] = [];
  out.push(`# Switchyard shadow comparison report`, "", `Window: ${r.since} to ${r.until}. Generated ${r.generated_at}.`, "");
  out.push(`Noise rule (Diffy): a field is a real difference when its rate exceeds its noise rate by a relative ${r.noise_rule.relative} and an absolute ${(r.noise_rule.absolute * 100).toFixed(3)} %.`, "");
  for (const f of [r.overall, ...r.features]) {
    if (f === r.overall && r.features.length === 1) continue;
    out.push(`## ${f.feature}: ${f.verdict}`, "");
    out.push(`${f.pairs} pairs, ${f.compared} compared, ${f.matched} identical (${pct(f.match_rate)}), ${f.status_mismatches} status mismatches.${f.enough_data ? "" : ` Fewer than ${r.thresholds.min_pairs} compared pairs: no verdict.`}`, "");
    if (f.sampling.configured_percent !== null || f.sampling.mirrored > 0) {
      out.push(`Sampling: ${f.sampling.mirrored} mirrored${f.sampling.configured_percent !== null ? `, configured ${f.sampling.configured_percent} %, effective ${f.sampling.effective_percent} %` : ""}${f.sampling.capped ? " (the per-backend shadow cap bound: the effective rate is lower than configured)" : ""}. Skipped: ${Object.entries(f.sampling.skipped).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}.`, "");
    }
    out.push("### Success criteria", "", "| Metric | Baseline (legacy) | Target (new) | Actual (new) | Status |", "|---|---|---|---|---|");
    for (const k of f.kpis) out.push(`| ${k.metric} | ${k.baseline} | ${k.target} | ${k.actual} | ${k.status} |`);
    out.push("", "### Latency", "", "| | legacy | new | change |", "|---|---|---|---|");
    out.push(`| p50 | ${ms(f.latency.legacy.p50)} | ${ms(f.latency.new.p50)} | ${signed(f.latency.p50_change_percent)} |`);
    out.push(`| p95 | ${ms(f.latency.legacy.p95)} | ${ms(f.latency.new.p95)} | ${signed(f.latency.p95_change_percent)} |`);
    out.push(`| p99 | ${ms(f.latency.legacy.p99)} | ${ms(f.latency.new.p99)} | ${signed(f.latency.p99_change_percent)} |`);
    out.push("", significance(f), "");
    out.push(`Errors: legacy ${f.errors.legacy.count} (${pct(f.errors.legacy.rate)}, ${f.errors.legacy.timeouts} timeouts), new ${f.errors.new.count} (${pct(f.errors.new.rate)}, ${f.errors.new.timeouts} timeouts).`, "");
    out.push("### Differences (noise excluded)", "");
    if (f.differences.length === 0) out.push("None.", "");
    else {
      out.push("| JSON path / field | kind | pairs | rate | noise rate | example legacy | example new |", "|---|---|---|---|---|---|---|");
      for (const d of f.differences.slice(0, 25)) out.push(`| \`${d.path}\` | ${d.kinds.join(", ")} | ${d.count} | ${rateCell(d)} | ${pct(d.noise_rate)} | \`${show(d.examples[0]?.legacy)}\` | \`${show(d.examples[0]?.new)}\` |`);
      out.push(untracked(f).trim(), "");
    }
    out.push("### Noise (excluded: differs between two answers of the same backend)", "");
    out.push(f.noise.length === 0 ? "None learned." : f.noise.map((d) => `- \`${d.path}\`: differs in ${pct(d.rate)} of pairs, ${pct(d.noise_rate)} of replays`).join("\n"), "");
    out.push("### Status codes (legacy x new)", "", "| legacy | new | pairs |", "|---|---|---|");
    for (const c of f.confusion) out.push(`| ${c.legacy} | ${c.new} | ${c.count} |`);
    if (f.routes.length > 1) {
      out.push("", "### Routes", "", "| route | pairs | identical |", "|---|---|---|");
      for (const rt of f.routes) out.push(`| ${rt.route} | ${rt.pairs} | ${pct(rt.match_rate)} |`);
    }
    if (f.presets.length > 0) out.push("", `Presets applied: ${f.presets.map((p) => `${p.name} (${p.pairs} pairs: ${r.presets_available[p.name] ?? ""})`).join("; ")}.`);
    out.push("");
  }
  return out.join("\n");
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** Markdown-ish tables to HTML, and charts per feature. */
export function renderHtml(r: Report): string {
  const sections = [r.overall, ...r.features].filter((f) => !(f === r.overall && r.features.length === 1)).map((f) => featureHtml(f, r)).join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Switchyard shadow report ${esc(r.since)} - ${esc(r.until)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:1em 1.5em;color:#1d1d1f}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.92em;background:#f6f6f6;padding:0 .2em}
.PASS{color:#1b7f3b;font-weight:700}.FAIL{color:#b00020;font-weight:700}.NA,.INSUFFICIENT{color:#8a5a00;font-weight:700}
.legacy{color:#8a5a00}.new{color:#0b62a4}.charts{display:flex;flex-wrap:wrap;gap:2em}.muted{color:#666}
</style></head><body>
<h1>Switchyard shadow comparison report</h1>
<p class="muted">Window ${esc(r.since)} to ${esc(r.until)}; generated ${esc(r.generated_at)}. Noise rule (Diffy): real difference when the rate exceeds the noise rate by a relative ${r.noise_rule.relative} and an absolute ${(r.noise_rule.absolute * 100).toFixed(3)} %.</p>
${sections}
</body></html>
`;
}

function featureHtml(f: FeatureReport, r: Report): string {
  const cls = (s: string) => (s === "N/A" ? "NA" : s.split(" ")[0]!);
  const kpis = f.kpis.map((k) => `<tr><td>${esc(k.metric)}</td><td>${esc(k.baseline)}</td><td>${esc(k.target)}</td><td>${esc(k.actual)}</td><td class="${cls(k.status)}">${k.status}</td></tr>`).join("");
  const diffs =
    f.differences.length === 0
      ? "<p>None.</p>"
      : `<table><tr><th>JSON path / field</th><th>kind</th><th>pairs</th><th>rate</th><th>noise rate</th><th>examples (legacy → new)</th></tr>${f.differences
          .slice(0, 50)
          .map((d) => `<tr><td><code>${esc(d.path)}</code></td><td>${esc(d.kinds.join(", "))}</td><td class="n">${d.count}</td><td class="n">${esc(rateCell(d))}</td><td class="n">${pct(d.noise_rate)}</td><td>${d.examples.map((e) => `<code>${esc(show(e.legacy))}</code> → <code>${esc(show(e.new))}</code>`).join("<br>")}</td></tr>`)
          .join("")}</table>`;
  const noise = f.noise.length === 0 ? "<p>None learned.</p>" : `<ul>${f.noise.map((d) => `<li><code>${esc(d.path)}</code>: ${pct(d.rate)} of pairs, ${pct(d.noise_rate)} of replays</li>`).join("")}</ul>`;
  const legacyCodes = [...new Set(f.confusion.map((c) => c.legacy))].sort();
  const newCodes = [...new Set(f.confusion.map((c) => c.new))].sort();
  const cell = (l: string, n: string) => f.confusion.find((c) => c.legacy === l && c.new === n)?.count ?? 0;
  const confusion = `<table><tr><th>legacy \\ new</th>${newCodes.map((n) => `<th>${esc(n)}</th>`).join("")}</tr>${legacyCodes.map((l) => `<tr><th>${esc(l)}</th>${newCodes.map((n) => `<td class="n"${l !== n && cell(l, n) > 0 ? ' style="background:#fde7ea"' : ""}>${cell(l, n)}</td>`).join("")}</tr>`).join("")}</table>`;
  return `<section>
<h2>${esc(f.feature)}: <span class="${cls(f.verdict)}">${f.verdict}</span></h2>
<p>${f.pairs} pairs, ${f.compared} compared, ${f.matched} identical (<b>${pct(f.match_rate)}</b>), ${f.status_mismatches} status mismatches.${f.enough_data ? "" : ` <b>Fewer than ${r.thresholds.min_pairs} compared pairs: no verdict.</b>`}
${f.sampling.mirrored > 0 ? `Sampling: ${f.sampling.mirrored} mirrored${f.sampling.configured_percent !== null ? `, configured ${f.sampling.configured_percent} %, effective ${f.sampling.effective_percent} %` : ""}${f.sampling.capped ? " <b>(shadow cap bound: effective rate below configured)</b>" : ""}.` : ""}</p>
<h3>Success criteria</h3>
<table><tr><th>Metric</th><th>Baseline (legacy)</th><th>Target (new)</th><th>Actual (new)</th><th>Status</th></tr>${kpis}</table>
<h3>Latency</h3>
<table><tr><th></th><th class="legacy">legacy</th><th class="new">new</th><th>change</th></tr>
<tr><td>p50</td><td class="n">${ms(f.latency.legacy.p50)}</td><td class="n">${ms(f.latency.new.p50)}</td><td class="n">${signed(f.latency.p50_change_percent)}</td></tr>
<tr><td>p95</td><td class="n">${ms(f.latency.legacy.p95)}</td><td class="n">${ms(f.latency.new.p95)}</td><td class="n">${signed(f.latency.p95_change_percent)}</td></tr>
<tr><td>p99</td><td class="n">${ms(f.latency.legacy.p99)}</td><td class="n">${ms(f.latency.new.p99)}</td><td class="n">${signed(f.latency.p99_change_percent)}</td></tr></table>
<p>${esc(significance(f))}</p>
<p>Errors: legacy ${f.errors.legacy.count} (${pct(f.errors.legacy.rate)}, ${f.errors.legacy.timeouts} timeouts); new ${f.errors.new.count} (${pct(f.errors.new.rate)}, ${f.errors.new.timeouts} timeouts).</p>
<div class="charts">${latencyChart(f)}${timelineChart(f)}</div>
<h3>Differences (noise excluded)</h3>${diffs}${f.untracked_paths > 0 ? `<p>${esc(untracked(f))}</p>` : ""}
<h3>Noise (excluded)</h3>${noise}
<h3>Status codes (legacy × new)</h3>${confusion}
${f.routes.length > 1 ? `<h3>Routes</h3><table><tr><th>route</th><th>pairs</th><th>identical</th></tr>${f.routes.map((rt) => `<tr><td><code>${esc(rt.route)}</code></td><td class="n">${rt.pairs}</td><td class="n">${pct(rt.match_rate)}</td></tr>`).join("")}</table>` : ""}
${f.presets.length > 0 ? `<p>Presets applied: ${f.presets.map((p) => `<b>${esc(p.name)}</b> (${p.pairs} pairs) - ${esc(r.presets_available[p.name] ?? "")}`).join("; ")}</p>` : ""}
</section>`;
}

/** Latency distributions of both backends on shared log bins, as mirrored bars. */
function latencyChart(f: FeatureReport): string {
  const h = f.latency.histogram;
  if (h.edges_ms.length === 0) return "";
  const W = 720;
  const H = 300;
  const bins = h.legacy.length;
  const bw = (W - 40) / bins;
  // Each side scaled to its own tallest bar: a spike on one backend does not flatten the other's shape.
  const bar = (counts: number[], color: string, up: boolean) => {
    const max = Math.max(1, ...counts);
    return counts
      .map((c, i) => {
        const len = (c / max) * (H / 2 - 20);
        return `<rect x="${(30 + i * bw).toFixed(1)}" y="${(up ? H / 2 - len : H / 2).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${len.toFixed(1)}" fill="${color}"><title>${c} requests, ${h.edges_ms[i]}-${h.edges_ms[i + 1]} ms</title></rect>`;
      })
      .join("");
  };
  const label = (i: number) => `<text x="${(30 + i * bw).toFixed(1)}" y="${H - 2}" font-size="10" text-anchor="middle">${h.edges_ms[i]! < 10 ? h.edges_ms[i]!.toFixed(1) : Math.round(h.edges_ms[i]!)}</text>`;
  return `<figure><svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="latency distributions">
<line x1="30" x2="${W - 10}" y1="${H / 2}" y2="${H / 2}" stroke="#999"/>${bar(h.legacy, "#c98a1a", true)}${bar(h.new, "#3a8fd6", false)}
${[0, Math.floor(bins / 2), bins].map(label).join("")}<text x="34" y="12" font-size="11" fill="#8a5a00">legacy ↑</text><text x="34" y="${H - 14}" font-size="11" fill="#0b62a4">new ↓</text></svg>
<figcaption>Upstream latency, ms (log scale): legacy above, new below, each scaled to its own tallest bar (hover a bar for its count).</figcaption></figure>`;
}

/** Match rate over time. */
function timelineChart(f: FeatureReport): string {
  const t = f.timeline;
  if (t.length === 0) return "";
  const W = 480;
  const H = 200;
  const x = (i: number) => 30 + (i * (W - 50)) / Math.max(1, t.length - 1);
  const y = (rate: number) => 10 + (1 - rate) * (H - 40);
  const points = t.map((b, i) => `${x(i).toFixed(1)},${y(b.pairs === 0 ? 1 : b.matched / b.pairs).toFixed(1)}`).join(" ");
  return `<figure><svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img" aria-label="match rate over time">
<line x1="30" x2="${W - 20}" y1="${y(1)}" y2="${y(1)}" stroke="#ddd"/><line x1="30" x2="${W - 20}" y1="${y(0)}" y2="${y(0)}" stroke="#999"/>
<text x="2" y="${y(1) + 4}" font-size="10">100%</text><text x="8" y="${y(0) + 4}" font-size="10">0%</text>
<polyline fill="none" stroke="#1b7f3b" stroke-width="2" points="${points}"/>
${t.map((b, i) => `<circle cx="${x(i).toFixed(1)}" cy="${y(b.pairs === 0 ? 1 : b.matched / b.pairs).toFixed(1)}" r="2.5" fill="#1b7f3b"><title>${new Date(b.t).toISOString()}: ${b.matched}/${b.pairs} identical</title></circle>`).join("")}
<text x="30" y="${H - 4}" font-size="10">${new Date(t[0]!.t).toISOString().slice(11, 19)}</text><text x="${W - 80}" y="${H - 4}" font-size="10">${new Date(t.at(-1)!.t).toISOString().slice(11, 19)}</text></svg>
<figcaption>Identical answers (noise excluded) over time.</figcaption></figure>`;
}
