//! The data every layer speaks: DTOs of the contract (exact JSON shapes) and domain events.

pub mod dto;
pub mod events;

pub use dto::*;
pub use events::*;
