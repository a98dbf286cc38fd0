//! `dynamodb-faithful`: a proxy to put in front of DynamoDB Local so that it fails the way
//! production DynamoDB fails. DynamoDB Local runs one request at a time behind a lock: it never
//! raises a transaction conflict, never throttles a hot partition and never charges capacity,
//! so concurrency claims proven against it alone prove little. Through this proxy:
//!
//! - a `PutItem`, `UpdateItem` or `DeleteItem` on an item an ongoing `TransactWriteItems` holds
//!   fails with `TransactionConflictException` (which the SDKs do not retry);
//! - a `TransactWriteItems` or `TransactGetItems` that includes an item another ongoing
//!   transaction holds is cancelled: `TransactionCanceledException`, `TransactionConflict` as
//!   that item's reason and `None` for the others;
//! - a transaction resent with the `ClientRequestToken` of one still running gets
//!   `TransactionInProgressException`;
//! - one partition key value serves at most 1,000 write units and 3,000 read units per second
//!   (a write of up to 1 KB is one unit, a transactional one two); past that, requests fail
//!   with `ThrottlingException` (reason `...KeyRangeThroughputExceeded`), transactions are
//!   cancelled with `ThrottlingError`, and batches return what was refused as unprocessed;
//! - consumed capacity is counted per operation and per partition, and every response can
//!   report it (`ReturnConsumedCapacity`) as DynamoDB's do.
//!
//! The model's choices are written down where they are made: how long a request holds its
//! items (`holds`), how throughput is budgeted (`capacity`), how DynamoDB counts sizes and
//! units (`size`). Faults for tests and drills (late answers, injected cancellations, an
//! outage, a planted bug) live here too (`faults`), so that production behaviour and faults
//! are one proxy with one set of tests.
//!
//! Run it as a binary (`cargo run -p dynamodb-faithful -- --listen ... --upstream ...`) or
//! embed it in a test with [`start`].

mod capacity;
mod events;
mod faults;
mod holds;
mod plan;
mod protocol;
mod server;
mod size;
mod stats;

pub use capacity::Limits;
pub use events::EVENT_MESSAGE;
pub use faults::{Faults, Injected, Outage};
pub use server::{start, Handle, Settings};
pub use size::{read_units, write_units};
pub use stats::{OperationStats, PartitionStats, Summary};
