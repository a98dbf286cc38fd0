// HS256 JWTs for the order service, built in-script with k6/crypto.
//
// Claims: {sub: userId, iss, aud, exp: now+TTL, iat: now}. One token per user is
// cached per VU and re-minted when it is within 5 minutes of expiry (so an hour-long
// soak keeps working). AUTH_TOKEN_MODE=file sends tokens someone else issued (a deployed
// stage's identity provider): TOKENS_FILE is a JSON object {"user-1": "<token>", ...}, and
// only those users take part. AUTH_TOKEN_MODE=none sends no Authorization header at all.
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import { config } from './config.js';

function loadSecret() {
  if (config.authMode === 'none') return '';
  if (config.authSecret !== undefined && config.authSecret !== '') return config.authSecret;
  if (config.authSecretFile) {
    // open() is init-context only; this module is evaluated at init.
    // Trailing newlines from `echo secret > file` are not part of the key.
    return open(config.authSecretFile).replace(/[\r\n]+$/, '');
  }
  // Not thrown here so `k6 inspect` (which passes no env) still works;
  // assertAuthConfigured() fails setup() instead.
  return null;
}

const MISSING_SECRET =
  'AUTH_SECRET (or AUTH_SECRET_FILE) must be set, e.g. AUTH_SECRET="$(cat .local/dev-jwt-secret)"; ' +
  'or set AUTH_TOKEN_MODE=none to send no token';

if (!['jwt', 'file', 'none'].includes(config.authMode)) {
  throw new Error(`AUTH_TOKEN_MODE must be 'jwt', 'file' or 'none', got ${JSON.stringify(config.authMode)}`);
}

function loadTokens() {
  if (config.authMode !== 'file' || !config.tokensFile) return null;
  const tokens = JSON.parse(open(config.tokensFile));
  if (tokens === null || typeof tokens !== 'object' || Array.isArray(tokens)) {
    throw new Error(`TOKENS_FILE ${config.tokensFile} must hold a JSON object {"user-1": "<token>", ...}`);
  }
  return tokens;
}

const SECRET = config.authMode === 'jwt' ? loadSecret() : null;
const TOKENS = loadTokens();
const HEADER_B64 = encoding.b64encode(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), 'rawurl');
const REFRESH_MARGIN_SEC = 300;

// userId -> {token, exp}; module state is per VU.
const cache = {};

// Called from every scenario's setup() so a missing secret aborts the run at once.
export function assertAuthConfigured() {
  if (config.authMode === 'jwt' && SECRET === null) throw new Error(MISSING_SECRET);
  if (config.authMode === 'file' && TOKENS === null) {
    throw new Error('AUTH_TOKEN_MODE=file needs TOKENS_FILE, a JSON object {"user-1": "<token>", ...}');
  }
}

export function mintToken(userId, nowSec = Math.floor(Date.now() / 1000)) {
  assertAuthConfigured();
  const claims = {
    sub: userId,
    iss: config.jwtIssuer,
    aud: config.jwtAudience,
    exp: nowSec + config.jwtTtlSec,
    iat: nowSec,
  };
  const signingInput = `${HEADER_B64}.${encoding.b64encode(JSON.stringify(claims), 'rawurl')}`;
  const sig = crypto.hmac('sha256', SECRET, signingInput, 'base64rawurl');
  return { token: `${signingInput}.${sig}`, exp: claims.exp };
}

export function tokenFor(userId) {
  if (config.authMode === 'file') {
    const token = TOKENS[userId];
    if (typeof token !== 'string' || token === '') {
      throw new Error(`TOKENS_FILE has no token for ${userId}: set USERS to the number of users it covers`);
    }
    return token;
  }
  const now = Math.floor(Date.now() / 1000);
  let entry = cache[userId];
  if (!entry || entry.exp - now < REFRESH_MARGIN_SEC) {
    entry = mintToken(userId, now);
    cache[userId] = entry;
  }
  return entry.token;
}

// Headers to merge into a request for `userId` ({} when AUTH_TOKEN_MODE=none).
export function authHeaders(userId) {
  if (config.authMode === 'none') return {};
  return { Authorization: `Bearer ${tokenFor(userId)}` };
}
