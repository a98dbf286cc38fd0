//! The Idempotency-Key records on DynamoDB (what they mean: `domain::idempotency`).
//!
//! One item per user and key, in the user's partition (`sk = IDEMPOTENCY#<sha256 of key>`):
//! a claim (`IN_PROGRESS`, with the claiming request's token and a lease) that the request's
//! own transaction turns into its answer (`ANSWERED`), or that a business refusal answers with
//! a conditional update, or that a failure which is no outcome releases (its lease lapses at
//! once). `expiresAt` is the
//! table's TTL attribute; an expired record counts as absent even before TTL removes it.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};

use super::errors::{mapping_error, store_error};
use super::items::{from_item, key, number_value, string_value, to_item, user_pk, Item};
use super::retry::back_off;
use super::{DynamoOrderStore, KeepAnswers};
use crate::domain::{Answer, Claim, ClaimTimes, Fingerprint, Prior, Refusal, UserId};
use crate::error::ServiceError;

pub(crate) const IDEMPOTENCY_ENTITY: &str = "IDEMPOTENCY";
/// The table's TTL attribute (template.yaml's `TimeToLiveSpecification`).
pub const TTL_ATTRIBUTE: &str = "expiresAt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum RecordState {
    InProgress,
    Answered,
}

impl RecordState {
    fn as_str(self) -> &'static str {
        match self {
            RecordState::InProgress => "IN_PROGRESS",
            RecordState::Answered => "ANSWERED",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct IdempotencyRecord {
    pub pk: String,
    pub sk: String,
    pub entity: String,
    pub user_id: UserId,
    pub fingerprint: Fingerprint,
    pub state: RecordState,
    pub claim_token: String,
    /// Epoch seconds until which an `IN_PROGRESS` claim holds the key.
    pub locked_until: i64,
    /// Epoch seconds after which the record is gone (TTL).
    pub expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
}

impl IdempotencyRecord {
    fn prior(self) -> Prior {
        match (self.state, self.answer) {
            (RecordState::Answered, Some(answer)) => Prior::Answered {
                fingerprint: self.fingerprint,
                answer,
                token: self.claim_token,
            },
            _ => Prior::InFlight {
                fingerprint: self.fingerprint,
                token: self.claim_token,
            },
        }
    }
}

pub(crate) fn record_sk(claim: &Claim) -> String {
    format!("{IDEMPOTENCY_ENTITY}#{}", claim.key.record_id())
}

fn record_key(user_id: &UserId, claim: &Claim) -> Item {
    key(user_pk(user_id), &record_sk(claim))
}

/// Now, in epoch seconds: the clock of claims, leases and DynamoDB's TTL.
pub fn epoch_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// The prior record a failed condition returned, if DynamoDB returned one.
fn prior_of(item: Option<Item>) -> Result<Option<Prior>, ServiceError> {
    match item.filter(|item| !item.is_empty()) {
        Some(item) => from_item::<IdempotencyRecord>(item)
            .map(|record| Some(record.prior()))
            .map_err(|error| mapping_error("an idempotency record", error)),
        None => Ok(None),
    }
}

fn answer_value(answer: &Answer) -> Result<AttributeValue, ServiceError> {
    serde_dynamo::to_attribute_value(answer)
        .map_err(|error| mapping_error("an idempotency answer", error))
}

const OWN_CLAIM: &str = "claimToken = :token AND #state = :inProgress";

impl DynamoOrderStore {
    /// The update that answers a claim: in a state change's transaction, so the effect and its
    /// answer commit together or not at all. It fails if the claim is no longer this request's.
    pub(crate) fn answer_claim_item(
        &self,
        user_id: &UserId,
        claim: &Claim,
        answer: &Answer,
    ) -> Result<TransactWriteItem, ServiceError> {
        Ok(TransactWriteItem::builder()
            .update(self.answer_update(user_id, claim, answer)?)
            .build())
    }

    fn answer_update(
        &self,
        user_id: &UserId,
        claim: &Claim,
        answer: &Answer,
    ) -> Result<Update, ServiceError> {
        Update::builder()
            .table_name(self.table_name())
            .set_key(Some(record_key(user_id, claim)))
            .update_expression("SET #state = :answered, answer = :answer, #expiresAt = :kept")
            .condition_expression(OWN_CLAIM)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#expiresAt", TTL_ATTRIBUTE)
            .expression_attribute_values(
                ":kept",
                number_value(ClaimTimes::answer_kept_until(
                    epoch_seconds(),
                    self.answer_ttl,
                )),
            )
            .expression_attribute_values(":answered", string_value(RecordState::Answered.as_str()))
            .expression_attribute_values(":answer", answer_value(answer)?)
            .expression_attribute_values(":token", string_value(claim.token.clone()))
            .expression_attribute_values(
                ":inProgress",
                string_value(RecordState::InProgress.as_str()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|error| {
                ServiceError::internal(format!("cannot build a DynamoDB request: {error}"))
            })
    }
}

/// How often a claim is tried while the key's record is held by another request's ongoing
/// transaction (the key's first request answering it): a few milliseconds each, then the
/// retry is told to come back for the answer.
const CLAIM_ATTEMPTS: u32 = 5;

impl KeepAnswers for DynamoOrderStore {
    async fn claim(&self, user_id: &UserId, claim: &Claim) -> Result<Option<Prior>, ServiceError> {
        self.guarded(async {
            let mut attempt = 1;
            loop {
                match self.put_claim(user_id, claim).await {
                    Err(ServiceError::Contention { .. }) if attempt < CLAIM_ATTEMPTS => {
                        back_off(attempt).await;
                        attempt += 1;
                    }
                    Err(ServiceError::Contention { .. }) => {
                        return Err(ServiceError::RequestInProgress {
                            retry_after: crate::error::IN_FLIGHT_RETRY_AFTER,
                        })
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    async fn answer_refusal(
        &self,
        user_id: &UserId,
        claim: &Claim,
        refusal: Refusal,
    ) -> Result<Option<Prior>, ServiceError> {
        self.guarded(async {
            let update = self.answer_update(user_id, claim, &Answer::Refused(refusal))?;
            let sent = self
                .client
                .update_item()
                .table_name(update.table_name())
                .set_key(Some(update.key().clone()))
                .update_expression(update.update_expression())
                .set_condition_expression(update.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(update.expression_attribute_names().cloned())
                .set_expression_attribute_values(update.expression_attribute_values().cloned())
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match sent {
                Ok(_) => Ok(None),
                Err(SdkError::ServiceError(failure))
                    if matches!(
                        failure.err(),
                        UpdateItemError::ConditionalCheckFailedException(_)
                    ) =>
                {
                    let UpdateItemError::ConditionalCheckFailedException(failed) =
                        failure.into_err()
                    else {
                        unreachable!("matched above")
                    };
                    self.prior_after_failed_condition(failed.item, user_id, claim)
                        .await
                }
                Err(error) => Err(store_error("UpdateItem", error)),
            }
        })
        .await
    }

    async fn release(&self, user_id: &UserId, claim: &Claim) {
        // The lease lapses now: the next claim may take the key, and TTL removes the record.
        // (An update, not a delete: no function may delete items, see template.yaml.) It may
        // run after the request's store deadline, within `RELEASE_RESERVE`.
        let update = self
            .client
            .update_item()
            .table_name(self.table_name())
            .set_key(Some(record_key(user_id, claim)))
            .update_expression("SET lockedUntil = :lapsed")
            .condition_expression(OWN_CLAIM)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":lapsed", number_value(0))
            .expression_attribute_values(":token", string_value(claim.token.clone()))
            .expression_attribute_values(
                ":inProgress",
                string_value(RecordState::InProgress.as_str()),
            )
            .send();
        let released = match tokio::time::timeout(super::RELEASE_RESERVE, update).await {
            Ok(sent) => sent.map_err(|error| crate::error::ErrorChain(&error).to_string()),
            Err(_) => Err("no answer within the release reserve".to_owned()),
        };
        if let Err(error) = released {
            // Harmless: the claim lapses with its lease anyway, and a record that is no longer
            // this request's claim (answered, or claimed anew) must stay as it is.
            tracing::debug!(error, "claim not released");
        }
    }
}

impl DynamoOrderStore {
    /// One conditional `PutItem` of the claim: `None` when the key is now this request's,
    /// otherwise its live record. A record held by an ongoing transaction is `Contention`.
    async fn put_claim(
        &self,
        user_id: &UserId,
        claim: &Claim,
    ) -> Result<Option<Prior>, ServiceError> {
        let now = epoch_seconds();
        let times = ClaimTimes::starting(now, self.answer_ttl);
        let record = IdempotencyRecord {
            pk: user_pk(user_id),
            sk: record_sk(claim),
            entity: IDEMPOTENCY_ENTITY.to_owned(),
            user_id: user_id.clone(),
            fingerprint: claim.fingerprint.clone(),
            state: RecordState::InProgress,
            claim_token: claim.token.clone(),
            locked_until: times.locked_until,
            expires_at: times.expires_at,
            answer: None,
        };
        let item = to_item(&record).map_err(|error| mapping_error("a claim", error))?;
        let put = self
            .client
            .put_item()
            .table_name(self.table_name())
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR #expiresAt < :now \
                 OR (#state = :inProgress AND lockedUntil < :now)",
            )
            .expression_attribute_names("#expiresAt", TTL_ATTRIBUTE)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", number_value(now))
            .expression_attribute_values(
                ":inProgress",
                string_value(RecordState::InProgress.as_str()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(failure))
                if matches!(
                    failure.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                let PutItemError::ConditionalCheckFailedException(failed) = failure.into_err()
                else {
                    unreachable!("matched above")
                };
                self.prior_after_failed_condition(failed.item, user_id, claim)
                    .await
            }
            Err(error) => Err(store_error("PutItem", error)),
        }
    }

    /// The key's record as a failed condition returned it, or read when it was not returned.
    async fn prior_after_failed_condition(
        &self,
        returned: Option<Item>,
        user_id: &UserId,
        claim: &Claim,
    ) -> Result<Option<Prior>, ServiceError> {
        match prior_of(returned)? {
            Some(prior) => Ok(Some(prior)),
            None => self.read_prior(user_id, claim).await,
        }
    }

    /// Reads a key's record when a failed condition did not return it (some emulators don't).
    async fn read_prior(
        &self,
        user_id: &UserId,
        claim: &Claim,
    ) -> Result<Option<Prior>, ServiceError> {
        let output = self
            .client
            .get_item()
            .table_name(self.table_name())
            .set_key(Some(record_key(user_id, claim)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| store_error("GetItem", error))?;
        match prior_of(output.item)? {
            Some(prior) => Ok(Some(prior)),
            // It lapsed or was released between our write and this read: the key is free, but
            // this request did not claim it. The client retries and claims it then.
            None => Err(ServiceError::RequestInProgress {
                retry_after: crate::error::IN_FLIGHT_RETRY_AFTER,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Change, IdempotencyKey, Money, Order, OrderId, OrderLine, OrderStatus, ProductId, Quantity,
        Timestamp,
    };
    use proptest::prelude::*;

    fn order(lines: Vec<(u8, u64, i64)>, status: u8, millis: i64) -> Order {
        let at = Timestamp::parse("2026-11-29T00:00:00Z")
            .unwrap()
            .as_datetime()
            + time::Duration::milliseconds(millis);
        let at = Timestamp::from_datetime(at);
        let items: Vec<OrderLine> = lines
            .into_iter()
            .map(|(product, quantity, price)| OrderLine {
                product_id: ProductId::parse(&format!("product-{product}")).unwrap(),
                quantity: Quantity::new(quantity).unwrap(),
                unit_price: Money::new(price).unwrap(),
            })
            .collect();
        let status = [
            OrderStatus::Created,
            OrderStatus::Paid,
            OrderStatus::Cancelled,
        ][usize::from(status % 3)];
        Order {
            order_id: OrderId::random(),
            user_id: UserId::parse("user-1").unwrap(),
            status,
            total_amount: Order::compute_total(&items).unwrap(),
            items,
            created_at: at,
            paid_at: (status == OrderStatus::Paid).then_some(at),
            cancelled_at: (status == OrderStatus::Cancelled).then_some(at),
            refunded_items: vec![],
            refunded_amount: Money::ZERO,
            refunded_at: None,
        }
    }

    proptest! {
        #[test]
        fn a_record_keeps_its_answer_exactly(
            lines in prop::collection::vec((any::<u8>(), 1_u64..=100, 0_i64..1_000_000), 1..20),
            status in any::<u8>(),
            millis in 0_i64..10_000_000_000,
            refused in any::<bool>(),
        ) {
            let order = order(lines, status, millis);
            let answer = if refused {
                Answer::Refused(Refusal::InsufficientBalance { required: order.total_amount })
            } else {
                Answer::Updated(order.clone())
            };
            let claim = Claim::new(
                IdempotencyKey::parse("key").unwrap(),
                Fingerprint::change(&Change::Pay, order.order_id),
            );
            let record = IdempotencyRecord {
                pk: user_pk(&order.user_id),
                sk: record_sk(&claim),
                entity: IDEMPOTENCY_ENTITY.to_owned(),
                user_id: order.user_id.clone(),
                fingerprint: claim.fingerprint.clone(),
                state: RecordState::Answered,
                claim_token: claim.token.clone(),
                locked_until: 0,
                expires_at: 1,
                answer: Some(answer.clone()),
            };
            let back: IdempotencyRecord = from_item(to_item(&record).unwrap()).unwrap();
            prop_assert_eq!(back.answer.as_ref(), Some(&answer));
            // The replay renders byte for byte what the first answer rendered.
            let first = crate::http::Reply::answer(&answer).unwrap().into_response();
            let replay = crate::http::Reply::answer(back.answer.as_ref().unwrap())
                .unwrap()
                .into_response();
            prop_assert_eq!(first.status(), replay.status());
            prop_assert_eq!(first.body().as_ref(), replay.body().as_ref());
            prop_assert_eq!(claim.against(&back.prior()), Ok(answer));
        }
    }
}
