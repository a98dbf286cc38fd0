// Bench (used by `cargo xtask bench`): closed loop. VUS virtual users (default 8)
// each run the journey back to back with no think time for DURATION (default 15s),
// so throughput is whatever the service sustains at that concurrency. The xtask
// sets CANCEL_EVERY=0, LIST_EVERY=0, IDEMPOTENCY=0 for a pure create -> pay -> get
// loop. Thresholds are the load ones, but a failing p95 is expected here and only
// reported (nothing aborts).
import { config, requestsPerJourney } from './lib/config.js';
import { assertAuthConfigured } from './lib/auth.js';
import { journey } from './lib/journey.js';
import { standardThresholds, SUMMARY_TREND_STATS } from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

const VUS = __ENV.VUS ? config.vus : 8;
const DURATION = __ENV.DURATION || '15s';

export const options = {
  scenarios: {
    bench: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '10s' },
  },
  thresholds: standardThresholds(),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup() {
  assertAuthConfigured();
  return { scenario: 'bench', vus: VUS, duration: DURATION };
}

export default function () {
  journey();
}

export const handleSummary = handleSummaryFor({
  scenario: 'bench',
  vus: VUS,
  duration: DURATION,
  requestsPerJourney: requestsPerJourney(),
});
