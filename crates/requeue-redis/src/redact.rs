//! Redis URLs without their credentials, for messages, logs and `Debug`:
//! core's [`requeue::redact`], which every engine shares. Every message,
//! log line, error value and `Debug` output of this crate shows URLs
//! through it; use it too wherever your program prints a URL it was given.
//!
//! ```
//! use requeue_redis::redact::redact_url;
//!
//! assert_eq!(
//!     redact_url("rediss://admin:s3cret@cache.internal:6380/2"),
//!     "rediss://***@cache.internal:6380/2"
//! );
//! ```

pub use requeue::redact::{RedactedUrl, redact_url};
