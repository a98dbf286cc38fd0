//! The checks every drill makes after the load (the ledger against the table, the audit,
//! recovery, the expected alarms), the shared checks the drills pick from, and their table reads.

use anyhow::Result;
use order_service::domain::{Order, ProductId};
use order_service::store::DynamoOrderStore;
use tokio::runtime::Runtime;

use crate::audit;
use crate::clock::format_ms;
use crate::monitor::{AlarmEvent, Bucket, EventKind};

use super::runner::{Drill, Scenario};
use super::support;
use super::verify::{check_ledger, LedgerEntry};
use super::{FUNCTION_TIMEOUT_MS, K6_HTTP_TIMEOUT};

impl Drill {
    /// The checks every drill makes after the load, then the drill's own (`Scenario::verify`).
    pub(super) fn verify(&mut self, scenario: &dyn Scenario) -> Result<()> {
        // The ledger against the table.
        let mut ledger: Vec<LedgerEntry> = Vec::new();
        for run in self.load.iter().chain(self.flash.iter()) {
            ledger.extend(run.ledger().iter().filter_map(LedgerEntry::from_json));
        }
        let orders = self.table().orders()?;
        let check = check_ledger(&ledger, &orders);
        self.check(
            "zero acknowledged writes lost",
            check.lost.is_empty() && check.entries > 0,
            format!(
                "{} acknowledged writes in k6's ledger ({} creates, {} pays, {} cancels), {} orders in the table, {} lost{}",
                check.entries,
                check.creates,
                check.pays,
                check.cancels,
                orders.len(),
                check.lost_count(),
                check.lost.first().map(|first| format!(", e.g. {first}")).unwrap_or_default()
            ),
        );
        self.findings.ledger = check;
        match audit::audit(&self.state.dynamodb_endpoint, &self.state.table) {
            Ok(audit) => {
                let clean = audit.is_clean();
                self.check(
                    "the audit is clean",
                    clean,
                    if clean {
                        format!(
                            "{} orders {:?}; money and stock exactly conserved",
                            audit.orders, audit.orders_by_status
                        )
                    } else {
                        format!(
                            "{} violation(s): {}",
                            audit.violations.len(),
                            audit.violations.join("; ")
                        )
                    },
                );
                self.findings.audit = Some(audit);
            }
            Err(error) => {
                self.check(
                    "the audit is clean",
                    false,
                    format!("the audit could not run: {error:#}"),
                );
                self.findings.audit_error = Some(format!("{error:#}"));
            }
        }
        match self.findings.recovered {
            Some(recovered) => {
                let after =
                    (recovered - self.findings.mitigated.unwrap_or(recovered)) as f64 / 1_000.0;
                self.check(
                    "the service recovers without a human",
                    true,
                    format!(
                        "clean request log from {} ({after:.1} s after mitigation)",
                        format_ms(recovered)
                    ),
                );
            }
            None => self.check(
                "the service recovers without a human",
                false,
                "no clean window before the timeout",
            ),
        }
        let k6_ran = self
            .findings
            .k6
            .as_ref()
            .and_then(|summary| support::metric(summary, "http_reqs", "count"))
            .unwrap_or(0.0);
        if k6_ran <= 0.0 {
            self.note(
                "k6 wrote no summary.json with requests: the k6 numbers of this report are missing",
            );
        }
        self.expected_alarm(scenario.expected_alarms());
        scenario.verify(self, &orders);
        Ok(())
    }

