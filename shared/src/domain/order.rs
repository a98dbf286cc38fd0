//! The order aggregate and its lifecycle: CREATED -> PAID -> CANCELLED, or CREATED -> CANCELLED.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::{Money, OrderId, ProductId, Quantity, UserId};

/// Where an order is in its lifecycle. States only move forwards, which is what bounds every
/// retry loop over an order's state: at most two transitions can ever race a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Created,
    Paid,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "CREATED",
            OrderStatus::Paid => "PAID",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether the order still holds its stock reservation.
    pub fn holds_stock(self) -> bool {
        matches!(self, OrderStatus::Created | OrderStatus::Paid)
    }
}

/// One line of an order, with the unit price snapshotted when the order was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
    pub unit_price: Money,
}

impl OrderLine {
    pub fn line_total(&self) -> Option<Money> {
        self.unit_price.checked_times(self.quantity)
    }
}

/// An instant in UTC, written as RFC 3339 with millisecond precision
/// (`2026-11-25T21:50:00.123Z`), so that its text sorts in time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    pub fn from_datetime(instant: OffsetDateTime) -> Self {
        let utc = instant.to_offset(UtcOffset::UTC);
        let millis = utc.millisecond();
        // Truncating to milliseconds keeps the text form and the value in step.
        Self(utc.replace_millisecond(millis).unwrap_or(utc))
    }

    pub fn parse(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(Self::from_datetime)
    }

    pub fn as_datetime(self) -> OffsetDateTime {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(
            formatter,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl TryFrom<String> for Timestamp {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("invalid timestamp {value:?}"))
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.to_string()
    }
}

/// An order as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total_amount: Money,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<Timestamp>,
}

impl Order {
    /// The sum of the line totals, or `None` if it would overflow.
    pub fn compute_total(items: &[OrderLine]) -> Option<Money> {
        items
            .iter()
            .try_fold(Money::ZERO, |sum, line| sum.checked_add(line.line_total()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_sortable_utc_milliseconds() {
        let parsed = Timestamp::parse("2026-11-25T23:50:00.123456+02:00").unwrap();
        assert_eq!(parsed.to_string(), "2026-11-25T21:50:00.123Z");
        assert_eq!(Timestamp::parse(&parsed.to_string()), Some(parsed));
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn totals_sum_lines_and_detect_overflow() {
        let line = |price: i64, quantity: u64| OrderLine {
            product_id: ProductId::parse("product-1").unwrap(),
            quantity: Quantity::new(quantity).unwrap(),
            unit_price: Money::new(price).unwrap(),
        };
        assert_eq!(
            Order::compute_total(&[line(1_000, 2), line(2_500, 1)]),
            Some(Money::new(4_500).unwrap())
        );
        assert_eq!(Order::compute_total(&[line(i64::MAX, 2)]), None);
    }

    #[test]
    fn statuses_use_the_api_spelling() {
        assert_eq!(
            serde_json::to_string(&OrderStatus::Paid).unwrap(),
            "\"PAID\""
        );
        assert!(OrderStatus::Paid.holds_stock());
        assert!(!OrderStatus::Cancelled.holds_stock());
    }
}
