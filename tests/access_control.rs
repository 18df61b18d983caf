//! Users, vhosts and permissions over AMQP (lapin), each row of RabbitMQ's access table
//! allowed and refused with RabbitMQ's reply: logins, `connection.open` of a vhost, the
//! configure/write/read checks of declare, delete, bind, publish, consume, get and purge,
//! topic permissions, `user_id`, and the vhost limits. Vhosts keep the same names apart,
//! and the access model and every vhost's queues survive a restart.
//!
//! The access model is written into the data directory before the broker starts, through
//! the same library type the broker stores it with.

use std::path::Path;

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};
use warren::broker::access::{AccessControl, Tag, VhostLimits};
use warren::broker::node::ACCESS_FILE;

use crate::harness::broker::Broker;
use crate::harness::lapin_client::*;
use crate::harness::run;

/// guest (administrator, every permission on `/`); in vhost `v1`: alice, who may
/// configure, write and read only names starting `own-`, and who may write to and read
/// from `amq.topic` only keys starting `allowed.`; bob, with no permissions in `v1`; and
/// vhost `lim`, which takes one connection and one queue.
fn write_access_model(dir: &Path) {
    let access = AccessControl::with_default_user("guest", "guest").expect("default");
    access
        .update(|state| {
            state.add_vhost("v1")?;
            state.add_vhost("lim")?;
            state.set_vhost_limits("lim", VhostLimits { max_connections: Some(1), max_queues: Some(1) })?;
            state.set_permissions("guest", "v1", ".*", ".*", ".*")?;
            state.set_permissions("guest", "lim", ".*", ".*", ".*")?;
            state.add_user("alice", Some("alice-pw"), vec![Tag::Management])?;
            state.set_permissions(
                "alice",
                "v1",
                "^own-.*",
                "^own-.*|^amq\\.topic$",
                "^own-.*|^amq\\.topic$",
            )?;
            state.set_topic_permissions("alice", "v1", "amq.topic", "^allowed\\.", "^allowed\\.")?;
            state.add_user("bob", Some("bob-pw"), vec![])?;
            state.add_user("svc", Some("svc-pw"), vec![Tag::Impersonator])?;
            state.set_permissions("svc", "v1", ".*", ".*", ".*")
        })
        .expect("access model");
    std::fs::create_dir_all(dir).expect("data dir");
    std::fs::write(dir.join(ACCESS_FILE), access.to_bytes()).expect("write the access model");
}

fn start(dir: &Path) -> Server {
    write_access_model(dir);
    Server::warren(Broker::start_in(dir, &["--storage", "disk"]))
}

/// A connection refused at `connection.open` (or at login): its `"CODE TEXT"`.
async fn refused(url: &str) -> String {
    match within("connect", try_connect(url)).await {
        Ok(_) => panic!("{url}: expected a refusal"),
        Err(error) => reply_of(&error),
    }
}

#[test]
fn logins_and_vhost_access_are_checked_as_rabbitmq_does() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path());
    run(async {
        assert_eq!(
            refused(&server.url_as("alice", "alice-pw", "%2F")).await,
            "530 NOT_ALLOWED - access to vhost '/' refused for user 'alice'"
        );
        assert_eq!(
            refused(&server.url_as("alice", "alice-pw", "nowhere")).await,
            "530 NOT_ALLOWED - vhost nowhere not found"
        );
        assert_eq!(
            refused(&server.url_as("bob", "bob-pw", "v1")).await,
            "530 NOT_ALLOWED - access to vhost 'v1' refused for user 'bob'"
        );
        let wrong = refused(&server.url_as("alice", "not-her-password", "v1")).await;
        assert!(wrong.starts_with("403 ACCESS_REFUSED - Login was refused"), "{wrong}");
        connect_url(&server.url_as("alice", "alice-pw", "v1")).await;
    });
}

