//! A connection's deadlines as a pure value: the handshake must finish in time, a heartbeat
//! is due after half the negotiated interval without writes, a client silent for two
//! intervals is dropped, and a `connection.close` waits only so long for its close-ok.
//! While the driver does not read the socket (a publisher blocked by a resource alarm, or
//! held back by its publishes in flight) the client's heartbeats cannot be seen, so none
//! are expected, as RabbitMQ pauses its heartbeat monitor for a blocked connection; once
//! reading resumes, the wait starts again from then.
//!
//! [`Deadlines`] owns no timer and never reads the clock: the driver tells it when it read,
//! wrote or saw the connection closing, and asks [`Deadlines::check`] what is due at `now`.
//! Tests drive it with made-up instants.

use std::time::{Duration, Instant};

use crate::amqp::connection::Phase;
use crate::limits::{CLOSE_OK_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS};

/// Time a client has to finish the handshake, counted from `connection.start`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
/// How long a `connection.close` waits for its close-ok.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_millis(CLOSE_OK_TIMEOUT_MS);

/// What a connection must do now to keep its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due.
    None,
    /// Send a heartbeat frame: nothing was written for half the heartbeat interval.
    SendHeartbeat,
    /// Close the socket.
    Close(CloseReason),
}

/// Why a deadline closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The handshake did not reach `connection.open` in time.
    HandshakeTimeout,
    /// Nothing was read from the client for two heartbeat intervals of reading.
    HeartbeatsMissed,
    /// The client did not answer a `connection.close` with close-ok in time.
    CloseOkTimeout,
}

/// When a connection last read and wrote, whether it reads now, when it started and when it
/// began closing.
///
/// Invariant: every instant recorded is at or after `started`, the instant it was made with.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    started: Instant,
    /// The last read, or the instant reading last resumed if that is later.
    last_read: Instant,
    last_write: Instant,
    /// Whether the socket is being read; heartbeats are expected only then.
    reading: bool,
    closing_since: Option<Instant>,
}

impl Deadlines {
    /// Deadlines of a connection that sent `connection.start` at `now`.
    #[inline]
    pub fn new(now: Instant) -> Deadlines {
        Deadlines { started: now, last_read: now, last_write: now, reading: true, closing_since: None }
    }

    /// Whether the socket is being read (what [`Deadlines::reading_at`] last recorded).
    #[inline]
    pub fn is_reading(&self) -> bool {
        self.reading
    }

    /// Records that the driver stopped (`reading` false) or resumed reading the socket at
    /// `now`. Stopped, no heartbeats are expected; resumed, the client has two intervals
    /// from `now` again, as if it had just been heard.
    ///
    /// # Panics
    /// When `now` is before the instant these deadlines were made with.
    #[inline]
    pub fn reading_at(&mut self, reading: bool, now: Instant) {
        assert!(now >= self.started, "the clock went back");
        if reading && !self.reading {
            self.last_read = self.last_read.max(now);
        }
        self.reading = reading;
    }

    /// Records that bytes were read from the client at `now`.
    ///
    /// # Panics
    /// When `now` is before the instant these deadlines were made with.
    #[inline]
    pub fn read_at(&mut self, now: Instant) {
        assert!(now >= self.started, "the clock went back");
        self.last_read = now;
    }

    /// Records that output was written to the client at `now`.
    ///
    /// # Panics
    /// When `now` is before the instant these deadlines were made with.
    #[inline]
    pub fn wrote_at(&mut self, now: Instant) {
        assert!(now >= self.started, "the clock went back");
        self.last_write = now;
    }

    /// Records that the connection is closing at `now`; the wait for close-ok counts from
    /// the first call, later calls change nothing.
    ///
    /// # Panics
    /// When `now` is before the instant these deadlines were made with.
    #[inline]
    pub fn closing_at(&mut self, now: Instant) {
        assert!(now >= self.started, "the clock went back");
        self.closing_since.get_or_insert(now);
    }

