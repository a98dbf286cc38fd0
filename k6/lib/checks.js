// Response validation. Every function runs k6 `check`s with stable names (so the
// summary's root_group stays small) and, on failure, counts an unexpected_errors
// sample tagged with the endpoint and a reason code.
import { check } from 'k6';
import { refusedRequests, unexpectedErrors } from './metrics.js';
import { config } from './config.js';

const MAX_LOGGED = 5; // per VU, to keep stdout readable under a failure storm
let logged = 0;

function logOnce(msg) {
  if (config.debug || logged < MAX_LOGGED) {
    logged += 1;
    console.warn(msg);
  }
}

export function safeJson(res) {
  if (!res || !res.body) return null;
  try {
    return JSON.parse(res.body);
  } catch (_) {
    return null;
  }
}

function header(res, name) {
  if (!res || !res.headers) return undefined;
  const want = name.toLowerCase();
  for (const k of Object.keys(res.headers)) {
    if (k.toLowerCase() === want) return res.headers[k];
  }
  return undefined;
}
export { header };

// The reason code for a response that is not a success: problem+json `code`,
// TRANSPORT for connection errors/timeouts, else HTTP_<status>.
export function reasonCode(res, body) {
  if (!res || res.status === 0) return 'TRANSPORT';
  const b = body === undefined ? safeJson(res) : body;
  if (b && typeof b.code === 'string' && b.code) return b.code;
  return `HTTP_${res.status}`;
}

export function recordUnexpected(endpoint, res, code, detail) {
  const status = res ? String(res.status) : '0';
  unexpectedErrors.add(1, { endpoint, status, code });
  if (status === '429' || status === '503') refusedRequests.add(1, { endpoint, status, code });
  const url = res && res.request ? `${res.request.method} ${res.request.url}` : endpoint;
  const body = res && res.body ? String(res.body).slice(0, 300) : res && res.error ? res.error : '';
  logOnce(`unexpected ${endpoint} status=${status} code=${code}${detail ? ' (' + detail + ')' : ''}: ${url} ${body}`);
}

function isInt(v) {
  return typeof v === 'number' && Number.isInteger(v);
}

// Validates an order body; returns a list of violations (empty when fine).
export function orderViolations(order, { userId, orderId, status, items } = {}) {
  const v = [];
  if (!order || typeof order !== 'object') return ['body is not a JSON object'];
  if (typeof order.orderId !== 'string' || order.orderId === '') v.push('orderId');
  if (orderId !== undefined && order.orderId !== orderId) v.push('orderId mismatch');
  if (userId !== undefined && order.userId !== userId) v.push('userId mismatch');
  if (status !== undefined && order.status !== status) v.push(`status ${order.status} != ${status}`);
  if (!Array.isArray(order.items) || order.items.length === 0) {
    v.push('items');
  } else {
    let sum = 0;
    for (const it of order.items) {
      if (!it || typeof it.productId !== 'string' || !isInt(it.quantity) || !isInt(it.unitPrice) || it.unitPrice < 0) {
        v.push('item shape');
        break;
      }
      sum += it.quantity * it.unitPrice;
    }
    if (!isInt(order.totalAmount)) v.push('totalAmount');
    else if (v.indexOf('item shape') < 0 && sum !== order.totalAmount) v.push(`totalAmount ${order.totalAmount} != ${sum}`);
    if (items) {
      const want = {};
      for (const it of items) want[it.productId] = it.quantity;
      const got = {};
      for (const it of order.items) if (it) got[it.productId] = it.quantity;
      const same =
        Object.keys(want).length === Object.keys(got).length && Object.keys(want).every((k) => got[k] === want[k]);
      if (!same) v.push('items differ from request');
    }
  }
  if (typeof order.createdAt !== 'string' || Number.isNaN(Date.parse(order.createdAt))) v.push('createdAt');
  if (status === 'PAID' && (typeof order.paidAt !== 'string' || Number.isNaN(Date.parse(order.paidAt)))) v.push('paidAt');
  return v;
}

// Checks an order response that already has an expected success status.
// Returns true when the body honours the contract.
export function checkOrder(endpoint, res, body, expect) {
  const violations = orderViolations(body, expect);
  let locationOk = true;
  if (endpoint === 'create') {
    const loc = header(res, 'Location');
    locationOk = typeof loc === 'string' && body && typeof body.orderId === 'string' && loc.indexOf(body.orderId) >= 0;
    if (!locationOk) violations.push(`Location header ${JSON.stringify(loc)}`);
  }
  const ok = check(res, {
    [`${endpoint}: order body valid`]: () => violations.length === 0,
  });
  if (!ok) recordUnexpected(endpoint, res, 'CONTRACT', violations.join('; '));
  return ok;
}

export function checkList(res, body, userId) {
  const v = [];
  if (!body || !Array.isArray(body.orders)) v.push('orders not an array');
  else {
    for (const o of body.orders) {
      const ov = orderViolations(o, { userId });
      if (ov.length) {
        v.push(`order ${o && o.orderId}: ${ov.join(', ')}`);
        break;
      }
    }
  }
  if (!body || !(body.nextCursor === null || typeof body.nextCursor === 'string')) v.push('nextCursor');
  const ok = check(res, { 'list: body valid': () => v.length === 0 });
  if (!ok) recordUnexpected('list', res, 'CONTRACT', v.join('; '));
  return ok;
}

// Checks an application/problem+json error with the expected code.
export function checkProblem(endpoint, res, body, code) {
  const ct = String(header(res, 'Content-Type') || '');
  const problems = [];
  if (ct.indexOf('application/problem+json') < 0) problems.push(`content-type ${ct}`);
  if (!body || body.code !== code) problems.push(`code ${body && body.code} != ${code}`);
  if (body && body.status !== undefined && body.status !== res.status) problems.push('status field');
  const ok = check(res, { [`${endpoint}: problem ${code}`]: () => problems.length === 0 });
  if (!ok) recordUnexpected(endpoint, res, body && body.code ? body.code : 'CONTRACT', problems.join('; '));
  return ok;
}
