// Spike: BASE_RATE req/s (default 100) for BASELINE_DURATION (30s), a surge to
// BASE_RATE x SPIKE_FACTOR (default 10x) for SURGE_DURATION (30s), then back to
// BASE_RATE for RECOVERY_DURATION (60s). Every metric sample is tagged
// `phase: baseline|surge|recovery`; each phase gets submetrics in summary.json
// (http_req_duration{phase:P}, http_req_failed{phase:P}, http_reqs{phase:P}, ...).
// Thresholds never abort.
import { config, durationMs, requestsPerJourney } from './lib/config.js';
import { journey } from './lib/journey.js';
import {
  preflight,
  segmentThresholds,
  standardThresholds,
  steppedRateScenario,
  tagSegment,
  totalRequests,
  SUMMARY_TREND_STATS,
} from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

function num(name, def) {
  const v = __ENV[name];
  const n = v === undefined || v === '' ? def : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`env ${name} must be a positive number, got ${v}`);
  return n;
}

const BASE_RATE = num('BASE_RATE', 100);
const SPIKE_FACTOR = num('SPIKE_FACTOR', 10);

const SEGMENTS = [
  { label: 'baseline', reqPerSec: BASE_RATE, ms: durationMs(__ENV.BASELINE_DURATION || '30s') },
  { label: 'surge', reqPerSec: BASE_RATE * SPIKE_FACTOR, ms: durationMs(__ENV.SURGE_DURATION || '30s') },
  { label: 'recovery', reqPerSec: BASE_RATE, ms: durationMs(__ENV.RECOVERY_DURATION || '60s') },
];

export const options = {
  scenarios: { spike: steppedRateScenario(SEGMENTS) },
  thresholds: Object.assign(
    standardThresholds(),
    segmentThresholds(
      'phase',
      SEGMENTS.map((s) => s.label),
      { endpoints: ['create', 'pay', 'get', 'list', 'cancel'] },
    ),
  ),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return preflight('spike', totalRequests(SEGMENTS));
}

export default function () {
  tagSegment('phase', SEGMENTS);
  journey();
}

export const handleSummary = handleSummaryFor({
  scenario: 'spike',
  segmentTag: 'phase',
  phases: SEGMENTS.map((s) => ({ phase: s.label, targetRate: s.reqPerSec, durationMs: s.ms })),
  requestsPerJourney: requestsPerJourney(),
  p95Ms: config.p95Ms,
});
