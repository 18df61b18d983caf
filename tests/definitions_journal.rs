//! Durable definitions across restarts through the definitions journal
//! (`<data dir>/definitions.journal`, see docs/log-format.md): changes appended to the
//! journal survive SIGKILL, compaction into a snapshot loses nothing, an incomplete last
//! record is ignored, a damaged record ends the replay there, and a version-1 snapshot
//! (no journal) still loads.

use std::path::{Path, PathBuf};

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::ExchangeKind;

use warren::broker::node::vhost_dir;

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

const FLAGS: &[&str] = &["--storage", "disk", "--fsync", "always"];
const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};
const PASSIVE: QueueDeclareOptions = QueueDeclareOptions {
    passive: true,
    durable: false,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    (temp, dir)
}

fn start(dir: &Path) -> Server {
    Server::warren(Broker::start_in(dir, FLAGS))
}

/// Declares `names` as durable queues, then SIGKILLs the broker.
fn declare_and_kill(dir: &Path, names: &[String]) {
    run(async {
        let server = start(dir);
        let (_conn, ch) = server.open().await;
        for name in names {
            declare_with(&ch, name, DURABLE, FieldTable::default()).await;
        }
        server.warren.expect("a Warren").kill();
    });
}

/// Whether each of `names` exists after a restart on `dir`.
fn exist_after_restart(dir: &Path, names: &[String]) -> Vec<bool> {
    run(async {
        let server = start(dir);
        let conn = server.connect().await;
        let mut found = Vec::new();
        for name in names {
            let ch = channel(&conn).await;
            found.push(ch.queue_declare(name, PASSIVE, FieldTable::default()).await.is_ok());
        }
        found
    })
}

#[test]
fn declares_past_a_compaction_survive_sigkill() {
    let (_temp, dir) = data_dir();
    // More than DEFINITIONS_JOURNAL_RECORDS_MIN (4096): at least one compaction happens.
    let names: Vec<_> = (0..4200).map(|i| format!("{}-{i}", unique("many"))).collect();
    declare_and_kill(&dir, &names);
    assert!(exist_after_restart(&dir, &names).iter().all(|&found| found), "a queue was lost");
}

#[test]
fn bind_unbind_and_exchange_delete_replay_in_order() {
    let (_temp, dir) = data_dir();
    let (q, kept, gone) = (unique("jq"), unique("jx-kept"), unique("jx-gone"));
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        for x in [&kept, &gone] {
            within(
                "exchange.declare",
                ch.exchange_declare(x, ExchangeKind::Direct, durable, FieldTable::default()),
            )
            .await
            .expect("declare");
        }
        declare_with(&ch, &q, DURABLE, FieldTable::default()).await;
        for (x, key) in [(&kept, "stays"), (&kept, "goes"), (&gone, "k")] {
            within("bind", ch.queue_bind(&q, x, key, QueueBindOptions::default(), FieldTable::default()))
                .await
                .expect("bind");
        }
        within("unbind", ch.queue_unbind(&q, &kept, "goes", FieldTable::default())).await.expect("unbind");
        within("exchange.delete", ch.exchange_delete(&gone, Default::default())).await.expect("delete");
        server.warren.expect("a Warren").kill();
    });
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open_confirming().await;
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        let reply = expect_error(
            "deleted exchange",
            ch.exchange_declare(&gone, ExchangeKind::Direct, passive, FieldTable::default()),
        )
        .await;
        assert!(reply.starts_with("404"), "{reply}");
        let ch = server.open_confirming().await.1;
        publish(&ch, &kept, "stays", b"routed").await;
        publish(&ch, &kept, "goes", b"unbound").await;
        assert_eq!(drain(&ch, &q).await, vec!["routed"]);
    });
}

