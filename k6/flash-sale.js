// Flash sale, in one of two shapes.
//
// At once (the default): VUS (default 200) VUs, each as a different user (user-1..user-VUS,
// shifted by USER_OFFSET), try once to buy 1 unit of FLASH_PRODUCT at the same instant.
// Exactly min(VUS, FLASH_STOCK) creates must get 201 and every other one 409 OUT_OF_STOCK:
// no oversell, no undersell. Executor: per-vu-iterations with 1 iteration, so each VU (= user)
// tries exactly once. All VUs mint their token first and then wait for a common start
// instant chosen in setup(). Checked by thresholds on counters: flash_sold ==
// min(VUS, FLASH_STOCK), flash_rejected == max(0, VUS - FLASH_STOCK). With FLASH_VERIFY=1
// (default) teardown() also lists every participant's orders and counts the flash orders the
// service actually holds (created since setup): flash_verified_orders must equal flash_sold.
//
// At a rate (FLASH_RATE=<buyers per second>, for FLASH_DURATION, default 30s): buyers arrive
// at a constant rate (constant-arrival-rate), each iteration a buyer (a user of the pool, in
// turn) buying 1 unit of one of FLASH_PRODUCTS (comma-separated, default FLASH_PRODUCT; buyers
// take them in turn, so two products side by side see the same demand). A buyer behaves as a
// real client: it retries a throttled, refused or contended answer (503, 429,
// CONCURRENT_REQUEST, REQUEST_IN_PROGRESS) with its Idempotency-Key after Retry-After, RETRIES
// times (default 3 here). Each final answer is counted per product: flash_sold,
// flash_rejected (409 OUT_OF_STOCK), flash_gave_up (still 503/409 after the retries, tagged
// with the code). Thresholds: no product sells more than FLASH_STOCK, no unexpected answer.
// Whether the table holds exactly what was sold is checked by the caller (`cargo xtask
// loadtest flash-sale`, the drills), which reads the table.
//
// Run it against a freshly seeded stack (stock is consumed).
import { sleep } from 'k6';
import exec from 'k6/execution';
import { check } from 'k6';
import { config, durationMs, positiveNum } from './lib/config.js';
import { assertAuthConfigured, tokenFor } from './lib/auth.js';
import { createOrder, listOrders } from './lib/api.js';
import { checkProblem } from './lib/checks.js';
import {
  flashSold,
  flashRejected,
  flashGaveUp,
  flashVerifiedOrders,
  unexpectedErrors,
} from './lib/metrics.js';
import { t, KNOWN_CODES_THRESHOLDS, SUMMARY_TREND_STATS } from './lib/scenario.js';
import { handleSummaryFor } from './lib/summary.js';

const RATE = __ENV.FLASH_RATE ? positiveNum('FLASH_RATE', 1) : 0;
const AT_ONCE = RATE === 0;
const DURATION = __ENV.FLASH_DURATION || '30s';
durationMs(DURATION);
const PRODUCTS = (__ENV.FLASH_PRODUCTS || config.flashProduct)
  .split(',')
  .map((p) => p.trim())
  .filter((p) => p.length > 0);
const VUS = config.vus;
const STOCK = config.flashStock;
const EXPECTED_SOLD = Math.min(VUS, STOCK);
const EXPECTED_REJECTED = Math.max(0, VUS - STOCK);
const VERIFY = AT_ONCE && !/^(0|false|no|off)$/i.test(__ENV.FLASH_VERIFY || '1');
const START_DELAY_MS = Number(__ENV.FLASH_START_DELAY_MS || 1000);
// A buyer at a rate retries like a real client (see the header); the journey default is 0.
const BUYER_RETRIES = __ENV.RETRIES === undefined || __ENV.RETRIES === '' ? 3 : config.retries;
// Answers a buyer may end with after its retries: sold, sold out, or still refused.
const FINAL_STATUSES = AT_ONCE ? [201, 409] : [201, 409, 429, 503];

if (AT_ONCE && VUS > config.users) {
  throw new Error(`flash-sale needs one user per VU: VUS=${VUS} > USERS=${config.users}`);
}
if (AT_ONCE && PRODUCTS.length !== 1) {
  throw new Error('flash-sale at once sells one product: set FLASH_RATE for FLASH_PRODUCTS');
}

function userFor(n) {
  return `user-${config.userOffset + (n % config.users) + 1}`;
}

