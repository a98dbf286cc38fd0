// Building blocks shared by the scenario files: thresholds, arrival-rate
// executors expressed in HTTP requests/s, stage/phase tagging and a seed preflight.
import exec from 'k6/execution';
import { config, ENDPOINTS, durationMs, fmtDuration, iterationsPerMinute, requestsPerJourney, vuPool } from './config.js';
import { KNOWN_ERROR_CODES } from './metrics.js';
import { seedDemand } from './journey.js';
import { assertAuthConfigured } from './auth.js';

export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

// Threshold entry; abortOnFail is always false so every run goes to the end and
// writes its summary.
export function t(expr) {
  return { threshold: expr, abortOnFail: false };
}

// The gating thresholds every scenario shares, plus per-endpoint submetrics (which
// is also what makes k6 put `metric{endpoint:X}` entries into summary.json).
export function standardThresholds({ endpoints = ENDPOINTS, p95Ms = config.p95Ms } = {}) {
  const th = {
    http_req_failed: [t('rate==0')],
    unexpected_errors: [t('count==0')],
    checks: [t('rate==1')],
    [`http_req_duration`]: [t(`p(95)<${p95Ms}`)],
  };
  for (const ep of endpoints) {
    th[`http_req_duration{endpoint:${ep}}`] = [t(`p(95)<${p95Ms}`)];
    th[`http_reqs{endpoint:${ep}}`] = [t('count>=0')];
    th[`http_req_failed{endpoint:${ep}}`] = [t('rate==0')];
    th[`unexpected_errors{endpoint:${ep}}`] = [t('count>=0')];
  }
  return Object.assign(th, KNOWN_CODES_THRESHOLDS);
}

// unexpected_errors{code:X} for the well-known problem codes (breakdown only).
export const KNOWN_CODES_THRESHOLDS = Object.fromEntries(
  KNOWN_ERROR_CODES.map((code) => [`unexpected_errors{code:${code}}`, [t('count>=0')]]),
);

// Per-segment submetrics (segment = a stress stage or a spike phase), so the
// summary carries p95 / error rate / request count for each one.
export function segmentThresholds(key, labels, { p95Ms = config.p95Ms, endpoints = [] } = {}) {
  const th = {};
  for (const l of labels) {
    th[`http_req_duration{${key}:${l}}`] = [t(`p(95)<${p95Ms}`)];
    th[`http_req_failed{${key}:${l}}`] = [t('rate==0')];
    th[`http_reqs{${key}:${l}}`] = [t('count>=0')];
    th[`unexpected_errors{${key}:${l}}`] = [t('count>=0')];
    th[`refused_requests{${key}:${l}}`] = [t('count>=0')];
    th[`journey_duration{${key}:${l}}`] = [t('max>=0')];
    th[`journeys_completed{${key}:${l}}`] = [t('count>=0')];
    for (const ep of endpoints) th[`http_req_duration{${key}:${l},endpoint:${ep}}`] = [t(`p(95)<${p95Ms}`)];
  }
  return th;
}

// constant-arrival-rate at `reqPerSec` HTTP requests/s.
export function constantRateScenario(reqPerSec, duration, extra = {}) {
  return Object.assign(
    {
      executor: 'constant-arrival-rate',
      rate: iterationsPerMinute(reqPerSec),
      timeUnit: '1m',
      duration,
      gracefulStop: '10s',
    },
    vuPool(reqPerSec),
    extra,
  );
}

// Segments: [{label, reqPerSec, ms}] held back to back (instant jumps between them).
export function steppedRateScenario(segments, extra = {}) {
  const stages = [];
  segments.forEach((s, i) => {
    if (i > 0) stages.push({ target: iterationsPerMinute(s.reqPerSec), duration: '0s' });
    stages.push({ target: iterationsPerMinute(s.reqPerSec), duration: fmtDuration(s.ms) });
  });
  const peak = Math.max(...segments.map((s) => s.reqPerSec));
  return Object.assign(
    {
      executor: 'ramping-arrival-rate',
      startRate: iterationsPerMinute(segments[0].reqPerSec),
      timeUnit: '1m',
      stages,
      gracefulStop: '10s',
    },
    vuPool(peak),
    extra,
  );
}

// Tags every metric the VU emits from now on (http_*, checks, custom metrics)
// with `key: <label of the segment the scenario clock is in>`.
export function tagSegment(key, segments) {
  const elapsed = Date.now() - exec.scenario.startTime;
  let acc = 0;
  let label = segments[segments.length - 1].label;
  for (const s of segments) {
    acc += s.ms;
    if (elapsed < acc) {
      label = s.label;
      break;
    }
  }
  exec.vu.metrics.tags[key] = label;
  return label;
}

// setup() helper: warns when the planned traffic would exhaust the seeded balances
// or stock (which would show up as INSUFFICIENT_BALANCE / OUT_OF_STOCK failures).
export function preflight(name, totalRequests) {
  assertAuthConfigured();
  const d = seedDemand(totalRequests);
  const info = {
    scenario: name,
    baseUrl: config.baseUrl,
    plannedRequests: Math.round(totalRequests),
    requestsPerJourney: requestsPerJourney(),
    demand: d,
    seed: { users: config.users, products: config.products, balance: config.balance, stock: config.stock },
  };
  if (config.debug) console.log(`preflight ${JSON.stringify(info)}`);
  if (d.unitsPerProduct > config.stock) {
    console.warn(
      `preflight: ~${d.unitsPerProduct} units per product will be ordered but STOCK=${config.stock}; ` +
        `seed with STOCK>=${Math.ceil(d.unitsPerProduct * 1.2)} or expect OUT_OF_STOCK failures`,
    );
  }
  if (d.spendPerUserAvgPrice > config.balance) {
    console.warn(
      `preflight: each user will spend ~${d.spendPerUserAvgPrice} KRW (avg price) but BALANCE=${config.balance}; ` +
        `seed with BALANCE>=${d.spendPerUserMaxPrice} (or more USERS) or expect INSUFFICIENT_BALANCE failures`,
    );
  }
  return info;
}

export function totalRequests(segments) {
  return segments.reduce((a, s) => a + (s.reqPerSec * s.ms) / 1000, 0);
}

export { durationMs, fmtDuration };