    /// What is due at `now` for a connection in `phase` whose negotiated heartbeat is
    /// `heartbeat_s` seconds (0: no heartbeats).
    ///
    /// Before `connection.open` the handshake must finish within the handshake timeout. Once
    /// open, a client silent for more than two heartbeat intervals while it is read is
    /// closed, and a heartbeat is due once nothing was written for half an interval (read
    /// or not). While closing, the close-ok must
    /// arrive within the close-ok timeout of [`Deadlines::closing_at`].
    pub fn check(&self, now: Instant, phase: Phase, heartbeat_s: u16) -> Action {
        match phase {
            Phase::AwaitStartOk | Phase::AwaitTuneOk | Phase::AwaitOpen => {
                if now.saturating_duration_since(self.started) > HANDSHAKE_TIMEOUT {
                    return Action::Close(CloseReason::HandshakeTimeout);
                }
            }
            Phase::Open => {
                let heartbeat = Duration::from_secs(u64::from(heartbeat_s));
                if heartbeat.is_zero() {
                    return Action::None;
                }
                if self.reading && now.saturating_duration_since(self.last_read) > heartbeat * 2 {
                    return Action::Close(CloseReason::HeartbeatsMissed);
                }
                if now.saturating_duration_since(self.last_write) >= heartbeat / 2 {
                    return Action::SendHeartbeat;
                }
            }
            Phase::Closing => {
                let expired = self
                    .closing_since
                    .is_some_and(|since| now.saturating_duration_since(since) > CLOSE_OK_TIMEOUT);
                if expired {
                    return Action::Close(CloseReason::CloseOkTimeout);
                }
            }
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn handshake_times_out_only_before_open() {
        let base = Instant::now();
        let deadlines = Deadlines::new(base);
        for phase in [Phase::AwaitStartOk, Phase::AwaitTuneOk, Phase::AwaitOpen] {
            assert_eq!(deadlines.check(base + HANDSHAKE_TIMEOUT, phase, 0), Action::None);
            assert_eq!(
                deadlines.check(base + HANDSHAKE_TIMEOUT + MS, phase, 0),
                Action::Close(CloseReason::HandshakeTimeout)
            );
        }
        // Reads do not extend the handshake.
        let mut reading = deadlines;
        reading.read_at(base + HANDSHAKE_TIMEOUT);
        assert_eq!(
            reading.check(base + HANDSHAKE_TIMEOUT + MS, Phase::AwaitOpen, 0),
            Action::Close(CloseReason::HandshakeTimeout)
        );
        // Once open (or closing), the handshake timeout no longer applies.
        let late = base + HANDSHAKE_TIMEOUT * 100;
        assert_eq!(deadlines.check(late, Phase::Open, 0), Action::None);
        assert_eq!(deadlines.check(late, Phase::Closing, 0), Action::None);
    }

    #[test]
    fn heartbeat_is_sent_after_half_an_interval_without_writes() {
        let base = Instant::now();
        let mut deadlines = Deadlines::new(base);
        assert_eq!(deadlines.check(base + 2 * SECOND - MS, Phase::Open, 4), Action::None);
        assert_eq!(deadlines.check(base + 2 * SECOND, Phase::Open, 4), Action::SendHeartbeat);
        // Reads keep the client alive but do not stand in for writes.
        deadlines.read_at(base + 3 * SECOND);
        assert_eq!(deadlines.check(base + 3 * SECOND, Phase::Open, 4), Action::SendHeartbeat);
        deadlines.wrote_at(base + 3 * SECOND);
        assert_eq!(deadlines.check(base + 5 * SECOND - MS, Phase::Open, 4), Action::None);
        assert_eq!(deadlines.check(base + 5 * SECOND, Phase::Open, 4), Action::SendHeartbeat);
        // With a one-second heartbeat, half an interval is 500 ms.
        let deadlines = Deadlines::new(base);
        assert_eq!(deadlines.check(base + 499 * MS, Phase::Open, 1), Action::None);
        assert_eq!(deadlines.check(base + 500 * MS, Phase::Open, 1), Action::SendHeartbeat);
    }

    #[test]
    fn connection_closes_after_two_intervals_without_reads() {
        let base = Instant::now();
        let mut deadlines = Deadlines::new(base);
        deadlines.wrote_at(base + 10 * SECOND);
        assert_eq!(deadlines.check(base + 10 * SECOND, Phase::Open, 5), Action::None);
        assert_eq!(
            deadlines.check(base + 10 * SECOND + MS, Phase::Open, 5),
            Action::Close(CloseReason::HeartbeatsMissed)
        );
        // Writing does not keep a silent client alive; reading does.
        deadlines.read_at(base + 10 * SECOND);
        assert_eq!(deadlines.check(base + 20 * SECOND, Phase::Open, 5), Action::SendHeartbeat);
        assert_eq!(
            deadlines.check(base + 20 * SECOND + MS, Phase::Open, 5),
            Action::Close(CloseReason::HeartbeatsMissed)
        );
    }

    #[test]
    fn no_heartbeats_are_expected_while_not_reading() {
        let base = Instant::now();
        let mut deadlines = Deadlines::new(base);
        assert!(deadlines.is_reading());
        // Blocked one second in, with heartbeat 4: silent well past two intervals, yet kept.
        deadlines.reading_at(false, base + SECOND);
        assert!(!deadlines.is_reading());
        deadlines.wrote_at(base + 30 * SECOND);
        assert_eq!(deadlines.check(base + 30 * SECOND, Phase::Open, 4), Action::None);
        // Heartbeats are still sent while not reading.
        assert_eq!(deadlines.check(base + 32 * SECOND, Phase::Open, 4), Action::SendHeartbeat);
        // Reading resumes at 40 s: the client has two intervals from then.
        deadlines.reading_at(true, base + 40 * SECOND);
        deadlines.wrote_at(base + 47 * SECOND);
        assert_eq!(deadlines.check(base + 48 * SECOND, Phase::Open, 4), Action::None);
        assert_eq!(
            deadlines.check(base + 48 * SECOND + MS, Phase::Open, 4),
            Action::Close(CloseReason::HeartbeatsMissed)
        );
        // Saying again that it reads changes nothing.
        deadlines.reading_at(true, base + 48 * SECOND);
        assert_eq!(
            deadlines.check(base + 48 * SECOND + MS, Phase::Open, 4),
            Action::Close(CloseReason::HeartbeatsMissed)
        );
    }

    #[test]
    fn heartbeat_zero_disables_both() {
        let base = Instant::now();
        let deadlines = Deadlines::new(base);
        let much_later = base + Duration::from_secs(24 * 3600);
        assert_eq!(deadlines.check(much_later, Phase::Open, 0), Action::None);
    }

    #[test]
    fn close_ok_wait_expires() {
        let base = Instant::now();
        let mut deadlines = Deadlines::new(base);
        // Not yet seen closing: nothing to wait for.
        assert_eq!(deadlines.check(base + HANDSHAKE_TIMEOUT * 2, Phase::Closing, 60), Action::None);
        let closing = base + SECOND;
        deadlines.closing_at(closing);
        // Later calls do not restart the wait.
        deadlines.closing_at(closing + SECOND);
        assert_eq!(deadlines.check(closing + CLOSE_OK_TIMEOUT, Phase::Closing, 60), Action::None);
        assert_eq!(
            deadlines.check(closing + CLOSE_OK_TIMEOUT + MS, Phase::Closing, 60),
            Action::Close(CloseReason::CloseOkTimeout)
        );
        // Heartbeats are neither sent nor expected while closing.
        assert_eq!(deadlines.check(closing + 2 * SECOND, Phase::Closing, 1), Action::None);
    }
}
