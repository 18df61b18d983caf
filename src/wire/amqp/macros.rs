//! The `amqp_method!` macro that defines one struct per AMQP method, with
//! its class/method ids and its argument codec (the `MethodArgs` trait of
//! the `wire` module). It also derives a proptest strategy in tests.

/// Defines method structs: fields are encoded in declaration order, `bool`
/// fields are AMQP bits, `ShortStr` shortstrs, `Bytes` longstrs,
/// `FieldTable` tables, and integers their AMQP counterparts.
macro_rules! amqp_method {
    ($(
        $(#[$meta:meta])*
        $name:ident = ($class:expr, $method:expr, $text:literal) {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// AMQP class id of this method.
            pub const CLASS_ID: u16 = $class;
            /// AMQP method id of this method within its class.
            pub const METHOD_ID: u16 = $method;
            /// The method's name in the spec, e.g. `basic.publish`.
            pub const NAME: &'static str = $text;
        }

        impl $crate::wire::amqp::primitives::MethodArgs for $name {
            #[allow(unused_variables)]
            fn read_args(
                r: &mut $crate::wire::amqp::primitives::Reader<'_>,
            ) -> Result<Self, $crate::wire::amqp::DecodeError> {
                Ok(Self {
                    $( $field: $crate::wire::amqp::primitives::Field::read(r)?, )*
                })
            }
            #[allow(unused_variables)]
            fn write_args(&self, w: &mut $crate::wire::amqp::primitives::Writer<'_>) {
                $( $crate::wire::amqp::primitives::Field::write(&self.$field, w); )*
            }
            #[allow(unused_variables)]
            fn size_args(&self, s: &mut $crate::wire::amqp::primitives::Sizer) {
                $( $crate::wire::amqp::primitives::Field::size(&self.$field, s); )*
            }
        }

        #[cfg(test)]
        impl $crate::wire::amqp::arb::Arb for $name {
            fn arb() -> proptest::strategy::BoxedStrategy<Self> {
                use proptest::strategy::Strategy;
                (
                    proptest::strategy::Just(()),
                    $( <$ty as $crate::wire::amqp::arb::Arb>::arb(), )*
                )
                    .prop_map(|((), $($field,)*)| Self { $($field,)* })
                    .boxed()
            }
        }
    )*};
}
