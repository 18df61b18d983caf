//! Methods of RabbitMQ's `confirm` class (class id 85): publisher confirms.

amqp_method! {
    /// Puts the channel into publisher-confirm mode.
    ConfirmSelect = (85, 10, "confirm.select") {
        /// Do not send `confirm.select-ok`.
        nowait: bool,
    }

    /// Confirms a `confirm.select`.
    ConfirmSelectOk = (85, 11, "confirm.select-ok") {}
}
