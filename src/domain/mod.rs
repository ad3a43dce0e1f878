//! Types that cannot hold invalid values. Handlers turn raw input into these once, at the edge.

mod delivery;
mod ids;
mod page;

pub use delivery::{transaction_numbers_of, Delivery, DeliveryError};
pub use ids::{AttemptId, IdError, PersonId, SigningId, TransactionNumber, WebhookId};
pub use page::{PageError, PageRequest};
