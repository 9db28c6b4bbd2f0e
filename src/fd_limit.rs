//! The open-file limit: raised at start-up from the soft to the hard limit, as Go's runtime
//! does, because every connection is a file descriptor and shells commonly start processes
//! with a soft limit of 1024 (or less) under a much higher hard limit.

/// File descriptors kept back from connections: the database pool, Redis, Kafka, files being
/// read or written, the listener, epoll and stdio.
pub const RESERVED: u64 = 128;

/// The process's `RLIMIT_NOFILE` before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub before: u64,
    pub soft: u64,
    pub hard: u64,
}

impl FdLimit {
    /// Roughly how many client connections fit: the soft limit minus [`RESERVED`] and the
    /// database pool.
    pub fn connection_capacity(&self, pool_size: usize) -> u64 {
        self.soft
            .saturating_sub(RESERVED)
            .saturating_sub(pool_size as u64)
    }
}

/// Sets the soft `RLIMIT_NOFILE` to the hard limit (a no-op when they are equal).
#[cfg(unix)]
pub fn raise() -> std::io::Result<FdLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(FdLimit {
        before,
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

#[cfg(not(unix))]
pub fn raise() -> std::io::Result<FdLimit> {
    Err(std::io::Error::other("RLIMIT_NOFILE exists on Unix only"))
}

/// Raises the limit and logs the resulting connection capacity (a failure is logged too:
/// the server still runs, with the limit it was given).
pub fn raise_and_log(pool_size: usize) -> Option<FdLimit> {
    match raise() {
        Ok(l) => {
            if l.before < l.soft {
                tracing::info!(
                    "file descriptors: soft limit raised from {} to {} (the hard limit)",
                    l.before,
                    l.soft
                );
            }
            tracing::info!(
                "file descriptor limit {}: room for about {} concurrent connections",
                l.soft,
                l.connection_capacity(pool_size)
            );
            Some(l)
        }
        Err(e) => {
            tracing::warn!("could not raise the file descriptor limit: {e}");
            None
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn raising_is_idempotent_and_reaches_the_hard_limit() {
        let first = raise().unwrap();
        assert_eq!(first.soft, first.hard);
        let again = raise().unwrap();
        assert_eq!(again.before, again.soft);
        assert_eq!(again.soft, first.soft);
        let l = FdLimit {
            before: 0,
            soft: 1024,
            hard: 1024,
        };
        assert_eq!(l.connection_capacity(32), 1024 - RESERVED - 32);
        assert_eq!(
            FdLimit {
                before: 0,
                soft: 10,
                hard: 10
            }
            .connection_capacity(32),
            0
        );
    }
}
