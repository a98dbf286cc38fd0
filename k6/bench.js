// Bench (used by `cargo xtask bench`): VUS closed-loop virtual users, each running the
// create -> pay -> get journey back to back for DURATION, so the service is measured at a
// fixed concurrency, the same concurrency at which the xtask drives the store directly.
import { config } from './lib/config.js';
import { journey } from './lib/journey.js';
import { preflight, standardThresholds, SUMMARY_TREND_STATS } from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

const VUS = parseInt(__ENV.VUS || '8', 10);
const DURATION = __ENV.DURATION || '15s';

export const options = {
  scenarios: {
    bench: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '5s' },
  },
  thresholds: standardThresholds(),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  return preflight('bench', 0);
}

export default function () {
  journey();
}

export const handleSummary = handleSummaryFor({ scenario: 'bench', vus: VUS, duration: DURATION, config: { cancelEvery: config.cancelEvery, listEvery: config.listEvery } });
