// One function per endpoint of the order service.
//
// Every request is tagged {endpoint: create|pay|get|list|cancel, name: <route
// template>} so per-endpoint submetrics exist and URLs with ids don't explode the
// metric series. `opts.expected` lists the HTTP statuses the calling scenario
// expects; it drives http_req_failed through a responseCallback
// (http.expectedStatuses), and anything else is counted in unexpected_errors.
// Success bodies (201/200) are validated against the order contract here.
//
// Each function returns {res, body, ok}: `body` is the parsed JSON (or null), `ok`
// is true when the status was expected and, for success statuses, the body passed
// the contract checks.
import http from 'k6/http';
import { check, sleep } from 'k6';
import { config } from './config.js';
import { authHeaders } from './auth.js';
import { checkOrder, checkList, header, reasonCode, recordUnexpected, safeJson } from './checks.js';
import { acknowledgedWrites, retries } from './metrics.js';

export const ROUTES = {
  create: '/users/{userId}/orders',
  list: '/users/{userId}/orders',
  get: '/users/{userId}/orders/{orderId}',
  pay: '/users/{userId}/orders/{orderId}/payment',
  cancel: '/users/{userId}/orders/{orderId}/cancel',
};

const DEFAULT_EXPECTED = { create: [201], pay: [200], get: [200], list: [200], cancel: [200] };

// Per-VU random prefix so Idempotency-Keys never collide across VUs or runs.
const KEY_PREFIX = `k6-${Date.now().toString(36)}-${__VU}-${Math.floor(Math.random() * 1e9).toString(36)}`;
let keySeq = 0;
export function newIdempotencyKey(op) {
  keySeq += 1;
  return `${KEY_PREFIX}-${op}-${keySeq}`;
}

const callbacks = {};
function callbackFor(statuses) {
  const key = statuses.join(',');
  if (!callbacks[key]) callbacks[key] = http.expectedStatuses(...statuses);
  return callbacks[key];
}

function enc(s) {
  return encodeURIComponent(s);
}

function ledger(op, userId, body, fallbackOrderId) {
  acknowledgedWrites.add(1, { op });
  if (!config.ledger) return;
  const entry = {
    op,
    userId,
    orderId: body && body.orderId !== undefined ? body.orderId : fallbackOrderId,
    status: body ? body.status : undefined,
    totalAmount: body ? body.totalAmount : undefined,
  };
  console.log(`LEDGER ${JSON.stringify(entry)}`);
}

function retryAfterMs(res) {
  const v = header(res, 'Retry-After');
  const secs = Number(v);
  const ms = Number.isFinite(secs) && secs >= 0 ? secs * 1000 : 200;
  return Math.min(ms, config.retryMaxWaitMs);
}

// Retried (when RETRIES>0): transport errors, 503 STORE_UNAVAILABLE, 429,
// CONCURRENT_REQUEST and REQUEST_IN_PROGRESS (the key's first request is still running;
// the retry gets its answer). Attempts that will be retried count 503/429 as expected, so
// only the final outcome can fail http_req_failed.
const RETRYABLE_STATUSES = [503, 429];
const RETRYABLE_CODES = ['CONCURRENT_REQUEST', 'REQUEST_IN_PROGRESS'];
function isRetryable(res) {
  if (res.status === 0 || RETRYABLE_STATUSES.indexOf(res.status) >= 0) return true;
  const b = safeJson(res);
  return !!b && RETRYABLE_CODES.indexOf(b.code) >= 0;
}

