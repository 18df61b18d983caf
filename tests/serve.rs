//! The binary starts on its defaults and stops cleanly on SIGTERM.

use std::time::Duration;

use crate::harness::broker::Broker;

#[test]
fn serve_starts_and_stops_cleanly_on_sigterm() {
    let broker = Broker::start(&["--storage", "disk", "--fsync", "always"]);
    assert!(broker.data_dir.is_dir(), "the data directory is created");
    assert!(broker.wait_for_log("warren is running", Duration::from_secs(10)));
    let status = broker.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn serve_refuses_an_invalid_setting() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["serve", "--segment-bytes", "10", "--storage", "memory"])
        .output()
        .expect("run warren");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("segment-bytes"));
}
