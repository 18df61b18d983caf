//! BROKER MODEL: exchanges, bindings, queues and routing. No sockets, no frames.

pub mod exchange;

use crate::amqp::codec::FieldValue;

/// Headers-exchange matching on AMQP field values: integers of any width compare by value.
impl exchange::HeaderValue for FieldValue {
    fn is_void(&self) -> bool {
        matches!(self, FieldValue::Void)
    }

    fn as_integer(&self) -> Option<i128> {
        match self {
            FieldValue::Timestamp(t) => Some(i128::from(*t)),
            other => other.as_i64().map(i128::from),
        }
    }

    fn as_long_str(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(bytes) => Some(bytes),
            _ => None,
        }
    }
}
