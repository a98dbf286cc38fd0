// Spike: a steady BASE_RATE req/s (default 100) for the whole run, and on top of it
// a surge of SPIKE_VUS closed-loop virtual users (default 550, the old service's
// peak) that arrive within SURGE_RAMP (5s), stay for SURGE_DURATION (30s) and leave
// within SURGE_RAMP. Surge users behave like real clients: a refused request (429 or
// 503, with Retry-After) ends their journey and they wait Retry-After before the next.
//
// Every sample is tagged `phase`: baseline (before the surge), surge (the surge
// window, ramps included), then recovery-5, recovery-10, ... (5 s windows after the
// surge has left, RECOVERY_DURATION in all, default 60s). Each phase gets submetrics
// in summary.json, so the report can say how long p95 took to return to baseline
// and that the surge's failures were all fast refusals.
import exec from 'k6/execution';
import { sleep } from 'k6';
import { config, durationMs, fmtDuration, positiveNum, requestsPerJourney, vuPool } from './lib/config.js';
import { journey } from './lib/journey.js';
import {
  constantRateScenario,
  preflight,
  segmentThresholds,
  standardThresholds,
  SUMMARY_TREND_STATS,
} from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

const BASE_RATE = positiveNum('BASE_RATE', 100);
const SPIKE_VUS = Math.round(positiveNum('SPIKE_VUS', 550));
const BASELINE_MS = durationMs(__ENV.BASELINE_DURATION || '30s');
const RAMP_MS = durationMs(__ENV.SURGE_RAMP || '5s');
const SURGE_MS = durationMs(__ENV.SURGE_DURATION || '30s');
const RECOVERY_MS = durationMs(__ENV.RECOVERY_DURATION || '60s');
const WINDOW_MS = 5000;
// How long a refused surge user waits when the answer carries no Retry-After.
const DEFAULT_BACKOFF_S = 1;

const SURGE_END_MS = BASELINE_MS + RAMP_MS + SURGE_MS + RAMP_MS;
const TOTAL_MS = SURGE_END_MS + RECOVERY_MS;

const PHASES = [
  { label: 'baseline', fromMs: 0, ms: BASELINE_MS },
  { label: 'surge', fromMs: BASELINE_MS, ms: SURGE_END_MS - BASELINE_MS },
];
for (let from = SURGE_END_MS; from < TOTAL_MS; from += WINDOW_MS) {
  const ms = Math.min(WINDOW_MS, TOTAL_MS - from);
  PHASES.push({ label: `recovery-${(from - SURGE_END_MS + ms) / 1000}`, fromMs: from, ms });
}
const LABELS = PHASES.map((p) => p.label);

export const options = {
  scenarios: {
    baseline: constantRateScenario(BASE_RATE, fmtDuration(TOTAL_MS), vuPool(BASE_RATE * 3)),
    surge: {
      executor: 'ramping-vus',
      startTime: fmtDuration(BASELINE_MS),
      startVUs: 0,
      stages: [
        { target: SPIKE_VUS, duration: fmtDuration(RAMP_MS) },
        { target: SPIKE_VUS, duration: fmtDuration(SURGE_MS) },
        { target: 0, duration: fmtDuration(RAMP_MS) },
      ],
      gracefulRampDown: '5s',
      gracefulStop: '5s',
    },
  },
  thresholds: Object.assign(
    standardThresholds(),
    segmentThresholds('phase', LABELS, { endpoints: ['create', 'pay', 'get', 'list', 'cancel'] }),
  ),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  // The surge's closed-loop users issue at most one request per ~5 ms each.
  const surgeBound = SPIKE_VUS * 200 * ((SURGE_MS + RAMP_MS) / 1000);
  return preflight('spike', (BASE_RATE * TOTAL_MS) / 1000 + surgeBound);
}

// Tags every sample with the phase of the test clock (not the scenario's: the surge
// scenario starts BASELINE_MS after the test).
function tagPhase() {
  const offset = exec.scenario.name === 'surge' ? BASELINE_MS : 0;
  const elapsed = Date.now() - exec.scenario.startTime + offset;
  let label = PHASES[PHASES.length - 1].label;
  for (const p of PHASES) {
    if (elapsed < p.fromMs + p.ms) {
      label = p.label;
      break;
    }
  }
  exec.vu.metrics.tags.phase = label;
}

export default function () {
  tagPhase();
  const completed = journey();
  if (!completed && exec.scenario.name === 'surge') {
    // A refused client backs off as told (Retry-After is 1 s from the gateway and the
    // breaker alike) instead of spinning on refusals.
    sleep(DEFAULT_BACKOFF_S);
  }
}

export const handleSummary = handleSummaryFor({
  scenario: 'spike',
  segmentTag: 'phase',
  phases: PHASES.map((p) => ({
    phase: p.label,
    targetRate: p.label === 'surge' ? 0 : BASE_RATE,
    durationMs: p.ms,
    surgeVus: p.label === 'surge' ? SPIKE_VUS : 0,
  })),
  requestsPerJourney: requestsPerJourney(),
  p95Ms: config.p95Ms,
});
