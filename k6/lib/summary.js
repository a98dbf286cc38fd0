// Shared handleSummary: writes `${REPORT_DIR}/summary.json` (k6's full summary
// data object plus a `suite` block describing the run) and prints a compact text
// summary to stdout. The jslib textSummary is not reachable offline and k6 v1.1
// has no importable summary module, so the text rendering is hand-written here.
//
// NOTE: k6 does not create directories; REPORT_DIR must exist (the xtask creates
// it; by hand: `mkdir -p reports/latest`).
import { config } from './config.js';

function fmtMs(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return '-';
  if (v >= 60000) return `${(v / 60000).toFixed(2)}m`;
  if (v >= 1000) return `${(v / 1000).toFixed(2)}s`;
  if (v >= 1) return `${v.toFixed(2)}ms`;
  return `${(v * 1000).toFixed(0)}µs`;
}

function fmtNum(v, digits = 2) {
  if (v === undefined || v === null) return '-';
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(digits);
}

function fmtBytes(v) {
  if (v >= 1 << 30) return `${(v / (1 << 30)).toFixed(1)} GiB`;
  if (v >= 1 << 20) return `${(v / (1 << 20)).toFixed(1)} MiB`;
  if (v >= 1 << 10) return `${(v / (1 << 10)).toFixed(1)} KiB`;
  return `${Math.round(v)} B`;
}

function rank(k, order) {
  const i = order.indexOf(k);
  return i < 0 ? order.length : i;
}

function pctOf(k) {
  const m = /^p\((\d+(?:\.\d+)?)\)$/.exec(k);
  return m ? Number(m[1]) : 1000;
}

function metricLine(name, m) {
  const v = m.values || {};
  switch (m.type) {
    case 'trend': {
      const f = m.contains === 'time' ? fmtMs : (x) => fmtNum(x);
      const order = ['avg', 'min', 'med', 'max'];
      const keys = Object.keys(v)
        .filter((k) => k !== 'count')
        .sort((a, b) => rank(a, order) - rank(b, order) || pctOf(a) - pctOf(b) || (a < b ? -1 : 1));
      const parts = keys.map((k) => `${k}=${f(v[k])}`);
      if (v.count !== undefined) parts.push(`count=${v.count}`);
      return `${name} ${parts.join(' ')}`;
    }
    case 'counter':
      if (m.contains === 'data') return `${name} ${fmtBytes(v.count)} ${fmtBytes(v.rate)}/s`;
      return `${name} ${v.count} ${fmtNum(v.rate)}/s`;
    case 'rate': {
      const total = (v.passes || 0) + (v.fails || 0);
      return `${name} ${(100 * (v.rate || 0)).toFixed(2)}% ${v.passes || 0} of ${total}`;
    }
    case 'gauge':
      return `${name} value=${fmtNum(v.value)} min=${fmtNum(v.min)} max=${fmtNum(v.max)}`;
    default:
      return `${name} ${JSON.stringify(v)}`;
  }
}

function collectChecks(group, out) {
  for (const c of group.checks || []) out.push(c);
  for (const g of group.groups || []) collectChecks(g, out);
  return out;
}

export function textSummary(data, title) {
  const lines = [];
  const metrics = data.metrics || {};
  const names = Object.keys(metrics);
  const bases = names.filter((n) => n.indexOf('{') < 0).sort();
  // submetrics of metrics that never got a sample still have a base entry in
  // data.metrics only if they had thresholds; keep orphans too
  const orphans = names.filter((n) => n.indexOf('{') >= 0 && bases.indexOf(n.slice(0, n.indexOf('{'))) < 0);

  const durMs = data.state && data.state.testRunDurationMs;
  lines.push('');
  lines.push(`█ ${title || 'k6'} — ${durMs !== undefined ? fmtMs(durMs) : ''}`);

  // thresholds
  const thr = [];
  let failed = 0;
  for (const n of names.sort()) {
    const t = metrics[n].thresholds;
    if (!t) continue;
    for (const expr of Object.keys(t)) {
      const ok = t[expr].ok;
      if (!ok) failed += 1;
      thr.push(`  ${ok ? '✓' : '✗'} ${n}: ${expr}   (${metricLine('', metrics[n]).trim()})`);
    }
  }
  if (thr.length) {
    lines.push('');
    lines.push(`THRESHOLDS: ${failed === 0 ? 'all passed' : failed + ' FAILED'} (${thr.length})`);
    // failed first, then passed
    thr.sort((a, b) => (a.indexOf('✗') === 2 ? 0 : 1) - (b.indexOf('✗') === 2 ? 0 : 1));
    for (const l of thr) lines.push(l);
  }

  // checks
  const checks = collectChecks(data.root_group || {}, []);
  if (checks.length) {
    lines.push('');
    lines.push('CHECKS:');
    for (const c of checks) {
      const total = c.passes + c.fails;
      lines.push(`  ${c.fails === 0 ? '✓' : '✗'} ${c.name}: ${c.passes}/${total}${c.fails ? ' (' + c.fails + ' failed)' : ''}`);
    }
  }

  // metrics with their submetrics
  lines.push('');
  lines.push('METRICS:');
  for (const b of bases) {
    lines.push(`  ${metricLine(b, metrics[b])}`);
    const subs = names.filter((n) => n.startsWith(b + '{')).sort();
    for (const s of subs) lines.push(`    ${metricLine(s.slice(b.length), metrics[s])}`);
  }
  for (const o of orphans.sort()) lines.push(`  ${metricLine(o, metrics[o])}`);
  lines.push('');
  return lines.join('\n');
}

// Returns the handleSummary result object. `suite` is merged into the JSON as a
// top-level "suite" key (scenario name, effective config, stage/phase labels).
export function summarize(data, suite = {}) {
  const reqs = data.metrics && data.metrics.http_reqs ? data.metrics.http_reqs.values.count : 0;
  // setup() of every scenario returns an object, so its absence means setup threw
  // (k6 exits 107 but still calls handleSummary with empty metrics that pass).
  const outcome = data.setup_data === undefined ? 'setup-failed' : reqs > 0 ? 'ran' : 'no-requests';
  const out = Object.assign({}, data, {
    suite: Object.assign(
      {
        outcome,
        generatedAt: new Date().toISOString(),
        reportDir: config.reportDir,
        baseUrl: config.baseUrl,
        p95Ms: config.p95Ms,
        profile: config.profile,
      },
      suite,
    ),
  });
  const path = `${config.reportDir}/summary.json`;
  return {
    [path]: JSON.stringify(out, null, 2),
    stdout:
      textSummary(data, suite.scenario ? `k6 ${suite.scenario}` : 'k6') +
      (outcome === 'ran' ? '' : `!! run outcome: ${outcome} — the thresholds above are meaningless\n`) +
      `summary.json -> ${path}\n`,
  };
}

// Convenience: `export const handleSummary = handleSummaryFor({scenario: 'load'})`.
export function handleSummaryFor(suite) {
  return (data) => summarize(data, suite);
}
