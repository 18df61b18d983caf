//! When a classic queue's task waits at its log's tail, and how it notes the appends it is
//! not woken for.
//!
//! An empty queue wakes on its next append (to read it and arm its expiry), and a queue
//! with a length limit on every append (to drop its head at once). A queue that holds
//! messages read has nothing to do with new ones until those are handed out, so appends do
//! not wake it: that keeps a backlog that is only published to from costing a wake per
//! append. It still notes them, once a second at most ([`APPEND_WATCH_INTERVAL`]): as work
//! (`QueueStats::active_at_ms`, which the management API shows as `idle_since`) and by
//! counting a step of them into its ready bytes. Knows no frames, sockets or exchanges.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::Actor;

/// How often at most a queue that holds messages read looks at appends it is not woken
/// for.
const APPEND_WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Whether the task waits for an append it would not wake for (`armed`), or looks again
/// when `again` fires.
pub(super) struct AppendWatch {
    armed: bool,
    /// The log's end when appends were last noted.
    noted_to: u64,
    again: Pin<Box<Sleep>>,
}

impl AppendWatch {
    /// Waiting for the first append.
    pub(super) fn new() -> AppendWatch {
        AppendWatch { armed: true, noted_to: 0, again: Box::pin(tokio::time::sleep(Duration::ZERO)) }
    }

    /// Appends up to `end` were noted: the next look is after the interval.
    pub(super) fn noted(&mut self, end: u64) {
        self.noted_to = end;
        self.armed = false;
        self.again.as_mut().reset(Instant::now() + APPEND_WATCH_INTERVAL);
    }

    /// Whether a look is due later (see [`AppendWatch::cooled`]).
    pub(super) fn cooling(&self) -> bool {
        !self.armed
    }

    /// Resolves when the next look is due.
    pub(super) async fn cooled(&mut self) {
        self.again.as_mut().await;
    }

    /// The look that was due: notes the appends that came since the last one (and looks
    /// again after the interval), or waits for the next append. Returns whether any came.
    pub(super) fn look_again(&mut self, actor: &mut Actor) -> bool {
        if actor.options.log.next_offset() > self.noted_to {
            self.noted(actor.note_appends());
            return true;
        }
        self.armed = true;
        false
    }
}

impl Actor {
    /// Where the task waits at its log's tail, if it does, and whether that wait is only to
    /// note an append (`watch`): the watch waits when nothing else does and `watch` is
    /// armed.
    pub(super) fn wait_at(&self, watch: &AppendWatch) -> (Option<u64>, bool) {
        if self.read_failed {
            // The tick tries the read again; an append is no reason to try it sooner.
            return (None, false);
        }
        let log = &self.options.log;
        // Only when nothing read is left to hand out; otherwise dispatch has already done
        // all it can and a command or the tick comes next.
        if self.held() == 0 {
            return (Some(self.read_ahead.cursor()), false);
        }
        if self.options.max_length.is_some() || self.options.max_length_bytes.is_some() {
            return (Some(log.next_offset()), false);
        }
        if watch.armed {
            return (Some(log.next_offset()), true);
        }
        (None, false)
    }

    /// Appends came that the task was not woken for: counts a step of them into the ready
    /// bytes; returns the log's end it saw.
    pub(super) fn note_appends(&mut self) -> u64 {
        let end = self.options.log.next_offset();
        self.count_unread(1);
        end
    }
}
