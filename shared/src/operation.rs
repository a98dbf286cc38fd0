//! The operations the service serves and the functions that serve them, named as the
//! functions, the metrics, the template and the lab name them. Below both `app` (which runs
//! them) and `observability` (which counts them), so neither refers to the other for a name.

use crate::auth::Access;
use crate::domain::ChangeKind;

/// The operations, named as the functions and metrics name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateOrder,
    PayOrder,
    CancelOrder,
    RefundOrder,
    GetOrder,
    ListOrders,
}

impl Operation {
    /// Every operation, in the order reports list them.
    pub const ALL: [Operation; 6] = [
        Operation::CreateOrder,
        Operation::PayOrder,
        Operation::CancelOrder,
        Operation::RefundOrder,
        Operation::GetOrder,
        Operation::ListOrders,
    ];

    /// The Lambda function that serves the operation (listing is get-order's second route).
    pub fn function(self) -> &'static str {
        match self {
            Operation::ListOrders => Operation::GetOrder.as_str(),
            other => other.as_str(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::CreateOrder => "create-order",
            Operation::PayOrder => ChangeKind::Pay.operation(),
            Operation::CancelOrder => ChangeKind::Cancel.operation(),
            Operation::RefundOrder => ChangeKind::Refund.operation(),
            Operation::GetOrder => "get-order",
            Operation::ListOrders => "list-orders",
        }
    }

    /// Whether the operation changes something (a POST with an Idempotency-Key and a body
    /// limit).
    pub fn changes(self) -> bool {
        !matches!(self, Operation::GetOrder | Operation::ListOrders)
    }

    /// How the caller must relate to the path's user: reading one order of another user is
    /// "not found" (ids cannot be probed), anything else of another user is forbidden.
    pub fn access(self) -> Access {
        match self {
            Operation::GetOrder => Access::ReadOrder,
            _ => Access::Other,
        }
    }
}

/// The functions, one per binary under `functions/`, as the router table and the template name
/// them (a test keeps this list and `Operation::function` in step).
pub const FUNCTIONS: [&str; 5] = [
    "create-order",
    "pay-order",
    "cancel-order",
    "refund-order",
    "get-order",
];

impl From<ChangeKind> for Operation {
    fn from(change: ChangeKind) -> Self {
        match change {
            ChangeKind::Pay => Operation::PayOrder,
            ChangeKind::Cancel => Operation::CancelOrder,
            ChangeKind::Refund => Operation::RefundOrder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_serves_an_operation_and_every_operation_has_a_function() {
        let served: std::collections::BTreeSet<&str> = Operation::ALL
            .iter()
            .map(|operation| operation.function())
            .collect();
        let listed: std::collections::BTreeSet<&str> = FUNCTIONS.into_iter().collect();
        assert_eq!(served, listed);
        assert_eq!(listed.len(), FUNCTIONS.len(), "a function listed twice");
    }
}
