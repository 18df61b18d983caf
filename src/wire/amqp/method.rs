//! The [`Method`] enum over every supported method and its dispatch by
//! class id / method id.
//!
//! A method frame payload is class id (u16), method id (u16), then the
//! method's arguments; see the per-class modules for the argument structs.

use bytes::{Bytes, BytesMut};

use super::error::DecodeError;
use super::primitives::{MethodArgs, Reader, Sizer, Writer};
#[allow(clippy::wildcard_imports)]
use super::{basic::*, channel::*, confirm::*, connection::*, exchange::*, queue::*, tx::*};

macro_rules! methods {
    ($($variant:ident),* $(,)?) => {
        /// Any AMQP method Warren understands. Each variant wraps the struct
        /// of the same name, which holds the method's arguments.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Method {
            $(
                #[doc = concat!("See [`", stringify!($variant), "`].")]
                $variant($variant),
            )*
        }

        $(
            impl From<$variant> for Method {
                fn from(m: $variant) -> Self {
                    Method::$variant(m)
                }
            }
        )*

        impl Method {
            /// AMQP class id.
            pub fn class_id(&self) -> u16 {
                match self { $( Method::$variant(_) => $variant::CLASS_ID, )* }
            }

            /// AMQP method id within the class.
            pub fn method_id(&self) -> u16 {
                match self { $( Method::$variant(_) => $variant::METHOD_ID, )* }
            }

            /// The method's name in the spec, e.g. `basic.publish`.
            pub fn name(&self) -> &'static str {
                match self { $( Method::$variant(_) => $variant::NAME, )* }
            }

            fn write_args(&self, w: &mut Writer<'_>) {
                match self { $( Method::$variant(m) => m.write_args(w), )* }
            }

            fn size_args(&self, s: &mut Sizer) {
                match self { $( Method::$variant(m) => m.size_args(s), )* }
            }

            fn read_args(
                class_id: u16,
                method_id: u16,
                r: &mut Reader<'_>,
            ) -> Result<Self, DecodeError> {
                $(
                    if (class_id, method_id) == ($variant::CLASS_ID, $variant::METHOD_ID) {
                        return $variant::read_args(r).map(Method::$variant);
                    }
                )*
                Err(DecodeError::UnknownMethod { class_id, method_id })
            }

            /// One default-valued instance of every variant (tests only).
            #[cfg(test)]
            pub(crate) fn all_defaults() -> Vec<Method> {
                vec![$( Method::$variant($variant::default()), )*]
            }

            /// A strategy generating arbitrary methods of every kind (tests only).
            #[cfg(test)]
            pub(crate) fn arb() -> proptest::strategy::BoxedStrategy<Method> {
                use proptest::strategy::Strategy;
                use $crate::wire::amqp::arb::Arb;
                proptest::strategy::Union::new(vec![
                    $( $variant::arb().prop_map(Method::$variant).boxed(), )*
                ])
                .boxed()
            }
        }
    };
}

methods! {
    ConnectionStart, ConnectionStartOk, ConnectionSecure, ConnectionSecureOk,
    ConnectionTune, ConnectionTuneOk, ConnectionOpen, ConnectionOpenOk,
    ConnectionClose, ConnectionCloseOk, ConnectionBlocked, ConnectionUnblocked,
    ConnectionUpdateSecret, ConnectionUpdateSecretOk,
    ChannelOpen, ChannelOpenOk, ChannelFlow, ChannelFlowOk, ChannelClose, ChannelCloseOk,
    ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete, ExchangeDeleteOk,
    ExchangeBind, ExchangeBindOk, ExchangeUnbind, ExchangeUnbindOk,
    QueueDeclare, QueueDeclareOk, QueueBind, QueueBindOk, QueueUnbind, QueueUnbindOk,
    QueuePurge, QueuePurgeOk, QueueDelete, QueueDeleteOk,
    BasicQos, BasicQosOk, BasicConsume, BasicConsumeOk, BasicCancel, BasicCancelOk,
    BasicPublish, BasicReturn, BasicDeliver, BasicGet, BasicGetOk, BasicGetEmpty,
    BasicAck, BasicReject, BasicRecoverAsync, BasicRecover, BasicRecoverOk, BasicNack,
    ConfirmSelect, ConfirmSelectOk,
    TxSelect, TxSelectOk, TxCommit, TxCommitOk, TxRollback, TxRollbackOk,
}