// Sends one logical request, with up to RETRIES retries of retryable outcomes
// when that is safe (GETs, or POSTs carrying an Idempotency-Key).
function send(endpoint, method, path, userId, payload, opts) {
  const expected = opts.expected || DEFAULT_EXPECTED[endpoint];
  const headers = Object.assign({ Accept: 'application/json' }, authHeaders(userId));
  if (payload !== null && payload !== undefined) headers['Content-Type'] = 'application/json';
  let idemKey = null;
  if (method === 'POST' && opts.idempotencyKey !== false && (opts.idempotencyKey || config.idempotency)) {
    idemKey = opts.idempotencyKey || newIdempotencyKey(endpoint);
    headers['Idempotency-Key'] = idemKey;
  }
  const canRetry = method === 'GET' || idemKey !== null;
  const retriesAllowed = opts.retries === undefined ? config.retries : opts.retries;
  const attempts = 1 + (canRetry ? retriesAllowed : 0);
  const tags = Object.assign({ endpoint, name: ROUTES[endpoint] }, opts.tags || {});
  const url = config.baseUrl + path;
  const bodyStr = payload === null || payload === undefined ? null : JSON.stringify(payload);

  let res;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const last = attempt === attempts;
    // A 503 that will be retried is not a failure of this logical request.
    const statuses = last ? expected : expected.concat(RETRYABLE_STATUSES.filter((x) => expected.indexOf(x) < 0));
    const params = {
      headers,
      tags: attempt > 1 ? Object.assign({ retry: String(attempt - 1) }, tags) : tags,
      responseCallback: callbackFor(statuses),
      timeout: config.httpTimeout,
    };
    res = http.request(method, url, bodyStr, params);
    // opts.retryExpected: a retryable answer is retried even when the caller accepts it as
    // a final one (a flash-sale buyer retries a 503 it may end with).
    const settled = opts.retryExpected ? !isRetryable(res) : expected.indexOf(res.status) >= 0 || !isRetryable(res);
    if (last || settled) break;
    retries.add(1, { endpoint, status: String(res.status) });
    // Retry-After plus up to as much again at random: refused clients that all came back
    // at the same instant would be refused together again.
    sleep(res.status === 0 ? 0.1 : (retryAfterMs(res) * (1 + Math.random())) / 1000);
  }

  const body = safeJson(res);
  const statusOk = expected.indexOf(res.status) >= 0;
  check(res, { [`${endpoint}: expected status`]: () => statusOk });
  if (!statusOk) recordUnexpected(endpoint, res, reasonCode(res, body));
  return { res, body, statusOk, idempotencyKey: idemKey };
}

// POST /users/{userId}/orders. items: [{productId, quantity}].
export function createOrder(userId, items, opts = {}) {
  const r = send('create', 'POST', `/users/${enc(userId)}/orders`, userId, { items }, opts);
  r.ok = r.statusOk;
  if (r.res.status === 201) {
    r.ok = checkOrder('create', r.res, r.body, { userId, status: 'CREATED', items }) && r.statusOk;
    if (r.statusOk) ledger('create', userId, r.body);
  }
  return r;
}

// POST /users/{userId}/orders/{orderId}/payment
export function payOrder(userId, orderId, opts = {}) {
  const r = send('pay', 'POST', `/users/${enc(userId)}/orders/${enc(orderId)}/payment`, userId, null, opts);
  r.ok = r.statusOk;
  if (r.res.status === 200) {
    r.ok = checkOrder('pay', r.res, r.body, { userId, orderId, status: 'PAID' }) && r.statusOk;
    if (r.statusOk) ledger('pay', userId, r.body, orderId);
  }
  return r;
}

// POST /users/{userId}/orders/{orderId}/cancel
export function cancelOrder(userId, orderId, opts = {}) {
  const r = send('cancel', 'POST', `/users/${enc(userId)}/orders/${enc(orderId)}/cancel`, userId, null, opts);
  r.ok = r.statusOk;
  if (r.res.status === 200) {
    r.ok = checkOrder('cancel', r.res, r.body, { userId, orderId, status: 'CANCELLED' }) && r.statusOk;
    if (r.statusOk) ledger('cancel', userId, r.body, orderId);
  }
  return r;
}

// GET /users/{userId}/orders/{orderId}. opts.status: the order status to expect.
export function getOrder(userId, orderId, opts = {}) {
  const r = send('get', 'GET', `/users/${enc(userId)}/orders/${enc(orderId)}`, userId, null, opts);
  r.ok = r.statusOk;
  if (r.res.status === 200) {
    r.ok = checkOrder('get', r.res, r.body, { userId, orderId, status: opts.status }) && r.statusOk;
  }
  return r;
}

// GET /users/{userId}/orders?limit=N&cursor=C
export function listOrders(userId, { limit, cursor } = {}, opts = {}) {
  const q = [];
  if (limit !== undefined) q.push(`limit=${enc(String(limit))}`);
  if (cursor !== undefined && cursor !== null) q.push(`cursor=${enc(cursor)}`);
  const path = `/users/${enc(userId)}/orders${q.length ? '?' + q.join('&') : ''}`;
  const r = send('list', 'GET', path, userId, null, opts);
  r.ok = r.statusOk;
  if (r.res.status === 200) r.ok = checkList(r.res, r.body, userId) && r.statusOk;
  return r;
}
