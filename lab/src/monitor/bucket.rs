//! Per-period buckets of parsed records, and percentiles.

use super::*;
use order_service::app::Operation;

#[derive(Debug, Clone, Default)]
pub(crate) struct OpBucket {
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub latencies: Vec<f64>,
}

/// Everything the detector needs from one second of log.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket {
    pub requests: u64,
    pub server_errors: u64,
    pub faults: u64,
    pub crashes: u64,
    pub latencies: Vec<f64>,
    pub by_op: BTreeMap<String, OpBucket>,
    /// Requests by `status code` ("503 STORE_UNAVAILABLE", "201").
    pub by_status: BTreeMap<String, u64>,
    pub pay_total: u64,
    pub pay_failed: u64,
    pub store_unavailable: u64,
    /// Answers that the store throttled (503 STORE_THROTTLED, or an older STORE_UNAVAILABLE
    /// whose cause was throttling).
    pub store_throttled: u64,
    pub store_retries: u64,
    /// Requests `dynamodb-faithful` refused: what DynamoDB's metrics count.
    pub dynamodb_conflicts: u64,
    pub dynamodb_throttles: u64,
    /// Whether `dynamodb-faithful`'s lines are in the log at all (then they are the store's
    /// metrics; without them, the answers stand in).
    pub saw_store_events: bool,
    /// Invocations the gateway throttled (a full queue), per function.
    pub gateway_throttles: BTreeMap<String, u64>,
    /// 503 STORE_UNAVAILABLE answered in under `FAST_FAIL_MS` (the circuit breaker).
    pub fast_store_unavailable: u64,
    pub max_latency_ms: f64,
}

/// A 503 answered faster than this came from the open circuit breaker, not from a timeout.
pub(crate) const FAST_FAIL_MS: f64 = 50.0;

impl Bucket {
    pub(super) fn add_request(&mut self, record: &RequestRecord) {
        self.requests += 1;
        self.latencies.push(record.latency_ms);
        self.max_latency_ms = self.max_latency_ms.max(record.latency_ms);
        let op = self.by_op.entry(record.operation.clone()).or_default();
        op.requests += 1;
        op.latencies.push(record.latency_ms);
        if record.status >= 500 {
            self.server_errors += 1;
            op.server_errors += 1;
        } else if record.status >= 400 {
            op.client_errors += 1;
        }
        if record.fault {
            self.faults += 1;
        }
        let key = if record.code.is_empty() {
            record.status.to_string()
        } else {
            format!("{} {}", record.status, record.code)
        };
        *self.by_status.entry(key).or_default() += 1;
        if record.operation == Operation::PayOrder.as_str() {
            self.pay_total += 1;
            if record.status >= 400 {
                self.pay_failed += 1;
            }
        }
        if record.code == "STORE_THROTTLED" {
            self.store_throttled += 1;
        }
        if record.code == "STORE_UNAVAILABLE" {
            self.store_unavailable += 1;
            if record.latency_ms < FAST_FAIL_MS {
                self.fast_store_unavailable += 1;
            }
        }
        self.store_retries += u64::from(record.store_retries);
    }

    pub(super) fn merge(&mut self, other: &Bucket) {
        self.requests += other.requests;
        self.server_errors += other.server_errors;
        self.faults += other.faults;
        self.crashes += other.crashes;
        self.latencies.extend_from_slice(&other.latencies);
        for (name, op) in &other.by_op {
            let mine = self.by_op.entry(name.clone()).or_default();
            mine.requests += op.requests;
            mine.client_errors += op.client_errors;
            mine.server_errors += op.server_errors;
            mine.latencies.extend_from_slice(&op.latencies);
        }
        for (key, count) in &other.by_status {
            *self.by_status.entry(key.clone()).or_default() += count;
        }
        self.pay_total += other.pay_total;
        self.pay_failed += other.pay_failed;
        self.store_unavailable += other.store_unavailable;
        self.store_throttled += other.store_throttled;
        self.store_retries += other.store_retries;
        self.dynamodb_conflicts += other.dynamodb_conflicts;
        self.dynamodb_throttles += other.dynamodb_throttles;
        self.saw_store_events |= other.saw_store_events;
        for (function, count) in &other.gateway_throttles {
            *self.gateway_throttles.entry(function.clone()).or_default() += count;
        }
        self.fast_store_unavailable += other.fast_store_unavailable;
        self.max_latency_ms = self.max_latency_ms.max(other.max_latency_ms);
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted values; `None` when empty.
pub(crate) fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        // GIVEN the latencies 1..=100
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        // WHEN percentiles are taken THEN they are nearest-rank
        assert_eq!(percentile(&values, 95.0), Some(95.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[], 95.0), None);
    }
}
