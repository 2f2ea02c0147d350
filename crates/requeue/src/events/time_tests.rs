//! `Time` (seconds) and `MicroTime` (microseconds): wire formats, parsing,
//! truncation, `null`, round trips.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;
use proptest::prelude::*;
use std::time::Duration;

/// 2026-11-23T14:58:00Z.
const T0: u64 = 1_795_445_880;

fn at(secs: u64, nanos: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

#[test]
fn time_serialises_at_second_precision() {
    let t = Time::from(at(T0, 987_654_321));
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#""2026-11-23T14:58:00Z""#
    );
    assert_eq!(t.to_string(), "2026-11-23T14:58:00Z");
    assert_eq!(SystemTime::from(t), at(T0, 0));
}

#[test]
fn micro_time_serialises_exactly_six_fractional_digits() {
    let t = MicroTime::from(at(T0, 123_456_789));
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#""2026-11-23T14:58:00.123456Z""#
    );
    assert_eq!(SystemTime::from(t), at(T0, 123_456_000));
    // Whole seconds and trailing zeros still get six digits.
    assert_eq!(
        MicroTime::from(at(T0, 0)).to_string(),
        "2026-11-23T14:58:00.000000Z"
    );
    assert_eq!(
        MicroTime::from(at(T0, 100_000_000)).to_string(),
        "2026-11-23T14:58:00.100000Z"
    );
}

#[test]
fn parsing_normalises_offsets_to_utc() {
    let t: Time = serde_json::from_str(r#""2026-11-23T16:58:00+02:00""#).unwrap();
    assert_eq!(t, Time::from(at(T0, 0)));
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#""2026-11-23T14:58:00Z""#
    );

    let t: Time = "2026-11-23T09:28:00-05:30".parse().unwrap();
    assert_eq!(t.to_string(), "2026-11-23T14:58:00Z");

    let m: MicroTime = serde_json::from_str(r#""2026-11-23T16:58:00.123456+02:00""#).unwrap();
    assert_eq!(m.to_string(), "2026-11-23T14:58:00.123456Z");
}

#[test]
fn parsing_truncates_to_the_wire_precision() {
    let t: Time = "2026-11-23T14:58:00.999999999Z".parse().unwrap();
    assert_eq!(t, Time::from(at(T0, 0)));
    let m: MicroTime = "2026-11-23T14:58:00.123456999Z".parse().unwrap();
    assert_eq!(m, MicroTime::from(at(T0, 123_456_000)));
    // A second-precision wire value reads as a MicroTime too (and back).
    let m: MicroTime = "2026-11-23T14:58:00Z".parse().unwrap();
    assert_eq!(Time::from(m), Time::from(at(T0, 0)));
    assert_eq!(MicroTime::from(Time::from(at(T0, 5))), m);
}

#[test]
fn truncation_rounds_towards_the_past_before_the_epoch() {
    let before = SystemTime::UNIX_EPOCH - Duration::from_millis(500);
    assert_eq!(Time::from(before).to_string(), "1969-12-31T23:59:59Z");
    let before = SystemTime::UNIX_EPOCH - Duration::from_nanos(1);
    assert_eq!(
        MicroTime::from(before).to_string(),
        "1969-12-31T23:59:59.999999Z"
    );
}

#[test]
fn zero_is_null_both_ways() {
    assert_eq!(Time::default(), Time::ZERO);
    assert!(Time::ZERO.is_zero());
    assert_eq!(Time::ZERO.to_string(), "0001-01-01T00:00:00Z");
    assert_eq!(serde_json::to_string(&Time::ZERO).unwrap(), "null");
    assert_eq!(serde_json::from_str::<Time>("null").unwrap(), Time::ZERO);
    assert_eq!(serde_json::to_string(&MicroTime::ZERO).unwrap(), "null");
    assert_eq!(
        serde_json::from_str::<MicroTime>("null").unwrap(),
        MicroTime::ZERO
    );
    assert!(!Time::from(at(T0, 0)).is_zero());
}

#[test]
fn invalid_timestamps_are_serde_errors() {
    for bad in [
        r#""yesterday""#,
        r#""2026-11-23T14:58:00""#, // no offset
        r#""2026-13-23T14:58:00Z""#,
        "42",
    ] {
        let err = serde_json::from_str::<Time>(bad).unwrap_err();
        assert!(err.is_data(), "{bad}: {err}");
        assert!(serde_json::from_str::<MicroTime>(bad).is_err(), "{bad}");
    }
    let err = serde_json::from_str::<Time>(r#""yesterday""#).unwrap_err();
    assert!(
        err.to_string().contains("invalid timestamp \"yesterday\""),
        "{err}"
    );
}

#[test]
fn out_of_range_system_time_saturates() {
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
    assert_eq!(
        Time::from(far).timestamp().as_second(),
        Timestamp::MAX.as_second()
    );
    assert!(MicroTime::from(far) > MicroTime::from(at(T0, 0)));
    let early = SystemTime::UNIX_EPOCH - Duration::from_secs(400_000_000_000);
    assert_eq!(
        Time::from(early).timestamp().as_second(),
        Timestamp::MIN.as_second()
    );
}

#[test]
fn ordering_follows_time() {
    assert!(Time::ZERO < Time::from(at(0, 0)));
    assert!(Time::from(at(T0, 0)) < Time::from(at(T0 + 1, 0)));
    assert!(MicroTime::from(at(T0, 1_000)) < MicroTime::from(at(T0, 2_000)));
}

proptest! {
    #[test]
    fn json_round_trip_is_lossless(secs in -62_135_596_799_i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
        let ts = Timestamp::new(secs, 0).unwrap() + jiff::SignedDuration::from_nanos(i64::from(nanos));
        let t = Time::from(ts);
        let back: Time = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        prop_assert_eq!(back, t);
        prop_assert_eq!(t.timestamp().subsec_nanosecond(), 0);
        let m = MicroTime::from(ts);
        let back: MicroTime = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(m.timestamp().subsec_nanosecond() % 1_000, 0);
        prop_assert!(m.timestamp() <= ts && ts.as_nanosecond() - m.timestamp().as_nanosecond() < 1_000);
    }
}