const thresholds = {
  unexpected_errors: [t('count==0')],
  http_req_failed: [t('rate==0')],
  checks: [t('rate==1')],
  'http_req_duration{endpoint:create}': [t('max>=0')],
  'http_reqs{endpoint:create}': [t('count>=0')],
  'http_req_failed{endpoint:create}': [t('rate==0')],
  'http_reqs{status:201}': [t('count>=0')],
  'http_reqs{status:409}': [t('count>=0')],
  'http_reqs{status:503}': [t('count>=0')],
  http_retries: [t('count>=0')],
};
if (AT_ONCE) {
  thresholds.flash_sold = [t(`count==${EXPECTED_SOLD}`)];
  thresholds.flash_rejected = [t(`count==${EXPECTED_REJECTED}`)];
} else {
  thresholds.flash_sold = [t('count>=0')];
  thresholds.flash_rejected = [t('count>=0')];
  thresholds.flash_gave_up = [t('count>=0')];
  for (const product of PRODUCTS) {
    // No oversell, per product: the one threshold a sale at a rate can hold to.
    thresholds[`flash_sold{product:${product}}`] = [t(`count<=${STOCK}`)];
    thresholds[`flash_rejected{product:${product}}`] = [t('count>=0')];
    thresholds[`flash_gave_up{product:${product}}`] = [t('count>=0')];
    thresholds[`http_req_duration{product:${product}}`] = [t('max>=0')];
  }
}
if (VERIFY) {
  thresholds.flash_verified_orders = [t(`count==${EXPECTED_SOLD}`)];
  thresholds['http_req_duration{endpoint:list}'] = [t('max>=0')];
  thresholds['http_reqs{endpoint:list}'] = [t('count>=0')];
  thresholds['http_req_failed{endpoint:list}'] = [t('rate==0')];
}
Object.assign(thresholds, KNOWN_CODES_THRESHOLDS);

const scenario = AT_ONCE
  ? {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: __ENV.FLASH_MAX_DURATION || '2m',
      gracefulStop: '10s',
    }
  : {
      executor: 'constant-arrival-rate',
      rate: Math.max(1, Math.round(RATE * 60)),
      timeUnit: '1m',
      duration: DURATION,
      // A buyer waits up to RETRIES Retry-Afters: VUs for ~4 s of arrivals, allocated up
      // front (k6 starting VUs mid-run drops arrivals meanwhile).
      preAllocatedVUs: Math.min(config.maxVus || 400, Math.max(10, Math.ceil(RATE * 4))),
      maxVUs: config.maxVus || Math.min(400, Math.max(20, Math.ceil(RATE * 4))),
      gracefulStop: '20s',
    };

export const options = {
  scenarios: { flash_sale: scenario },
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

// One buyer: one create of 1 unit of `product` as `userId`, counted by its final answer.
function buy(userId, product) {
  const tags = { flash: 'buy', product };
  const r = createOrder(userId, [{ productId: product, quantity: 1 }], {
    expected: FINAL_STATUSES,
    tags,
    retries: AT_ONCE ? undefined : BUYER_RETRIES,
    retryExpected: !AT_ONCE,
  });
  const code = r.body && r.body.code;
  if (r.res.status === 201) {
    if (r.ok) flashSold.add(1, { product });
  } else if (r.res.status === 409 && (AT_ONCE || code === 'OUT_OF_STOCK')) {
    if (checkProblem('create', r.res, r.body, 'OUT_OF_STOCK')) flashRejected.add(1, { product });
  } else if (r.statusOk) {
    // Still throttled (STORE_THROTTLED, TOO_MANY_REQUESTS), unavailable or contended after
    // the retries: the buyer gives up; nothing was sold to it (the caller's table check).
    flashGaveUp.add(1, { product, code: String(code || r.res.status) });
  }
}

export default function (data) {
  if (AT_ONCE) {
    const userId = userFor(exec.vu.idInTest - 1);
    tokenFor(userId); // mint before the race
    const wait = data.startAtMs - Date.now();
    if (wait > 0) sleep(wait / 1000);
    buy(userId, PRODUCTS[0]);
    return;
  }
  const n = exec.scenario.iterationInTest;
  buy(userFor(n), PRODUCTS[n % PRODUCTS.length]);
}

// Counts the flash orders the service holds for the participants, created since setup().
export function teardown(data) {
  if (!VERIFY) return;
  let found = 0;
  let listFailures = 0;
  for (let vu = 1; vu <= VUS; vu++) {
    const userId = userFor(vu - 1);
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
  shape: AT_ONCE ? 'at-once' : 'rate',
  vus: AT_ONCE ? VUS : undefined,
  rate: AT_ONCE ? undefined : RATE,
  duration: AT_ONCE ? undefined : DURATION,
  flashProduct: config.flashProduct,
  flashProducts: PRODUCTS,
  flashStock: STOCK,
  expectedSold: AT_ONCE ? EXPECTED_SOLD : undefined,
  expectedRejected: AT_ONCE ? EXPECTED_REJECTED : undefined,
  verify: VERIFY,
});
