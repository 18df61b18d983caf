//! Methods of the `tx` class (class id 90): standard transactions.

amqp_method! {
    /// Puts the channel into transactional mode.
    TxSelect = (90, 10, "tx.select") {}

    /// Confirms a `tx.select`.
    TxSelectOk = (90, 11, "tx.select-ok") {}

    /// Commits the current transaction.
    TxCommit = (90, 20, "tx.commit") {}

    /// Confirms a `tx.commit`.
    TxCommitOk = (90, 21, "tx.commit-ok") {}

    /// Abandons the current transaction.
    TxRollback = (90, 30, "tx.rollback") {}

    /// Confirms a `tx.rollback`.
    TxRollbackOk = (90, 31, "tx.rollback-ok") {}
}
