// Smoke (CI): the load journey at RATE HTTP requests/s (default 20) for DURATION
// (default 20s), with the load thresholds. ~130 journeys: every endpoint is hit,
// including cancel (1 in CANCEL_EVERY) and list (1 in LIST_EVERY).
import { config, durationMs, requestsPerJourney, iterationsPerMinute } from './lib/config.js';
import { journey } from './lib/journey.js';
import { constantRateScenario, preflight, standardThresholds, SUMMARY_TREND_STATS } from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

const DURATION = __ENV.DURATION || '20s';
const RATE = __ENV.RATE ? config.rate : 20;

export const options = {
  scenarios: { smoke: constantRateScenario(RATE, DURATION) },
  thresholds: standardThresholds(),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return preflight('smoke', (RATE * durationMs(DURATION)) / 1000);
}

export default function () {
  journey();
}

export const handleSummary = handleSummaryFor({
  scenario: 'smoke',
  rate: RATE,
  duration: DURATION,
  requestsPerJourney: requestsPerJourney(),
  iterationsPerMinute: iterationsPerMinute(RATE),
});
