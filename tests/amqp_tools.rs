//! Debian's amqp-tools (the rabbitmq-c command-line programs), unmodified, against the
//! broker: amqp-declare-queue, amqp-publish, amqp-consume, amqp-get, amqp-delete-queue.
//! amqp-consume runs its command once per message with the body on standard input, so
//! `cat` prints the bodies back to back.

use std::time::{Duration, Instant};

use crate::harness::clients::{
    amqp_url, assert_success, run_amqp_tool, unique_name, warren_with, AmqpBroker,
};

fn tool_ok(broker: &AmqpBroker, tool: &str, args: &[&str], stdin: &[u8]) -> String {
    let output = run_amqp_tool(broker, tool, args, stdin);
    assert_success(broker, &format!("{tool} {args:?}"), &output);
    output.stdout
}

fn declare(broker: &AmqpBroker, args: &[&str]) -> String {
    tool_ok(broker, "amqp-declare-queue", args, b"").trim_end().to_owned()
}

/// Deletes a named queue if the test fails before it does, so a failed run leaves nothing
/// behind on a shared broker.
struct DeleteOnPanic<'a> {
    broker: &'a AmqpBroker,
    queue: String,
}

impl Drop for DeleteOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = run_amqp_tool(self.broker, "amqp-delete-queue", &["-q", &self.queue], b"");
        }
    }
}

/// amqp-delete-queue prints how many messages the deleted queue held.
fn delete(broker: &AmqpBroker, queue: &str) -> String {
    tool_ok(broker, "amqp-delete-queue", &["-q", queue], b"").trim().to_owned()
}

#[test]
fn amqp_tools_declare_publish_consume() {
    let broker = amqp_url();
    let queue = unique_name("amqp-tools");
    let _cleanup = DeleteOnPanic { broker: &broker, queue: queue.clone() };
    assert_eq!(declare(&broker, &["-q", &queue, "-d"]), queue, "amqp-declare-queue prints the queue's name");
    // Declaring it again, identically, is fine.
    assert_eq!(declare(&broker, &["-q", &queue, "-d"]), queue);

    let bodies = ["first message\n", "second, persistent\n", "third: {\"json\": true}\n", "fourth\n"];
    for (i, body) in bodies.iter().enumerate() {
        let mut args = vec!["-r", queue.as_str(), "-b", body, "-C", "text/plain"];
        if i == 1 {
            args.push("-p");
        }
        tool_ok(&broker, "amqp-publish", &args, b"");
    }

    let consumed = tool_ok(&broker, "amqp-consume", &["-q", &queue, "-c", "4", "--", "cat"], b"");
    assert_eq!(consumed, bodies.concat(), "amqp-consume -c 4 cat prints the four bodies in order");

    // Everything was acked: nothing left to get.
    let empty = run_amqp_tool(&broker, "amqp-get", &["-q", &queue], b"");
    assert!(!empty.status.success(), "amqp-get on an empty queue fails: {}", empty.stdout);
    assert_eq!(empty.stdout, "");
    assert_eq!(delete(&broker, &queue), "0", "the deleted queue held no messages");
}

/// `--worker-threads 1` runs the broker on one runtime thread, and it serves as usual.
#[test]
fn one_worker_thread_serves_clients() {
    let broker = warren_with(&["--storage", "memory", "--worker-threads", "1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = loop {
        let line = broker.log_lines().into_iter().find(|line| line.contains("warren is running"));
        if line.is_some() || Instant::now() > deadline {
            break line;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(started.as_deref().is_some_and(|line| line.contains("workers=1")), "start line: {started:?}");
    let queue = declare(&broker, &["-q", &unique_name("one-thread")]);
    tool_ok(&broker, "amqp-publish", &["-r", &queue, "-b", "on one thread"], b"");
    assert_eq!(tool_ok(&broker, "amqp-get", &["-q", &queue], b""), "on one thread");
    assert_eq!(delete(&broker, &queue), "0");
    broker.stop();
}

#[test]
fn amqp_tools_server_named_queue_and_line_buffered_publish() {
    let broker = amqp_url();
    let queue = declare(&broker, &["-q", ""]);
    assert!(!queue.is_empty(), "amqp-declare-queue -q '' prints the server-chosen name");
    let _cleanup = DeleteOnPanic { broker: &broker, queue: queue.clone() };

    // -l: every line of standard input is one message (the newline stays in the body).
    tool_ok(&broker, "amqp-publish", &["-r", &queue, "-l"], b"alpha\nbeta\ngamma\ndelta\nepsilon\n");
    assert_eq!(tool_ok(&broker, "amqp-get", &["-q", &queue], b""), "alpha\n", "amqp-get takes the first");
    let consumed =
        tool_ok(&broker, "amqp-consume", &["-q", &queue, "-c", "3", "--", "sh", "-c", "cat; echo '|'"], b"");
    assert_eq!(consumed, "beta\n|\ngamma\n|\ndelta\n|\n", "one command run per message, in order");
    assert_eq!(delete(&broker, &queue), "1", "one message (epsilon) was left");

    let missing = run_amqp_tool(&broker, "amqp-get", &["-q", &queue], b"");
    assert!(!missing.status.success(), "amqp-get on a deleted queue fails");
    assert!(missing.stderr.contains("404"), "a deleted queue is NOT_FOUND (404): {}", missing.stderr);
}

/// amqp-consume -e amq.direct -r KEY declares a server-named queue, binds it to the
/// predeclared amq.direct exchange and consumes; messages published to amq.direct with KEY
/// arrive. Messages published before the binding exists are dropped, so the test publishes
/// until the consumer is done.
#[test]
fn amqp_tools_consume_through_amq_direct_binding() {
    let broker = amqp_url();
    let key = unique_name("key");
    let consumer = {
        let url = broker.url().to_owned();
        let key = key.clone();
        std::thread::spawn(move || {
            std::process::Command::new("timeout")
                .args(["30", "amqp-consume", &format!("--url={url}")])
                .args(["-e", "amq.direct", "-r", &key, "-c", "2", "--", "cat"])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run amqp-consume")
        })
    };
    let until = Instant::now() + Duration::from_secs(20);
    while !consumer.is_finished() {
        assert!(Instant::now() < until, "amqp-consume got no message through amq.direct");
        tool_ok(&broker, "amqp-publish", &["-e", "amq.direct", "-r", &key, "-b", "routed\n"], b"");
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = consumer.join().expect("consumer thread");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "amqp-consume failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "routed\nrouted\n");
    assert!(
        stderr.contains("Server provided queue name: "),
        "amqp-consume reports the server-named queue: {stderr}"
    );
}