/// `access to KIND 'NAME' in vhost 'v1' refused for user 'alice'`.
fn refusal(kind: &str, name: &str) -> String {
    format!("403 ACCESS_REFUSED - access to {kind} '{name}' in vhost 'v1' refused for user 'alice'")
}

/// The broker with a queue `theirs` in `v1`, and a connection of alice to `v1`.
async fn with_their_queue(server: &Server) -> lapin::Connection {
    let guest = connect_url(&server.url_as("guest", "guest", "v1")).await;
    declare(&channel(&guest).await, "theirs", FieldTable::default()).await;
    connect_url(&server.url_as("alice", "alice-pw", "v1")).await
}

#[test]
fn configure_is_checked_on_declare_and_delete() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path());
    run(async {
        let alice = with_their_queue(&server).await;
        let ch = channel(&alice).await;
        let declared = ch.queue_declare("theirs-2", QueueDeclareOptions::default(), FieldTable::default());
        assert_eq!(expect_error("queue.declare", declared).await, refusal("queue", "theirs-2"));
        let ch = channel(&alice).await;
        declare(&ch, "own-q", FieldTable::default()).await;
        let options = ExchangeDeclareOptions::default();
        let declared = ch.exchange_declare("x-theirs", ExchangeKind::Direct, options, FieldTable::default());
        assert_eq!(expect_error("exchange.declare", declared).await, refusal("exchange", "x-theirs"));
        let ch = channel(&alice).await;
        let reply = expect_error("queue.delete", ch.queue_delete("theirs", Default::default())).await;
        assert_eq!(reply, refusal("queue", "theirs"));
    });
}

#[test]
fn write_and_read_are_checked_on_publish_get_consume_purge_and_bind() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path());
    run(async {
        let alice = with_their_queue(&server).await;
        declare(&channel(&alice).await, "own-q", FieldTable::default()).await;
        // write on the exchange to publish: the default exchange is `amq.default`
        let ch = channel(&alice).await;
        let mut errors = Errors::of_channel(&ch);
        let _ = ch.basic_publish("", "own-q", Default::default(), b"m", BasicProperties::default()).await;
        assert_eq!(errors.next().await, refusal("exchange", "amq.default"));
        // read on the queue to get, consume and purge
        let ch = channel(&alice).await;
        let reply = expect_error("basic.get", ch.basic_get("theirs", BasicGetOptions::default())).await;
        assert_eq!(reply, refusal("queue", "theirs"));
        let ch = channel(&alice).await;
        let consumed = ch.basic_consume("theirs", "", Default::default(), FieldTable::default());
        assert_eq!(expect_error("basic.consume", consumed).await, refusal("queue", "theirs"));
        let ch = channel(&alice).await;
        let reply = expect_error("queue.purge", ch.queue_purge("theirs", QueuePurgeOptions::default())).await;
        assert_eq!(reply, refusal("queue", "theirs"));
        // bind: write on the destination, then read on the source
        let bind = |ch: lapin::Channel, queue: &'static str, exchange: &'static str, key: &'static str| async move {
            ch.queue_bind(queue, exchange, key, QueueBindOptions::default(), FieldTable::default()).await
        };
        let reply =
            expect_error("queue.bind", bind(channel(&alice).await, "theirs", "amq.topic", "allowed.k")).await;
        assert_eq!(reply, refusal("queue", "theirs"));
        let reply = expect_error("queue.bind", bind(channel(&alice).await, "own-q", "amq.direct", "k")).await;
        assert_eq!(reply, refusal("exchange", "amq.direct"));
        let ch = channel(&alice).await;
        within("queue.bind", bind(ch.clone(), "own-q", "amq.topic", "allowed.k"))
            .await
            .expect("allowed bind");
        assert!(get(&ch, "own-q", true).await.is_none(), "read on own-q is allowed");
    });
}

