// Soak: the load journey at a constant RATE of HTTP requests/s (default 200) for
// DURATION (default 1h). Same thresholds as load; tokens are re-minted before they
// expire. Seed enough BALANCE/STOCK for the whole hour (setup() warns if not).
import { config, durationMs, requestsPerJourney, iterationsPerMinute } from './lib/config.js';
import { journey } from './lib/journey.js';
import { constantRateScenario, preflight, standardThresholds, SUMMARY_TREND_STATS } from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

const DURATION = __ENV.DURATION || '1h';
const RATE = config.rate;

export const options = {
  scenarios: { soak: constantRateScenario(RATE, DURATION) },
  thresholds: standardThresholds(),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return preflight('soak', (RATE * durationMs(DURATION)) / 1000);
}

export default function () {
  journey();
}

export const handleSummary = handleSummaryFor({
  scenario: 'soak',
  rate: RATE,
  duration: DURATION,
  requestsPerJourney: requestsPerJourney(),
  iterationsPerMinute: iterationsPerMinute(RATE),
});
