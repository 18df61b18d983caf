//! The process's file-descriptor budget: every durable queue may hold descriptors for its
//! log, so the soft `RLIMIT_NOFILE` (often 1,024) is raised to the hard limit at start.

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
