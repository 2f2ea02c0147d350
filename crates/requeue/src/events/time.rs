//! Kubernetes' two wire timestamps: [`Time`] (`metav1.Time`, whole seconds)
//! and [`MicroTime`] (`metav1.MicroTime`, microseconds).

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use jiff::Timestamp;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Go's zero `time.Time` (`0001-01-01T00:00:00Z`) as Unix seconds.
const GO_ZERO_SECONDS: i64 = -62_135_596_800;

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MICRO: i128 = 1_000;

/// Rounds `ts` down (towards the past) to a multiple of `unit` nanoseconds.
fn floor(ts: Timestamp, unit: i128) -> Timestamp {
    let nanos = ts.as_nanosecond();
    Timestamp::from_nanosecond(nanos - nanos.rem_euclid(unit)).unwrap_or(ts)
}

/// Converts a [`SystemTime`], saturating at jiff's range (years −9999 to 9999).
fn from_system_time(at: SystemTime) -> Timestamp {
    Timestamp::try_from(at).unwrap_or_else(|_| {
        if at > SystemTime::UNIX_EPOCH {
            Timestamp::MAX
        } else {
            Timestamp::MIN
        }
    })
}

macro_rules! wire_time {
    ($ty:ident, $unit:expr, $precision:expr, $expecting:literal) => {
        impl $ty {
            /// Go's zero time, `0001-01-01T00:00:00Z`: what `null` in the JSON
            /// means, and what is written as `null` (like Go's `IsZero`).
            pub const ZERO: $ty = $ty(Timestamp::constant(GO_ZERO_SECONDS, 0));

            /// Wraps `ts`, dropping the precision the wire format cannot carry
            /// (rounding towards the past).
            pub fn from_timestamp(ts: Timestamp) -> Self {
                $ty(floor(ts, $unit))
            }

            /// The instant as a [`jiff::Timestamp`].
            pub fn timestamp(self) -> Timestamp {
                self.0
            }

            /// `true` for [`Self::ZERO`], which serialises as `null`.
            pub fn is_zero(self) -> bool {
                self == Self::ZERO
            }
        }

        impl Default for $ty {
            /// [`Self::ZERO`], like Go's zero value.
            fn default() -> Self {
                Self::ZERO
            }
        }

        impl From<Timestamp> for $ty {
            fn from(ts: Timestamp) -> Self {
                Self::from_timestamp(ts)
            }
        }

        impl From<$ty> for Timestamp {
            fn from(t: $ty) -> Self {
                t.0
            }
        }

        impl From<SystemTime> for $ty {
            /// Truncates to the wire precision; saturates outside the years
            /// −9999 to 9999.
            fn from(at: SystemTime) -> Self {
                Self::from_timestamp(from_system_time(at))
            }
        }

        impl From<$ty> for SystemTime {
            fn from(t: $ty) -> Self {
                SystemTime::from(t.0)
            }
        }

        impl fmt::Display for $ty {
            /// The RFC 3339 text used on the wire, in UTC (`Z`).
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:.*}", $precision, self.0)
            }
        }

        impl FromStr for $ty {
            type Err = jiff::Error;

            /// Parses RFC 3339 with any UTC offset (normalised to UTC) and any
            /// number of fractional digits (truncated to the wire precision).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse::<Timestamp>().map(Self::from_timestamp)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if self.is_zero() {
                    serializer.serialize_none()
                } else {
                    serializer.collect_str(self)
                }
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct TimeVisitor;

                impl<'de> Visitor<'de> for TimeVisitor {
                    type Value = $ty;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse::<$ty>().map_err(|err| {
                            E::custom(format_args!("invalid timestamp {v:?}: {err}"))
                        })
                    }

                    fn visit_none<E: de::Error>(self) -> Result<$ty, E> {
                        Ok($ty::ZERO)
                    }

                    fn visit_unit<E: de::Error>(self) -> Result<$ty, E> {
                        Ok($ty::ZERO)
                    }

                    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$ty, D::Error> {
                        d.deserialize_str(self)
                    }
                }

                deserializer.deserialize_option(TimeVisitor)
            }
        }
    };
}

/// A point in time as Kubernetes' `metav1.Time` carries it: RFC 3339 in UTC
/// at **second** precision, e.g. `"2026-11-23T14:58:00Z"`.
///
/// Used for an event's `firstTimestamp` and `lastTimestamp`. Construction
/// truncates to whole seconds (towards the past), so what you hold is exactly
/// what the API server stores and a JSON round trip is lossless.
/// [`Time::ZERO`] (Go's zero time) is written as `null`, and `null` reads back
/// as [`Time::ZERO`] — the API server shows `"firstTimestamp": null` for
/// events created through `events.k8s.io/v1`.
///
/// Parsing accepts any RFC 3339 offset (`+02:00` is converted to UTC) and
/// fractional seconds (dropped).
///
/// ```
/// use requeue::events::Time;
///
/// let t: Time = "2026-11-23T16:58:00.987+02:00".parse().unwrap();
/// assert_eq!(t.to_string(), "2026-11-23T14:58:00Z");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(Timestamp);

wire_time!(Time, NANOS_PER_SECOND, 0, "an RFC 3339 timestamp or null");

/// A point in time as Kubernetes' `metav1.MicroTime` carries it: RFC 3339 in
/// UTC with exactly **six** fractional digits, e.g.
/// `"2026-11-23T14:58:00.123456Z"`.
///
/// Used for an event's `eventTime` and a series' `lastObservedTime`.
/// Construction truncates to whole microseconds (towards the past).
/// [`MicroTime::ZERO`] is written as `null`, and `null` reads back as
/// [`MicroTime::ZERO`].
///
/// ```
/// use requeue::events::MicroTime;
///
/// let t: MicroTime = "2026-11-23T14:58:00Z".parse().unwrap();
/// assert_eq!(t.to_string(), "2026-11-23T14:58:00.000000Z");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroTime(Timestamp);

wire_time!(
    MicroTime,
    NANOS_PER_MICRO,
    6,
    "an RFC 3339 timestamp or null"
);

impl From<Time> for MicroTime {
    fn from(t: Time) -> Self {
        MicroTime(t.0)
    }
}

impl From<MicroTime> for Time {
    /// Drops the microseconds.
    fn from(t: MicroTime) -> Self {
        Time::from_timestamp(t.0)
    }
}

#[cfg(test)]
#[path = "time_tests.rs"]
mod tests;