/// Class ids of the classes the codec knows: connection, channel, exchange, queue, basic,
/// confirm and tx. A method frame of any other class is not AMQP 0-9-1 as Warren speaks it.
pub const KNOWN_CLASS_IDS: [u16; 7] = [
    ConnectionStart::CLASS_ID,
    ChannelOpen::CLASS_ID,
    ExchangeDeclare::CLASS_ID,
    QueueDeclare::CLASS_ID,
    BasicPublish::CLASS_ID,
    ConfirmSelect::CLASS_ID,
    TxSelect::CLASS_ID,
];

impl Method {
    /// True for methods followed by a content header and body frames
    /// (`basic.publish`, `basic.return`, `basic.deliver`, `basic.get-ok`).
    pub fn has_content(&self) -> bool {
        matches!(
            self,
            Method::BasicPublish(_)
                | Method::BasicReturn(_)
                | Method::BasicDeliver(_)
                | Method::BasicGetOk(_)
        )
    }

    /// Size of the method frame payload: class id, method id and arguments.
    pub fn encoded_len(&self) -> usize {
        let mut s = Sizer::default();
        self.size_args(&mut s);
        4 + s.len()
    }

    /// Appends the method frame payload (class id, method id, arguments).
    pub fn encode(&self, buf: &mut BytesMut) {
        let mut w = Writer::new(buf);
        w.u16(self.class_id());
        w.u16(self.method_id());
        self.write_args(&mut w);
    }

