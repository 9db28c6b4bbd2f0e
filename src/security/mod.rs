//! Security: JWT (HS256 with ring), bcrypt passwords, the JWT session registry, CSRF and
//! role checks. Nothing here does HTTP; `net` calls it.

pub mod csrf;
pub mod jwt;
pub mod metered_registry;
pub mod password;
pub mod principal;
pub mod redis_registry;
pub mod registry;

pub use principal::Principal;