    /// At least one of `expected` fires after T0 (empty: neither api-5xx-rate nor lambda-errors
    /// fires).
    fn expected_alarm(&mut self, expected: &[&str]) {
        let injected = self.findings.injected.unwrap_or(0);
        match expected {
            [] => {
                let noisy: Vec<String> = alerts_since(
                    &self.findings.events,
                    injected,
                    &["api-5xx-rate", "lambda-errors"],
                )
                .map(AlarmEvent::line)
                .collect();
                self.check(
                    "api-5xx-rate and lambda-errors stay quiet",
                    noisy.is_empty(),
                    if noisy.is_empty() {
                        "no error alarm".to_owned()
                    } else {
                        noisy.join("; ")
                    },
                );
            }
            alarms => {
                let fired: Vec<String> = alerts_since(&self.findings.events, injected, alarms)
                    .map(|alert| {
                        format!(
                            "{} after {:.1} s",
                            alert.alarm,
                            (alert.at_ms - injected) as f64 / 1_000.0
                        )
                    })
                    .collect();
                let name = format!("ALERT {} fires", alarms.join(" or "));
                let missing: Vec<&str> = alarms
                    .iter()
                    .filter(|alarm| !fired.iter().any(|line| line.starts_with(**alarm)))
                    .copied()
                    .collect();
                self.check(
                    &name,
                    !fired.is_empty(),
                    if fired.is_empty() {
                        "none fired".to_owned()
                    } else if missing.is_empty() {
                        fired.join(", ")
                    } else {
                        format!("{}; did not fire: {}", fired.join(", "), missing.join(", "))
                    },
                );
            }
        }
    }

    /// The drill's table, read directly (never through the drill's proxy).
    pub(super) fn table(&self) -> Table<'_> {
        let store = crate::client::store_for(&self.state.dynamodb_endpoint, &self.state.table);
        Table {
            runtime: &self.runtime,
            store: self.runtime.block_on(store),
        }
    }

    /// A check that the whole run answered no 5xx but `allowed` ("503 STORE_UNAVAILABLE") and
    /// that `passed` holds besides; any other 5xx are added to `detail` ("; other 5xx: 3 x 500
    /// INTERNAL_ERROR").
    pub(super) fn check_only_5xx(
        &mut self,
        name: &str,
        allowed: &[&str],
        passed: bool,
        detail: String,
    ) {
        let others = Self::other_5xx(&self.findings.whole_run, allowed);
        let detail = if others.is_empty() {
            detail
        } else {
            format!("{detail}; other 5xx: {}", others.join(", "))
        };
        self.check(name, others.is_empty() && passed, detail);
    }

    /// 5xx answers in `bucket` other than `allowed`, as "3 x 500 INTERNAL_ERROR".
    pub(super) fn other_5xx(bucket: &Bucket, allowed: &[&str]) -> Vec<String> {
        bucket
            .by_status
            .iter()
            .filter(|(key, _)| key.starts_with('5') && !allowed.contains(&key.as_str()))
            .map(|(key, count)| format!("{count} x {key}"))
            .collect()
    }

    pub(super) fn hang_checks(&mut self) {
        let max_latency = self.findings.whole_run.max_latency_ms;
        self.check(
            "no request runs past the 10 s function timeout",
            max_latency < FUNCTION_TIMEOUT_MS,
            format!("longest request in the function log {:.0} ms", max_latency),
        );
        let transport = self
            .findings
            .k6
            .as_ref()
            .map(|summary| {
                support::unexpected_by_code(summary)
                    .get("TRANSPORT")
                    .copied()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let k6_max = self
            .findings
            .k6
            .as_ref()
            .and_then(|summary| support::metric(summary, "http_req_duration", "max"))
            .unwrap_or(0.0);
        let slowest_probe = self
            .probes
            .iter()
            .map(|probe| probe.result.seconds())
            .fold(0.0, f64::max);
        let hung_probes = self
            .probes
            .iter()
            .filter(|probe| probe.result.status == 0)
            .count();
        let slow_probes = self
            .probes
            .iter()
            .filter(|probe| probe.result.seconds() >= 10.0)
            .count();
        let passed = transport == 0
            && hung_probes == 0
            && slowest_probe < 10.0
            && k6_max < FUNCTION_TIMEOUT_MS;
        let detail = format!(
            "k6: slowest answer {:.0} ms, {transport} requests without an answer within {K6_HTTP_TIMEOUT}; \
             canary: slowest {:.2} s, {slow_probes} of {} took >= 10 s, {hung_probes} without an answer{}",
            k6_max,
            slowest_probe,
            self.probes.len(),
            if passed {
                String::new()
            } else {
                format!(
                    ". The functions never ran longer than {:.0} ms, so about {:.1} s of the slowest wait was \
                     spent queued in cargo lambda watch: 4 instances per function, each held up to 3 s per call \
                     until its breaker opened (5 failures in a row). Lambda would run more environments instead \
                     of queueing",
                    max_latency,
                    (k6_max.max(slowest_probe * 1_000.0) - max_latency) / 1_000.0
                )
            }
        );
        if max_latency < FUNCTION_TIMEOUT_MS {
            self.advisory(
                "no client waits 10 s or more (gateway view)",
                passed,
                detail,
            );
        } else {
            self.check(
                "no client waits 10 s or more (gateway view)",
                passed,
                detail,
            );
        }
    }
}

/// The alerts among `events` of one of `alarms` that fired at or after T0 (`injected`).
fn alerts_since<'a>(
    events: &'a [AlarmEvent],
    injected: i64,
    alarms: &'a [&'a str],
) -> impl Iterator<Item = &'a AlarmEvent> {
    events.iter().filter(move |event| {
        event.kind == EventKind::Alert
            && event.at_ms >= injected
            && alarms.contains(&event.alarm.as_str())
    })
}

