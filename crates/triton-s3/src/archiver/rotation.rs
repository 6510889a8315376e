//! When an archive is sealed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When an archive opened at `opened` must be sealed: at the next UTC hour
/// boundary (so that files stay "about hourly", as go-triton's were, and a
/// new day starts a new day folder) or `max_age` after it was opened,
/// whichever comes first.
pub fn rotation_deadline(opened: SystemTime, max_age: Duration) -> SystemTime {
    let since = opened.duration_since(UNIX_EPOCH).unwrap_or_default();
    let into_hour = Duration::new(since.as_secs() % 3600, since.subsec_nanos());
    let next_hour = opened + (Duration::from_secs(3600) - into_hour);
    // The hour boundary comes within an hour: a longer age cannot matter
    // (and could overflow).
    next_hour.min(opened + max_age.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_next_hour_or_the_age_limit() {
        let hour = Duration::from_secs(3600);
        // 2024-10-30 23:59:30 UTC: sealed at midnight, 30 s later.
        let late = 1_730_332_770;
        assert_eq!(rotation_deadline(at(late), hour), at(1_730_332_800));
        // Opened on the hour: a whole hour.
        assert_eq!(
            rotation_deadline(at(1_730_332_800), hour),
            at(1_730_336_400)
        );
        // A short age limit wins.
        assert_eq!(
            rotation_deadline(at(1_730_332_800), Duration::from_secs(5)),
            at(1_730_332_805)
        );
        // Sub-second opening times keep their fraction.
        let t = at(1_730_336_399) + Duration::from_millis(250);
        assert_eq!(rotation_deadline(t, hour), at(1_730_336_400));
    }
}
