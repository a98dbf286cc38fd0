// Environment parsing for the k6 suite. Every knob is an env var with a default,
// so `k6 run k6/<scenario>.js` works with no flags against the local stack.
//
// Only import this module; it has no side effects besides reading __ENV.

function str(name, def) {
  const v = __ENV[name];
  return v === undefined || v === '' ? def : String(v);
}

function int(name, def, min) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || Math.floor(n) !== n) {
    throw new Error(`env ${name} must be an integer, got ${JSON.stringify(raw)}`);
  }
  if (min !== undefined && n < min) {
    throw new Error(`env ${name} must be >= ${min}, got ${n}`);
  }
  return n;
}

function num(name, def, min) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`env ${name} must be a number, got ${JSON.stringify(raw)}`);
  if (min !== undefined && n < min) throw new Error(`env ${name} must be >= ${min}, got ${n}`);
  return n;
}

// A scenario's own knob: a number above 0 from the environment, or `def`.
export function positiveNum(name, def) {
  const n = num(name, def);
  if (n <= 0) throw new Error(`env ${name} must be a positive number, got ${n}`);
  return n;
}

function bool(name, def) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  return !/^(0|false|no|off)$/i.test(String(raw));
}

// Parses a k6-style duration ("90s", "10m", "1h", "1m30s", "500ms" or bare seconds)
// into milliseconds.
export function durationMs(value) {
  const s = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60000 : n * 3600000;
    consumed += m[0].length;
  }
  if (consumed !== s.length || s.length === 0) throw new Error(`bad duration ${JSON.stringify(value)}`);
  return Math.round(total);
}

