//! `%START_TIME%`: RFC 3339 UTC with milliseconds, the date and time of day formatted by
//! humantime once per second and reused for every line of that second.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `YYYY-MM-DDTHH:MM:SSZ`.
const SECONDS_LEN: usize = 20;

/// The first second humantime cannot format (year 10000).
const END_OF_9999: u64 = 253_402_300_800;

/// The last second formatted, kept by each worker.
#[derive(Clone, Debug, Default)]
pub(crate) struct TimeCache {
    /// The second `text` shows, if any yet.
    secs: Option<u64>,
    text: Stamp,
}

/// A fixed buffer for one formatted second.
#[derive(Clone, Debug, Default)]
struct Stamp {
    len: usize,
    bytes: [u8; SECONDS_LEN],
}

impl fmt::Write for Stamp {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl TimeCache {
    /// Appends `t` as `2023-11-14T22:13:20.123Z`; false (nothing written) before 1970 or from
    /// the year 10000 on, which RFC 3339 timestamps cannot show.
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, t: SystemTime) -> bool {
        let Ok(since) = t.duration_since(UNIX_EPOCH) else { return false };
        let secs = since.as_secs();
        if secs >= END_OF_9999 {
            return false;
        }
        if self.secs != Some(secs) {
            self.secs = None;
            self.text.len = 0;
            let second = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
            if fmt::Write::write_fmt(&mut self.text, format_args!("{second}")).is_err() {
                return false;
            }
            self.secs = Some(secs);
        }
        // The text without its `Z`, then `.mmmZ`.
        let Some(date_time) = self.text.bytes.get(..self.text.len.saturating_sub(1)) else { return false };
        out.extend_from_slice(date_time);
        let millis = since.subsec_millis();
        let digit = |n: u32| b'0' + (n % 10) as u8;
        out.extend_from_slice(&[b'.', digit(millis / 100), digit(millis / 10), digit(millis), b'Z']);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(cache: &mut TimeCache, t: SystemTime) -> Option<String> {
        let mut out = Vec::new();
        cache.write(&mut out, t).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn matches_humantime_to_the_millisecond() {
        let mut cache = TimeCache::default();
        let mut t = UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999);
        // Steps that cross seconds and stay within them, reusing and refreshing the cache.
        for step in [0, 1, 7, 250, 999, 1_000, 1_001, 86_400_000, 3] {
            t += Duration::from_millis(step);
            let expected = humantime::format_rfc3339_millis(t).to_string();
            assert_eq!(format(&mut cache, t).as_deref(), Some(&*expected), "{t:?}");
        }
        assert_eq!(format(&mut cache, UNIX_EPOCH).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(
            format(&mut cache, UNIX_EPOCH + Duration::new(951_782_400, 5_000_000)).as_deref(),
            Some("2000-02-29T00:00:00.005Z")
        );
    }

    #[test]
    fn times_rfc3339_cannot_show_are_refused() {
        let mut cache = TimeCache::default();
        assert_eq!(format(&mut cache, UNIX_EPOCH - Duration::from_millis(1)), None);
        assert_eq!(format(&mut cache, UNIX_EPOCH + Duration::from_secs(END_OF_9999)), None);
        assert_eq!(
            format(&mut cache, UNIX_EPOCH + Duration::new(END_OF_9999 - 1, 999_999_999)).as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
    }
}
