// The user journey every rate-based scenario drives:
//
//   create -> pay -> get            (most journeys)
//   create -> cancel -> get         (every CANCEL_EVERY-th journey; default 1 in 20)
//   ... + list                      (every LIST_EVERY-th journey; default 1 in 10)
//
// so a journey issues 3 requests, plus 1/LIST_EVERY of a list on average
// (config.requestsPerJourney()). Users and products are picked from the global
// iteration number with multiplicative hashing: deterministic per iteration,
// spread over the whole seeded range, so two in-flight journeys rarely share a
// user (a user repeats only every USERS iterations).
import exec from 'k6/execution';
import { config, requestsPerJourney } from './config.js';
import { createOrder, payOrder, getOrder, listOrders, cancelOrder } from './api.js';
import { journeyDuration, journeysCompleted, journeysFailed } from './metrics.js';

function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

// A stride coprime with USERS, so idx -> user is a permutation of each USERS-long block.
const USER_STRIDE = (() => {
  let s = 7919;
  while (gcd(s, config.users) !== 1) s += 1;
  return s % config.users || 1;
})();

function hash32(x) {
  let h = Math.imul(x ^ 0x5bd1e995, 0x9e3779b1) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

export function userFor(idx) {
  return `user-${config.userOffset + ((idx * USER_STRIDE) % config.users) + 1}`;
}

// 1..MAX_LINES distinct products, quantity 1..MAX_QTY each.
export function itemsFor(idx) {
  const h = hash32(idx);
  const lines = Math.min(1 + (h % config.maxLines), config.products, 20);
  const items = [];
  const used = {};
  let p = hash32(idx + 0x7f4a7c15) % config.products;
  for (let j = 0; j < lines; j++) {
    while (used[p]) p = (p + 1) % config.products;
    used[p] = true;
    items.push({ productId: `product-${p + 1}`, quantity: Math.min(100, 1 + ((h >>> 8) + j) % config.maxQty) });
    p = (p + 37) % config.products;
  }
  return items;
}

// The global iteration number (unique across VUs within the scenario).
export function iterationIndex() {
  try {
    return exec.scenario.iterationInTest;
  } catch (_) {
    return (__VU * 7919 + __ITER) >>> 0;
  }
}

export function journey(idx = iterationIndex()) {
  const userId = userFor(idx);
  const items = itemsFor(idx);
  const started = Date.now();

  const created = createOrder(userId, items);
  if (!created.ok || !created.body || !created.body.orderId) {
    journeysFailed.add(1, { step: 'create' });
    return false;
  }
  const orderId = created.body.orderId;

  const cancel = config.cancelEvery > 0 && idx % config.cancelEvery === config.cancelEvery - 1;
  const second = cancel ? cancelOrder(userId, orderId) : payOrder(userId, orderId);
  if (!second.ok) {
    journeysFailed.add(1, { step: cancel ? 'cancel' : 'pay' });
    return false;
  }

  const got = getOrder(userId, orderId, { status: cancel ? 'CANCELLED' : 'PAID' });
  if (!got.ok) {
    journeysFailed.add(1, { step: 'get' });
    return false;
  }

  if (config.listEvery > 0 && idx % config.listEvery === 0) {
    const listed = listOrders(userId, { limit: config.listLimit });
    if (!listed.ok) {
      journeysFailed.add(1, { step: 'list' });
      return false;
    }
  }

  journeyDuration.add(Date.now() - started);
  journeysCompleted.add(1);
  return true;
}

// Rough demand of a run of `totalRequests` requests on the seeded data, so setup()
// can warn before a long run burns through balances or stock.
export function seedDemand(totalRequests, cfg = config) {
  const journeys = totalRequests / requestsPerJourney(cfg);
  const avgLines = (1 + Math.min(cfg.maxLines, cfg.products)) / 2;
  const avgQty = (1 + cfg.maxQty) / 2;
  const paidShare = cfg.cancelEvery > 0 ? 1 - 1 / cfg.cancelEvery : 1;
  const perUserOrders = journeys / cfg.users;
  return {
    journeys: Math.round(journeys),
    // cancelled orders are assumed not to give stock back (worst case)
    unitsPerProduct: Math.ceil((journeys * avgLines * avgQty) / cfg.products),
    spendPerUserAvgPrice: Math.ceil(perUserOrders * paidShare * avgLines * avgQty * ((1000 + cfg.priceMax) / 2)),
    spendPerUserMaxPrice: Math.ceil(perUserOrders * paidShare * avgLines * avgQty * cfg.priceMax),
  };
}
