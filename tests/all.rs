//! Every integration test, compiled into one binary. One module per capability.

mod harness;

/// lapin: logins, vhosts, permissions, topic permissions, user_id and vhost limits.
mod access_control;

/// lapin against Warren on disc across SIGKILL: acks above an unacked message persist.
mod ack_persistence;
/// lapin against Warren on disc across SIGKILL and clean restarts.
mod amqp_durability;
/// lapin: RabbitMQ's exact reply codes and texts for channel and connection errors.
mod amqp_errors;
/// lapin: AMQP methods one behaviour at a time.
mod amqp_methods;
/// Backlogs larger than memory should hold on disc: priority and byte-limited queues.
mod backlogs;
/// lapin on disc across SIGKILL: the definitions journal, its compaction and damage.
mod definitions_journal;

/// Debian's amqp-tools command-line programs against the broker.
mod amqp_tools;
/// Malformed and hostile input on the AMQP port, answered as RabbitMQ does, beside a bystander.
mod bad_input;
/// `warren bench` against Warren: counts add up, the JSON report's keys, a one-scenario suite.
mod bench_cli;
/// Bounds on kept state (touched queues, stream rejects) and on waits (shutdown's close).
mod bounds;
/// `warren ctl` against Warren's management API: every command, and its exit codes.
mod ctl;
/// A low open-descriptor limit: thousands of durable queues through the bound on open
/// segment files, across a restart.
mod descriptors;
/// A full disc on a small tmpfs: blocking at the free-disc limit, recovery after ENOSPC.
mod disk_full;
/// lapin: how a classic queue hands out messages: round-robin between competing consumers,
/// per-message expiry at the head.
mod dispatch;
/// Closes, releases and secret updates answered as RabbitMQ does: unbinds of what is gone,
/// update-secret, crossing channel closes, close-ok after the release.
mod gateway_handshakes;
/// Graceful shutdowns: acks after basic.cancel on streams, blocked publishers' heartbeats.
mod graceful;
/// The layer order of `src/`: every `crate::` import runs down it.
mod layering;
/// The log core's behaviour on every storage backend: appends, reads, rolls, retention,
/// tail waits, timestamps, consumer offsets.
mod log_core;
/// A child process appending under `fsync always`, killed at random moments.
mod log_crash;
/// lapin against Warren on disc after segment files were cut or flipped while it was down.
mod log_damage;
/// Random operation sequences checked against an in-memory model (proptest).
mod log_model;
/// Recovery from torn and corrupt files, damaged indexes, and sealed-segment damage.
mod log_recovery;
/// The log core after a failed write: cut back, retried, nothing lost or duplicated.
mod log_write_faults;
/// The management API's users, vhosts, permissions, limits and policies: rabbitmq_http_client,
/// their effect over AMQP, a restart, status codes, access by tag, RabbitMQ's keys.
mod management_access;
/// The management HTTP API: rabbitmq_http_client, raw HTTP status codes and conventions,
/// rabbitmqadmin v1.
mod management_api;
/// The management API's connections, channels and consumers with lapin clients connected:
/// rabbitmq_http_client, closing with 320, message counters, visibility, RabbitMQ's keys.
mod management_connections;
/// Definitions import and export over the management API: a RabbitMQ 3.10.8 export whose
/// users then log in over AMQP, form uploads, rabbitmqadmin v1, round trips, restarts.
mod management_definitions;
/// Every management endpoint's keys, status codes and error bodies against RabbitMQ 3.10.8's
/// goldens, by running the tool that captured them against Warren.
mod management_goldens;
/// The management API's node-level answers: churn counts after known lapin traffic, object
/// totals, listeners, the node's figures, health checks, absent features, no credentials.
mod management_node;
/// The management API's queues and exchanges with lapin traffic: exchanges' publishes in
/// and out, a queue's consumers, sizes, memory figures, consumer capacity, idle time and
/// head timestamp, a stream's members and readers; rabbitmq_http_client parses them.
mod management_objects;
/// The management API across vhosts: names kept apart, lists per vhost, 404 for a missing
/// vhost, and what a non-administrator sees and may do.
mod management_vhosts;
/// `--storage memory` against its memory limit, on a Warren it starts: a flood blocked near
/// the limit, memory given back after a drain, consumers that keep up never blocking.
mod memory_mode;
/// Node.js amqplib against the broker.
mod node_clients;
/// Commands applied in the order a channel sends them; dead letters kept in source order.
mod ordering;
/// Policies set and cleared through the management API, applied at once to existing and
/// new queues and exchanges, and again after a restart.
mod policies;
/// Python clients (pika, kombu) against the broker: the RabbitMQ tutorials and more.
mod python_clients;
/// The `warren` binary: starts on its defaults, stops cleanly on SIGTERM.
mod serve;
/// Stream queues: offsets, named consumers, retention, compression, fan-out.
mod streams;
/// Stream queues through lapin.
mod streams_lapin;
/// Non-durable and exclusive queues' backlogs in their logs' files in disc storage, out of
/// the broker's memory; their files removed with the queue and at the next start.
mod transient_backlogs;
