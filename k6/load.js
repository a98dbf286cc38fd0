// Load: the create -> pay -> get journey (plus occasional list/cancel) at a
// constant RATE of HTTP requests/s (default 200) for DURATION (default 10m).
// RATE counts requests, not journeys: the executor runs RATE / requestsPerJourney
// iterations per second (≈ RATE / 3.1 with the default mix), expressed per minute.
import { config, durationMs, requestsPerJourney, iterationsPerMinute } from './lib/config.js';
import { journey } from './lib/journey.js';
import { constantRateScenario, preflight, standardThresholds, SUMMARY_TREND_STATS } from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

const DURATION = __ENV.DURATION || '10m';
const RATE = config.rate;

export const options = {
  scenarios: { load: constantRateScenario(RATE, DURATION) },
  thresholds: standardThresholds(),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return preflight('load', (RATE * durationMs(DURATION)) / 1000);
}

export default function () {
  journey();
}

export const handleSummary = handleSummaryFor({
  scenario: 'load',
  rate: RATE,
  duration: DURATION,
  requestsPerJourney: requestsPerJourney(),
  iterationsPerMinute: iterationsPerMinute(RATE),
});
