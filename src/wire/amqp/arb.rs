//! Proptest strategies for the codec's types (compiled for tests only).
//!
//! [`Arb`] gives every method argument type a canonical strategy, which the
//! `amqp_method!` macro combines into a strategy per method struct.

use bytes::Bytes;
use proptest::prelude::*;

use super::primitives::ShortStr;
use super::properties::BasicProperties;
use super::table::{FieldTable, FieldValue};

/// A type with a canonical proptest strategy.
pub(crate) trait Arb: Sized {
    fn arb() -> BoxedStrategy<Self>;
}

macro_rules! arb_any {
    ($($t:ty),*) => {$(
        impl Arb for $t {
            fn arb() -> BoxedStrategy<Self> {
                any::<$t>().boxed()
            }
        }
    )*};
}
arb_any!(u8, u16, u32, u64, bool);

impl Arb for ShortStr {
    fn arb() -> BoxedStrategy<Self> {
        prop_oneof![
            "[a-z.\\-]{0,20}".prop_map(|s| ShortStr::from_bytes(Bytes::from(s)).unwrap_or_default()),
            proptest::collection::vec(any::<u8>(), 0..=255)
                .prop_map(|v| ShortStr::from_bytes(Bytes::from(v)).unwrap_or_default()),
        ]
        .boxed()
    }
}

impl Arb for Bytes {
    fn arb() -> BoxedStrategy<Self> {
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from).boxed()
    }
}

fn leaf() -> BoxedStrategy<FieldValue> {
    prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<f32>().prop_map(FieldValue::F32),
        any::<f64>().prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        "[ -~]{0,16}".prop_map(|s| FieldValue::LongStr(Bytes::from(s))),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|v| FieldValue::ByteArray(v.into())),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ]
    .boxed()
}

/// Arbitrary field values, nested up to a few levels.
pub(crate) fn value() -> BoxedStrategy<FieldValue> {
    leaf()
        .prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
                proptest::collection::vec((ShortStr::arb(), inner), 0..6)
                    .prop_map(|e| FieldValue::Table(FieldTable(e))),
            ]
        })
        .boxed()
}

impl Arb for FieldTable {
    fn arb() -> BoxedStrategy<Self> {
        proptest::collection::vec((ShortStr::arb(), value()), 0..6).prop_map(FieldTable).boxed()
    }
}

fn opt<T: std::fmt::Debug + 'static>(s: BoxedStrategy<T>) -> BoxedStrategy<Option<T>> {
    proptest::option::of(s).boxed()
}

pub(crate) fn arb_props() -> impl Strategy<Value = BasicProperties> {
    let s = || opt(ShortStr::arb());
    (
        (s(), s(), opt(FieldTable::arb()), opt(any::<u8>().boxed()), opt(any::<u8>().boxed())),
        (s(), s(), s(), s(), opt(any::<u64>().boxed())),
        (s(), s(), s(), s()),
    )
        .prop_map(|((ct, ce, h, dm, pr), (ci, rt, ex, mi, ts), (ty, ui, ai, cl))| BasicProperties {
            content_type: ct,
            content_encoding: ce,
            headers: h,
            delivery_mode: dm,
            priority: pr,
            correlation_id: ci,
            reply_to: rt,
            expiration: ex,
            message_id: mi,
            timestamp: ts,
            message_type: ty,
            user_id: ui,
            app_id: ai,
            cluster_id: cl,
        })
}