/// A table the checks read, with the runtime that blocks on the reads.
pub(super) struct Table<'a> {
    runtime: &'a Runtime,
    store: DynamoOrderStore,
}

impl Table<'_> {
    /// Every order in the table.
    pub(super) fn orders(&self) -> Result<Vec<Order>> {
        let orders = self.runtime.block_on(self.store.all_orders());
        orders.map_err(|error| anyhow::anyhow!("{error}"))
    }

    /// The stock of `product` (`None`: the table has no such product).
    pub(super) fn stock(&self, product: &str) -> Result<Option<i64>> {
        let product = ProductId::parse(product).map_err(|error| anyhow::anyhow!("{error}"))?;
        let stock = self.runtime.block_on(self.store.product_stock(&product));
        stock.map_err(|error| anyhow::anyhow!("{error}"))
    }
}

#[cfg(test)]
mod tests {
    use order_service::domain::UserId;
    use order_service::store::SeedPlan;

    use super::*;

    #[test]
    fn only_the_named_alerts_after_t0_count() {
        // GIVEN an alert before T0 (1 000), one at T0, another alarm's alert and a resolution
        let event = |kind, alarm: &str, at_ms| AlarmEvent {
            kind,
            alarm: alarm.to_owned(),
            at_ms,
            value: 1.0,
        };
        let events = [
            event(EventKind::Alert, "api-5xx-rate", 999),
            event(EventKind::Alert, "lambda-errors", 1_000),
            event(EventKind::Alert, "api-latency-p95", 1_500),
            event(EventKind::Resolved, "api-5xx-rate", 2_000),
        ];
        // WHEN the error alarms' alerts since T0 are picked THEN only the one at T0 is
        let errors = ["api-5xx-rate", "lambda-errors"];
        let picked: Vec<&AlarmEvent> = alerts_since(&events, 1_000, &errors).collect();
        assert_eq!(picked, [&events[1]]);
    }

    #[test]
    fn the_table_reads_orders_and_stock() -> Result<()> {
        // GIVEN a seeded table on DynamoDB Local (stock 1 000 each) and an order of 2 x product-1
        let runtime = crate::client::runtime()?;
        let plan = SeedPlan {
            users: 1,
            ..SeedPlan::default()
        };
        let store = runtime.block_on(testkit::seeded_table(&plan)).store;
        let user = UserId::parse("user-1").expect("a user id");
        let order = testkit::new_order(&[("product-1", 2)]);
        runtime
            .block_on(testkit::UseCases::create_order(&store, &user, &order, None))
            .expect("the order");
        let table = Table {
            runtime: &runtime,
            store,
        };
        // WHEN read THEN the order and the stock it took are seen; an unknown product is None
        assert_eq!(table.orders()?.len(), 1);
        assert_eq!(table.stock("product-1")?, Some(998));
        assert_eq!(table.stock("product-999")?, None);
        assert!(table.stock("not a product id").is_err());
        Ok(())
    }
}
