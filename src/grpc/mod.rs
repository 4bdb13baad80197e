//! The gRPC adapter: tonic services that turn requests into the core's
//! calls ([`call`] reads credentials, [`convert`] translates messages) and
//! the core's errors into `Status` ([`status`], the one mapping), plus the
//! typed [`client`] the CLI, `bench` and the tests share. Every message
//! goes through one codec (`codec`: prost's, a request that does not
//! decode INVALID_ARGUMENT rather than INTERNAL).

pub(crate) mod admin;
pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod call;
pub mod client;
pub(crate) mod clients;
pub(crate) mod codec;
pub mod convert;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod identities;
pub(crate) mod keys;
pub(crate) mod oauth;
pub mod status;
pub(crate) mod tokens;
pub(crate) mod users;