#[test]
fn topic_permissions_and_user_id_are_checked_on_publish() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path());
    run(async {
        let alice = connect_url(&server.url_as("alice", "alice-pw", "v1")).await;
        let ch = channel(&alice).await;
        declare(&ch, "own-t", FieldTable::default()).await;
        within(
            "queue.bind",
            ch.queue_bind(
                "own-t",
                "amq.topic",
                "allowed.#",
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("bind");
        let reply = expect_error(
            "queue.bind",
            ch.queue_bind(
                "own-t",
                "amq.topic",
                "denied.#",
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_eq!(
            reply,
            "403 ACCESS_REFUSED - access to topic 'denied.#' in exchange 'amq.topic' in vhost 'v1' refused for user 'alice'"
        );
        let ch = channel(&alice).await;
        ch.confirm_select(Default::default()).await.expect("confirm.select");
        publish(&ch, "amq.topic", "allowed.one", b"in").await;
        let mut errors = Errors::of_channel(&ch);
        let _ = ch
            .basic_publish("amq.topic", "denied.two", Default::default(), b"out", BasicProperties::default())
            .await;
        assert_eq!(
            errors.next().await,
            "403 ACCESS_REFUSED - access to topic 'denied.two' in exchange 'amq.topic' in vhost 'v1' refused for user 'alice'"
        );
        let ch = channel(&alice).await;
        assert_eq!(drain(&ch, "own-t").await, vec!["in"]);
        // user_id: one's own name, or anyone's with the impersonator tag
        let mut errors = Errors::of_channel(&ch);
        let as_bob = BasicProperties::default().with_user_id("bob".into());
        let _ = ch.basic_publish("amq.topic", "allowed.x", Default::default(), b"m", as_bob.clone()).await;
        assert_eq!(
            errors.next().await,
            "406 PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'alice'"
        );
        let svc = connect_url(&server.url_as("svc", "svc-pw", "v1")).await;
        let ch = channel(&svc).await;
        ch.confirm_select(Default::default()).await.expect("confirm.select");
        publish_props(&ch, "amq.topic", "allowed.y", b"as bob", as_bob).await;
    });
}

#[test]
fn vhost_limits_hold() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path());
    run(async {
        let first = connect_url(&server.url_as("guest", "guest", "lim")).await;
        assert_eq!(
            refused(&server.url_as("guest", "guest", "lim")).await,
            "530 NOT_ALLOWED - access to vhost 'lim' refused for user 'guest': connection limit (1) is reached"
        );
        let ch = channel(&first).await;
        declare(&ch, "one", FieldTable::default()).await;
        let reply = expect_error(
            "queue.declare",
            ch.queue_declare("two", QueueDeclareOptions::default(), FieldTable::default()),
        )
        .await;
        assert_eq!(
            reply,
            "406 PRECONDITION_FAILED - cannot declare queue 'two': queue limit in vhost 'lim' (1) is reached"
        );
        let ch = channel(&first).await;
        declare(&ch, "one", FieldTable::default()).await;
        drop(first);
    });
}

#[test]
fn vhosts_keep_names_apart_and_survive_a_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let persistent = BasicProperties::default().with_delivery_mode(2);
    {
        let server = start(temp.path());
        run(async {
            for (vhost, body) in [("%2F", "root"), ("v1", "one")] {
                let connection = connect_url(&server.url_as("guest", "guest", vhost)).await;
                let ch = channel(&connection).await;
                ch.confirm_select(Default::default()).await.expect("confirm.select");
                declare_with(&ch, "same", durable, FieldTable::default()).await;
                publish_props(&ch, "", "same", body.as_bytes(), persistent.clone()).await;
            }
        });
        server.warren.expect("a Warren").terminate();
    }
    let server = Server::warren(Broker::start_in(temp.path(), &["--storage", "disk"]));
    run(async {
        for (vhost, body) in [("%2F", "root"), ("v1", "one")] {
            let connection = connect_url(&server.url_as("guest", "guest", vhost)).await;
            let ch = channel(&connection).await;
            assert_eq!(drain(&ch, "same").await, vec![body], "vhost {vhost}");
        }
        connect_url(&server.url_as("alice", "alice-pw", "v1")).await;
    });
}
