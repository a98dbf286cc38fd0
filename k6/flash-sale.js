// Flash sale: VUS (default 200) VUs, each as a different user (user-1..user-VUS,
// shifted by USER_OFFSET), try once to buy 1 unit of FLASH_PRODUCT at the same
// instant. Exactly min(VUS, FLASH_STOCK) creates must get 201 and every other one
// 409 OUT_OF_STOCK: no oversell, no undersell.
//
// Executor: per-vu-iterations with 1 iteration, so each VU (= user) tries exactly
// once (shared-iterations could let a fast VU take two turns). All VUs mint their
// token first and then wait for a common start instant chosen in setup().
//
// Checked by thresholds on counters: flash_sold == min(VUS, FLASH_STOCK),
// flash_rejected == max(0, VUS - FLASH_STOCK). With FLASH_VERIFY=1 (default)
// teardown() also lists every participant's orders and counts the flash orders the
// service actually holds (created since setup): flash_verified_orders must equal
// flash_sold as well. Run it against a freshly seeded stack (stock is consumed).
import { sleep } from 'k6';
import exec from 'k6/execution';
import { check } from 'k6';
import { config } from './lib/config.js';
import { assertAuthConfigured, tokenFor } from './lib/auth.js';
import { createOrder, listOrders } from './lib/api.js';
import { checkProblem } from './lib/checks.js';
import { flashSold, flashRejected, flashVerifiedOrders, unexpectedErrors } from './lib/metrics.js';
import { t, KNOWN_CODES_THRESHOLDS, SUMMARY_TREND_STATS } from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

const VUS = config.vus;
const STOCK = config.flashStock;
const EXPECTED_SOLD = Math.min(VUS, STOCK);
const EXPECTED_REJECTED = Math.max(0, VUS - STOCK);
const VERIFY = !/^(0|false|no|off)$/i.test(__ENV.FLASH_VERIFY || '1');
const START_DELAY_MS = Number(__ENV.FLASH_START_DELAY_MS || 1000);

if (VUS > config.users) {
  throw new Error(`flash-sale needs one user per VU: VUS=${VUS} > USERS=${config.users}`);
}

function userForVu(vu) {
  return `user-${config.userOffset + ((vu - 1) % config.users) + 1}`;
}

const thresholds = {
  flash_sold: [t(`count==${EXPECTED_SOLD}`)],
  flash_rejected: [t(`count==${EXPECTED_REJECTED}`)],
  unexpected_errors: [t('count==0')],
  http_req_failed: [t('rate==0')],
  checks: [t('rate==1')],
  'http_req_duration{endpoint:create}': [t('max>=0')],
  'http_reqs{endpoint:create}': [t('count>=0')],
  'http_req_failed{endpoint:create}': [t('rate==0')],
  'http_reqs{status:201}': [t('count>=0')],
  'http_reqs{status:409}': [t('count>=0')],
};
if (VERIFY) {
  thresholds.flash_verified_orders = [t(`count==${EXPECTED_SOLD}`)];
  thresholds['http_req_duration{endpoint:list}'] = [t('max>=0')];
  thresholds['http_reqs{endpoint:list}'] = [t('count>=0')];
  thresholds['http_req_failed{endpoint:list}'] = [t('rate==0')];
}
Object.assign(thresholds, KNOWN_CODES_THRESHOLDS);

export const options = {
  scenarios: {
    flash_sale: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: __ENV.FLASH_MAX_DURATION || '2m',
      gracefulStop: '10s',
    },
  },
  thresholds,
  summaryTrendStats: SUMMARY_TREND_STATS,
  setupTimeout: '60s',
  teardownTimeout: '5m',
};

export function setup() {
  assertAuthConfigured();
  // Counters with no samples still appear (count 0) because they have thresholds.
  return { t0Ms: Date.now() - 1000, startAtMs: Date.now() + START_DELAY_MS };
}

export default function (data) {
  const userId = userForVu(exec.vu.idInTest);
  tokenFor(userId); // mint before the race
  const wait = data.startAtMs - Date.now();
  if (wait > 0) sleep(wait / 1000);

  const r = createOrder(userId, [{ productId: config.flashProduct, quantity: 1 }], {
    expected: [201, 409],
    tags: { flash: 'buy' },
  });
  if (r.res.status === 201) {
    if (r.ok) flashSold.add(1);
  } else if (r.res.status === 409) {
    if (checkProblem('create', r.res, r.body, 'OUT_OF_STOCK')) flashRejected.add(1);
  }
}

// Counts the flash orders the service holds for the participants, created since setup().
export function teardown(data) {
  if (!VERIFY) return;
  let found = 0;
  let listFailures = 0;
  for (let vu = 1; vu <= VUS; vu++) {
    const userId = userForVu(vu);
    let cursor = null;
    for (let page = 0; page < 50; page++) {
      const r = listOrders(userId, { limit: 50, cursor }, { tags: { flash: 'verify' } });
      if (!r.ok || !r.body) {
        listFailures += 1;
        break;
      }
      for (const o of r.body.orders) {
        const created = Date.parse(o.createdAt);
        const flash = (o.items || []).some((it) => it.productId === config.flashProduct);
        if (flash && created >= data.t0Ms && o.status !== 'CANCELLED') {
          found += (o.items || []).filter((it) => it.productId === config.flashProduct).reduce((a, it) => a + it.quantity, 0);
        }
      }
      cursor = r.body.nextCursor;
      if (!cursor) break;
    }
  }
  flashVerifiedOrders.add(found);
  const ok = check(found, { 'flash: service holds exactly the sold units': (n) => n === EXPECTED_SOLD });
  if (!ok) {
    unexpectedErrors.add(1, { endpoint: 'list', status: '200', code: 'FLASH_MISMATCH' });
    console.warn(`flash verify: service holds ${found} flash units for the participants, expected ${EXPECTED_SOLD}`);
  }
  if (listFailures) console.warn(`flash verify: ${listFailures} users' order lists could not be read`);
}

export const handleSummary = handleSummaryFor({
  scenario: 'flash-sale',
  vus: VUS,
  flashProduct: config.flashProduct,
  flashStock: STOCK,
  expectedSold: EXPECTED_SOLD,
  expectedRejected: EXPECTED_REJECTED,
  verify: VERIFY,
});
