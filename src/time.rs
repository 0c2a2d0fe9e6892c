//! Time formatting shared by every layer: the `created` field of a packet message (UTC,
//! `YYYY-MM-DD HH:MM:SS`), which `record`, `dataset` and the tools also write. A bottom module:
//! it uses nothing else of the crate.

/// `%Y-%m-%d %H:%M:%S` in UTC for seconds since the epoch (proleptic Gregorian calendar).
pub fn format_created(sec: i64) -> [u8; 19] {
    let days = sec.div_euclid(86_400);
    let secs_of_day = sec.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut b = *b"0000-00-00 00:00:00";
    let y = y.clamp(0, 9999) as u32;
    b[0] = b'0' + (y / 1000) as u8;
    b[1] = b'0' + (y / 100 % 10) as u8;
    b[2] = b'0' + (y / 10 % 10) as u8;
    b[3] = b'0' + (y % 10) as u8;
    let two = |b: &mut [u8; 19], at: usize, v: u32| {
        b[at] = b'0' + (v / 10) as u8;
        b[at + 1] = b'0' + (v % 10) as u8;
    };
    two(&mut b, 5, m);
    two(&mut b, 8, d);
    two(&mut b, 11, (secs_of_day / 3600) as u32);
    two(&mut b, 14, (secs_of_day / 60 % 60) as u32);
    two(&mut b, 17, (secs_of_day % 60) as u32);
    b
}

/// Days since 1970-01-01 to (year, month, day), by the era arithmetic of the proleptic
/// Gregorian calendar (400-year cycles of 146,097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_dates() {
        assert_eq!(&format_created(0), b"1970-01-01 00:00:00");
        assert_eq!(&format_created(951_782_400), b"2000-02-29 00:00:00");
        assert_eq!(&format_created(1_796_043_791), b"2026-11-30 13:03:11");
        assert_eq!(&format_created(-1), b"1969-12-31 23:59:59");
    }
}