// Formats milliseconds as a k6 duration string ("1h2m3s").
export function fmtDuration(ms) {
  let s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? h + 'h' : ''}${m ? m + 'm' : ''}${s || (!h && !m) ? s + 's' : ''}`;
}

function durationEnv(name, def) {
  const v = str(name, def);
  durationMs(v); // validate early, with the env name in the message on failure
  return v;
}

export const ENDPOINTS = ['create', 'pay', 'get', 'list', 'cancel'];

export const config = {
  baseUrl: str('BASE_URL', 'http://127.0.0.1:9000').replace(/\/+$/, ''),

  // auth
  authMode: str('AUTH_TOKEN_MODE', 'jwt').toLowerCase(), // 'jwt' | 'file' | 'none'
  // AUTH_TOKEN_MODE=file: a JSON object {"user-1": "<access token>", ...} issued by the
  // stage's identity provider (e.g. Cognito, see README "Deploying with SAM").
  tokensFile: str('TOKENS_FILE', ''),
  authSecret: __ENV.AUTH_SECRET, // may be undefined; auth.js also tries AUTH_SECRET_FILE
  authSecretFile: str('AUTH_SECRET_FILE', ''),
  jwtIssuer: str('JWT_ISSUER', 'order-service-local'),
  jwtAudience: str('JWT_AUDIENCE', 'order-service'),
  jwtTtlSec: int('JWT_TTL_SECONDS', 3600, 60),

  // seeded data (must match what the stack was seeded with)
  users: int('USERS', 1000, 1),
  products: int('PRODUCTS', 100, 1),
  balance: int('BALANCE', 1000000, 0),
  stock: int('STOCK', 1000, 0),
  priceMax: int('PRICE_MAX', 50000, 1),
  flashProduct: str('FLASH_PRODUCT', 'product-flash'),
  flashStock: int('FLASH_STOCK', 50, 0),
  userOffset: int('USER_OFFSET', 0, 0), // journeys use user-(offset+1)..user-(offset+USERS)

  // traffic shape
  rate: num('RATE', 200, 0.1), // HTTP requests per second (not iterations)
  duration: durationEnv('DURATION', '10m'),
  vus: int('VUS', 200, 1),
  preVus: __ENV.PRE_VUS ? int('PRE_VUS', 10, 1) : undefined,
  maxVus: __ENV.MAX_VUS ? int('MAX_VUS', 100, 1) : undefined,

  // journey mix: every CANCEL_EVERY-th journey cancels instead of paying,
  // every LIST_EVERY-th journey also lists the user's orders. 0 disables.
  cancelEvery: int('CANCEL_EVERY', 20, 0),
  listEvery: int('LIST_EVERY', 10, 0),
  listLimit: int('LIST_LIMIT', 10, 1),
  maxLines: int('MAX_LINES', 2, 1), // order lines per create (1..MAX_LINES)
  maxQty: int('MAX_QTY', 1, 1), // quantity per line (1..MAX_QTY)

  // SLO
  p95Ms: num('P95_MS', 25, 0),

  // http behaviour
  httpTimeout: durationEnv('HTTP_TIMEOUT', '10s'),
  idempotency: bool('IDEMPOTENCY', true), // send Idempotency-Key on POSTs
  retries: int('RETRIES', 0, 0), // retries of 503 / connection errors (same Idempotency-Key)
  retryMaxWaitMs: int('RETRY_MAX_WAIT_MS', 2000, 0),

  // drills
  ledger: bool('LEDGER', false),

  // reporting
  reportDir: str('REPORT_DIR', 'reports/latest').replace(/\/+$/, ''),
  debug: bool('DEBUG', false),
};

// PROFILE=stage: a deployed stage, reached over a real network and behind API Gateway's
// stage throttle (template parameter ApiThrottleRate, 100 req/s by default). The local
// defaults above (200 req/s, p95 < 25 ms) are the service's own figures beside DynamoDB Local
// on this machine; against a stage they would be throttled and fail on network time alone.
// The stage profile changes only the defaults: RATE 50 (half the template's default throttle;
// `cargo xtask loadtest --stack` passes half the stack's own ApiThrottleRate instead), P95_MS
// 500 (the stage's p95 alarm fires at 300 ms inside API Gateway; the rest allows for the
// client's network), RETRIES 2 (a throttled or refused request is retried with its
// Idempotency-Key, as a well-behaved client does). Any of them set explicitly still wins.
export const STAGE_PROFILE = { rate: 50, p95Ms: 500, retries: 2 };
const PROFILES = ['local', 'stage'];
config.profile = str('PROFILE', 'local').toLowerCase();
if (PROFILES.indexOf(config.profile) < 0) {
  throw new Error(`env PROFILE must be one of ${PROFILES.join(', ')}, got ${JSON.stringify(config.profile)}`);
}
if (config.profile === 'stage') {
  if (__ENV.RATE === undefined || __ENV.RATE === '') config.rate = STAGE_PROFILE.rate;
  if (__ENV.P95_MS === undefined || __ENV.P95_MS === '') config.p95Ms = STAGE_PROFILE.p95Ms;
  if (__ENV.RETRIES === undefined || __ENV.RETRIES === '') config.retries = STAGE_PROFILE.retries;
}

// Requests one journey issues on average (create + pay|cancel + get, plus a list
// on every LIST_EVERY-th journey). The arrival-rate scenarios divide the requested
// HTTP rate by this to get the iteration rate.
export function requestsPerJourney(cfg = config) {
  return 3 + (cfg.listEvery > 0 ? 1 / cfg.listEvery : 0);
}

// Converts an HTTP request rate (req/s) into an arrival-rate executor setting
// expressed per minute (integer iterations per `timeUnit: '1m'`), which keeps the
// rounding error below 1/60 of an iteration per second.
export function iterationsPerMinute(reqPerSec, cfg = config) {
  return Math.max(1, Math.round((reqPerSec * 60) / requestsPerJourney(cfg)));
}

// VU pool sizing for arrival-rate executors: enough to absorb latency spikes of
// ~1s per journey at the peak rate, capped so k6 stays within a 2-core box.
export function vuPool(peakReqPerSec, cfg = config) {
  const itPerSec = peakReqPerSec / requestsPerJourney(cfg);
  const pre = cfg.preVus !== undefined ? cfg.preVus : Math.max(5, Math.ceil(itPerSec * 0.25));
  const max = cfg.maxVus !== undefined ? cfg.maxVus : Math.min(1000, Math.max(50, Math.ceil(itPerSec * 2)));
  return { preAllocatedVUs: Math.min(pre, max), maxVUs: Math.max(pre, max) };
}
