//! The process's file-descriptor budget: the soft `RLIMIT_NOFILE` (often 1,024) is raised
//! to the hard limit at start, and a share of it bounds the segment files the logs keep
//! open (`log::storage::files`), so that however many durable queues there are, sockets
//! still find descriptors.

use crate::limits::{SEGMENT_FILES_DESCRIPTOR_DIVISOR, SEGMENT_FILES_OPEN_DEFAULT, SEGMENT_FILES_OPEN_MIN};

/// How many segment files the logs may keep open, given the descriptor limit in force
/// (`None`: unknown): a share of it ([`SEGMENT_FILES_DESCRIPTOR_DIVISOR`]), at least
/// [`SEGMENT_FILES_OPEN_MIN`].
pub fn segment_files_max(descriptors_max: Option<u64>) -> usize {
    let share = descriptors_max.map_or(SEGMENT_FILES_OPEN_DEFAULT, |max| {
        usize::try_from(max / SEGMENT_FILES_DESCRIPTOR_DIVISOR).unwrap_or(usize::MAX)
    });
    share.max(SEGMENT_FILES_OPEN_MIN)
}

/// Raises the soft limit on open descriptors to the hard limit and returns the limit now
/// in force, or `None` when it cannot be read. A failure to raise is logged and the old
/// soft limit kept: the broker still runs, with fewer queues possible.
pub fn raise_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit; getrlimit fills it when it returns 0.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not read the open-descriptor limit");
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit whose soft limit does not exceed its hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), soft = limit.rlim_cur, hard = limit.rlim_max,
                "could not raise the open-descriptor limit");
        }
    }
    // The field type differs between targets; on this one it is already u64.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(limit.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::segment_files_max;
    use crate::limits::{SEGMENT_FILES_OPEN_DEFAULT, SEGMENT_FILES_OPEN_MIN};

    #[test]
    fn segment_files_take_half_of_the_descriptors_with_a_floor() {
        assert_eq!(segment_files_max(Some(1024)), 512);
        assert_eq!(segment_files_max(Some(10)), SEGMENT_FILES_OPEN_MIN);
        assert_eq!(segment_files_max(None), SEGMENT_FILES_OPEN_DEFAULT);
        assert!(segment_files_max(Some(u64::MAX)) > 1 << 30);
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let raised = super::raise_limit().expect("the limit is readable");
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `limit` is a valid, writable rlimit.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
        assert_eq!(limit.rlim_cur, raised);
    }
}