    /// Decodes a method frame payload that must be consumed exactly.
    /// String and table values are zero-copy views of `payload`.
    pub fn decode(payload: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let class_id = r.u16()?;
        let method_id = r.u16()?;
        let method = Self::read_args(class_id, method_id, &mut r)?;
        match r.remaining() {
            0 => Ok(method),
            extra => Err(DecodeError::TrailingMethodBytes { class_id, method_id, extra }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::wire::amqp::primitives::ShortStr;
    use crate::wire::amqp::table::{FieldTable, FieldValue};
    use proptest::prelude::*;

    fn encode(m: &Method) -> Bytes {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        buf.freeze()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn every_method_round_trips(m in Method::arb()) {
            let bytes = encode(&m);
            prop_assert_eq!(bytes.len(), m.encoded_len());
            prop_assert_eq!(Method::decode(&bytes).unwrap(), m);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Method::decode(&Bytes::from(data));
        }

        #[test]
        fn known_ids_with_garbage_never_panic(
            m in Method::arb(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&m.class_id().to_be_bytes());
            buf.extend_from_slice(&m.method_id().to_be_bytes());
            buf.extend_from_slice(&data);
            if let Ok(d) = Method::decode(&buf.freeze()) {
                prop_assert_eq!(Method::decode(&encode(&d)).unwrap(), d);
            }
        }
    }

    #[test]
    fn ids_are_unique_and_defaults_round_trip() {
        let all = Method::all_defaults();
        assert_eq!(all.len(), 64);
        let mut ids: Vec<_> = all.iter().map(|m| (m.class_id(), m.method_id())).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        for m in all {
            let bytes = encode(&m);
            assert_eq!(Method::decode(&bytes).unwrap(), m, "{}", m.name());
            // Cutting any argument byte off is an error, never a panic.
            for cut in 0..bytes.len() {
                assert!(Method::decode(&bytes.slice(..cut)).is_err(), "{} cut {cut}", m.name());
            }
        }
    }

    #[test]
    fn known_class_ids_are_the_classes_of_every_method() {
        let mut classes: Vec<u16> = Method::all_defaults().iter().map(Method::class_id).collect();
        classes.sort_unstable();
        classes.dedup();
        assert_eq!(classes, KNOWN_CLASS_IDS);
    }

    #[test]
    fn unknown_and_trailing() {
        let b = Bytes::from_static(b"\x00\x0a\x00\x63");
        assert_eq!(Method::decode(&b), Err(DecodeError::UnknownMethod { class_id: 10, method_id: 99 }));
        let b = Bytes::from_static(b"\x00\x5a\x00\x0a\x00");
        assert_eq!(
            Method::decode(&b),
            Err(DecodeError::TrailingMethodBytes { class_id: 90, method_id: 10, extra: 1 })
        );
    }

    #[test]
    fn basic_publish_bytes() {
        // basic.publish ticket=0 exchange="amq.direct" routing-key="rk" mandatory
        let raw = Bytes::from_static(b"\x00\x3c\x00\x28\x00\x00\x0aamq.direct\x02rk\x01");
        let m = Method::decode(&raw).unwrap();
        let expected = Method::BasicPublish(BasicPublish {
            reserved_1: 0,
            exchange: ShortStr::from_static("amq.direct"),
            routing_key: ShortStr::from_static("rk"),
            mandatory: true,
            immediate: false,
        });
        assert_eq!(m, expected);
        assert!(m.has_content());
        assert_eq!(encode(&m), raw);
        // Strings are views of the payload, not copies.
        if let Method::BasicPublish(p) = &m {
            assert_eq!(p.exchange.as_bytes().as_ptr(), raw[7..].as_ptr());
        }
    }

    #[test]
    fn queue_declare_packs_five_bits() {
        let m = Method::QueueDeclare(QueueDeclare {
            queue: ShortStr::from_static("q"),
            durable: true,
            auto_delete: true,
            no_wait: true,
            ..Default::default()
        });
        // durable = bit 1, auto-delete = bit 3, no-wait = bit 4 -> 0b11010
        assert_eq!(&encode(&m)[..], b"\x00\x32\x00\x0a\x00\x00\x01q\x1a\x00\x00\x00\x00");
    }

    #[test]
    fn connection_start_from_rabbitmq() {
        // connection.start as a RabbitMQ broker sends it, with a trimmed
        // server-properties table: {"capabilities": F {"publisher_confirms": t true},
        // "product": S "RabbitMQ"}, mechanisms "AMQPLAIN PLAIN", locales "en_US".
        let mut raw = Vec::new();
        raw.extend_from_slice(b"\x00\x0a\x00\x0a\x00\x09");
        let caps: &[u8] = b"\x0ccapabilitiesF\x00\x00\x00\x15\x12publisher_confirmst\x01";
        let product: &[u8] = b"\x07productS\x00\x00\x00\x08RabbitMQ";
        raw.extend_from_slice(&u32::try_from(caps.len() + product.len()).unwrap().to_be_bytes());
        raw.extend_from_slice(caps);
        raw.extend_from_slice(product);
        raw.extend_from_slice(b"\x00\x00\x00\x0eAMQPLAIN PLAIN\x00\x00\x00\x05en_US");
        let raw = Bytes::from(raw);
        let Method::ConnectionStart(start) = Method::decode(&raw).unwrap() else {
            panic!("not connection.start");
        };
        assert_eq!((start.version_major, start.version_minor), (0, 9));
        let props = &start.server_properties;
        assert_eq!(props.get_str("product"), Some("RabbitMQ"));
        assert_eq!(
            props.get_table("capabilities").unwrap().get("publisher_confirms"),
            Some(&FieldValue::Bool(true))
        );
        assert_eq!(&start.mechanisms[..], b"AMQPLAIN PLAIN");
        assert_eq!(&start.locales[..], b"en_US");
        assert_eq!(encode(&Method::ConnectionStart(start)), raw);
    }

    #[test]
    fn tune_and_close_bytes() {
        let tune =
            Method::ConnectionTune(ConnectionTune { channel_max: 2047, frame_max: 131_072, heartbeat: 60 });
        assert_eq!(&encode(&tune)[..], b"\x00\x0a\x00\x1e\x07\xff\x00\x02\x00\x00\x00\x3c");
        let close = Method::ChannelClose(ChannelClose {
            reply_code: 404,
            reply_text: ShortStr::from_static("NOT_FOUND"),
            class_id: 50,
            method_id: 10,
        });
        assert_eq!(&encode(&close)[..], b"\x00\x14\x00\x28\x01\x94\x09NOT_FOUND\x00\x32\x00\x0a");
        let empty = FieldTable::new();
        assert_eq!(empty.encoded_len(), 4);
    }
}