/// Deleting a durable queue appends one record: the snapshot is not rewritten, and the
/// deletion (with the queue's bindings and an auto-delete exchange left without bindings)
/// survives SIGKILL.
#[test]
fn a_queue_delete_is_one_journal_record() {
    let (_temp, dir) = data_dir();
    let (gone, kept, auto) = (unique("jd-gone"), unique("jd-kept"), unique("jd-auto"));
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        let auto_delete = ExchangeDeclareOptions { durable: true, auto_delete: true, ..Default::default() };
        within(
            "exchange.declare",
            ch.exchange_declare(&auto, ExchangeKind::Fanout, auto_delete, FieldTable::default()),
        )
        .await
        .expect("declare");
        for q in [&gone, &kept] {
            declare_with(&ch, q, DURABLE, FieldTable::default()).await;
        }
        within("bind", ch.queue_bind(&gone, &auto, "", QueueBindOptions::default(), FieldTable::default()))
            .await
            .expect("bind");
        let snapshot = std::fs::read(vhost_dir(&dir, "/").join("definitions")).expect("snapshot");
        let journal =
            std::fs::metadata(vhost_dir(&dir, "/").join("definitions.journal")).expect("journal").len();
        within("queue.delete", ch.queue_delete(&gone, Default::default())).await.expect("delete");
        assert_eq!(
            std::fs::read(vhost_dir(&dir, "/").join("definitions")).expect("snapshot"),
            snapshot,
            "snapshot rewritten"
        );
        let grown =
            std::fs::metadata(vhost_dir(&dir, "/").join("definitions.journal")).expect("journal").len()
                - journal;
        // A queue.delete and an exchange.delete record, each well under 200 bytes.
        assert!(grown > 0 && grown < 400, "journal grew by {grown} bytes");
        server.warren.expect("a Warren").kill();
    });
    assert_eq!(exist_after_restart(&dir, &[gone, kept]), vec![false, true]);
    run(async {
        let server = start(&dir);
        let (_conn, ch) = server.open().await;
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        let reply = expect_error(
            "auto-deleted exchange",
            ch.exchange_declare(&auto, ExchangeKind::Fanout, passive, FieldTable::default()),
        )
        .await;
        assert!(reply.starts_with("404"), "{reply}");
    });
}

#[test]
fn an_incomplete_last_record_is_ignored() {
    let (_temp, dir) = data_dir();
    let names = vec![unique("torn-a"), unique("torn-b")];
    declare_and_kill(&dir, &names);
    let journal = vhost_dir(&dir, "/").join("definitions.journal");
    let mut bytes = std::fs::read(&journal).expect("journal");
    // A record header promising 100 bytes, followed by only 3 of them: a torn append.
    bytes.extend_from_slice(&100u32.to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&journal, bytes).expect("write journal");
    assert_eq!(exist_after_restart(&dir, &names), vec![true, true]);
}

#[test]
fn a_damaged_record_ends_the_replay_there() {
    let (_temp, dir) = data_dir();
    let names = vec![unique("dmg-a"), unique("dmg-b"), unique("dmg-c")];
    declare_and_kill(&dir, &names);
    let journal = vhost_dir(&dir, "/").join("definitions.journal");
    let mut bytes = std::fs::read(&journal).expect("journal");
    // Header (14 bytes), then records of equal length: flip a byte in the second's payload.
    let record_bytes = (bytes.len() - 14) / 3;
    let at = 14 + record_bytes + record_bytes / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&journal, bytes).expect("write journal");
    assert_eq!(exist_after_restart(&dir, &names), vec![true, false, false]);
    assert!(vhost_dir(&dir, "/").join("definitions.journal.damaged").exists(), "the damaged journal is kept");
}

#[test]
fn a_version_1_definitions_file_still_loads() {
    use warren::wire::amqp::{FieldTable as Table, FieldValue, ShortStr};
    let (_temp, dir) = data_dir();
    let q = unique("v1");
    let queue = Table(vec![
        (ShortStr::from_static("name"), FieldValue::LongStr(q.clone().into_bytes().into())),
        (ShortStr::from_static("auto_delete"), FieldValue::Bool(false)),
        (ShortStr::from_static("arguments"), FieldValue::Table(Table::default())),
    ]);
    let document = Table(vec![
        (ShortStr::from_static("exchanges"), FieldValue::Array(vec![])),
        (ShortStr::from_static("queues"), FieldValue::Array(vec![FieldValue::Table(queue)])),
        (ShortStr::from_static("bindings"), FieldValue::Array(vec![])),
    ]);
    let mut bytes = bytes::BytesMut::new();
    document.encode(&mut bytes);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    std::fs::create_dir_all(&dir).expect("data dir");
    std::fs::write(dir.join("definitions"), &bytes).expect("write definitions");
    assert_eq!(exist_after_restart(&dir, std::slice::from_ref(&q)), vec![true]);
    // Loaded once, it is rewritten as a version-2 snapshot and survives another restart.
    assert_eq!(exist_after_restart(&dir, std::slice::from_ref(&q)), vec![true]);
}
