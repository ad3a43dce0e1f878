//! Types that cannot hold invalid values. Handlers turn raw input into these once, at the edge.

mod delivery;
mod ids;
mod named;
mod page;

pub use delivery::{Delivery, DeliveryError};
pub use ids::{AttemptId, IdError, PersonId, SigningId, TransactionNumber, WebhookId};
pub use named::{transaction_numbers_of, MAX_NAMED};
pub use page::{PageError, PageRequest};
