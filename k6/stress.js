// Stress: the load journey at stepped request rates: START_RATE (default 100)
// req/s, +STEP (default 100) every STEP_DURATION (default 30s), up to MAX_RATE
// (default 1500). Thresholds never abort, so the run always reaches the top step.
//
// Every metric sample is tagged `stage: <target req/s of the step>`, and each
// step gets submetrics in summary.json:
//   http_req_duration{stage:N}, http_req_failed{stage:N}, http_reqs{stage:N},
//   unexpected_errors{stage:N}, journey_duration{stage:N}, journeys_completed{stage:N},
//   http_req_duration{stage:N,endpoint:E}
// The step list is in summary.json under suite.stages.
import { config, durationMs, positiveNum, requestsPerJourney } from './lib/config.js';
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

const START_RATE = positiveNum('START_RATE', 100);
const STEP = positiveNum('STEP', 100);
const MAX_RATE = positiveNum('MAX_RATE', 1500);
const STEP_DURATION = __ENV.STEP_DURATION || '30s';
const STEP_MS = durationMs(STEP_DURATION);

const SEGMENTS = [];
for (let r = START_RATE; r < MAX_RATE + 1e-9; r += STEP) SEGMENTS.push({ label: String(r), reqPerSec: r, ms: STEP_MS });
if (SEGMENTS.length === 0 || SEGMENTS[SEGMENTS.length - 1].reqPerSec < MAX_RATE) {
  SEGMENTS.push({ label: String(MAX_RATE), reqPerSec: MAX_RATE, ms: STEP_MS });
}
const LABELS = SEGMENTS.map((s) => s.label);

export const options = {
  scenarios: { stress: steppedRateScenario(SEGMENTS) },
  thresholds: Object.assign(
    standardThresholds(),
    segmentThresholds('stage', LABELS, { endpoints: ['create', 'pay', 'get'] }),
  ),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return preflight('stress', totalRequests(SEGMENTS));
}

export default function () {
  tagSegment('stage', SEGMENTS);
  journey();
}

export const handleSummary = handleSummaryFor({
  scenario: 'stress',
  segmentTag: 'stage',
  stages: SEGMENTS.map((s) => ({ stage: s.label, targetRate: s.reqPerSec, durationMs: s.ms })),
  requestsPerJourney: requestsPerJourney(),
  maxRate: MAX_RATE,
  p95Ms: config.p95Ms,
});
