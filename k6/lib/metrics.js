// Custom metrics shared by every scenario. Created once at init (ES modules are
// evaluated once per VU, so importing this from several lib files is fine).
import { Counter, Trend } from 'k6/metrics';

// Any response whose status is not one the scenario expects, a transport error,
// an expected status with the wrong problem code, or a body that breaks the API
// contract. Tagged with endpoint, status and code (problem code, HTTP_<status>,
// TRANSPORT or CONTRACT). Every scenario thresholds this at count==0.
export const unexpectedErrors = new Counter('unexpected_errors');

// The part of the failures that were overload refused fast: 429 (the gateway's
// throttle, as Lambda and API Gateway throttle) and 503 (STORE_UNAVAILABLE), both
// with Retry-After. Tagged like unexpected_errors. Past a stress knee every failure
// should be one of these, never a timeout or a 500.
export const refusedRequests = new Counter('refused_requests');

// create -> pay|cancel -> get (+list) wall time, only for journeys that completed.
export const journeyDuration = new Trend('journey_duration', true);
export const journeysCompleted = new Counter('journeys_completed');
export const journeysFailed = new Counter('journeys_failed');

// Acknowledged writes (201 create, 200 pay, 200 cancel), tagged with op.
export const acknowledgedWrites = new Counter('acknowledged_writes');

// Retries performed because of 503 / 429 / CONCURRENT_REQUEST / REQUEST_IN_PROGRESS /
// transport errors (RETRIES>0).
export const retries = new Counter('http_retries');

// Flash sale outcomes.
export const flashSold = new Counter('flash_sold');
export const flashRejected = new Counter('flash_rejected');
// A buyer still refused (503/429/409 CONCURRENT_REQUEST) after its retries, tagged with code.
export const flashGaveUp = new Counter('flash_gave_up');
export const flashVerifiedOrders = new Counter('flash_verified_orders');

// Problem codes that get their own unexpected_errors{code:X} submetric in the summary.
export const KNOWN_ERROR_CODES = [
  'OUT_OF_STOCK',
  'INSUFFICIENT_BALANCE',
  'ORDER_ALREADY_PAID',
  'ORDER_CANCELLED',
  'STORE_UNAVAILABLE',
  'STORE_THROTTLED',
  'TOO_MANY_REQUESTS',
  'ORDER_NOT_PAID',
  'REFUND_EXCEEDS_ORDER',
  'CONCURRENT_REQUEST',
  'IDEMPOTENCY_KEY_REUSED',
  'REQUEST_IN_PROGRESS',
  'VALIDATION_ERROR',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'ORDER_NOT_FOUND',
  'INTERNAL_ERROR',
  'TRANSPORT',
  'CONTRACT',
];
