//! ECCO time rules: model step → time coverage, centre, bounds and file-name date.
//!
//! A step number counts model time steps since the model start; for means it marks
//! the END of the averaging period. The rules follow EDP (`create_job_task_list`,
//! `ecco_time.make_time_bounds_metadata`), except where the published PO.DAAC
//! V4r4 archive differs (daily file dates), which is a documented, switchable choice.
//! No I/O here: pure proleptic-Gregorian arithmetic on whole seconds.

use std::fmt;

/// Seconds since 1970-01-01T00:00:00 (proleptic Gregorian, no leap seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub i64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("'{0}' is not a date-time of the form YYYY-MM-DDThh:mm:ss")]
    Parse(String),
    #[error("unknown time step unit '{0}' (expected s, m, h or D)")]
    Unit(String),
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Civil date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Broken-down civil date-time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Instant {
    pub fn from_civil(c: Civil) -> Instant {
        let days = days_from_civil(c.year, c.month, c.day);
        Instant(days * 86400 + (c.hour * 3600 + c.minute * 60 + c.second) as i64)
    }

    pub fn civil(self) -> Civil {
        let days = self.0.div_euclid(86400);
        let secs = self.0.rem_euclid(86400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// Parses `YYYY-MM-DDThh:mm:ss` (a space instead of `T`, and a trailing `Z`, are accepted).
    pub fn parse(s: &str) -> Result<Instant, TimeError> {
        let err = || TimeError::Parse(s.to_string());
        let t = s.trim().trim_end_matches('Z');
        let (date, clock) = t.split_once(['T', ' ']).unwrap_or((t, "00:00:00"));
        let mut d = date.splitn(3, '-');
        let mut c = clock.splitn(3, ':');
        let next = |it: &mut std::str::SplitN<'_, char>| -> Result<i64, TimeError> {
            it.next().ok_or_else(err)?.parse::<i64>().map_err(|_| err())
        };
        let (year, month, day) = (next(&mut d)?, next(&mut d)?, next(&mut d)?);
        let (hour, minute, second) = (next(&mut c)?, next(&mut c)?, next(&mut c)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month as u32) as i64
            || !(0..24).contains(&hour)
            || !(0..60).contains(&minute)
            || !(0..60).contains(&second)
        {
            return Err(err());
        }
        Ok(Instant::from_civil(Civil {
            year,
            month: month as u32,
            day: day as u32,
            hour: hour as u32,
            minute: minute as u32,
            second: second as u32,
        }))
    }

    /// `YYYY-MM-DDThh:mm:ss`, the form EDP writes into tasks and attributes.
    pub fn iso(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// Calendar-aware month shift (day clamped to the month's length, as `relativedelta`).
    pub fn add_months(self, months: i64) -> Instant {
        let c = self.civil();
        let total = c.year * 12 + (c.month as i64 - 1) + months;
        let (year, month) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
        let day = c.day.min(days_in_month(year, month));
        Instant::from_civil(Civil {
            year,
            month,
            day,
            ..c
        })
    }

    pub fn add_seconds(self, s: i64) -> Instant {
        Instant(self.0 + s)
    }

    /// Midnight of the same calendar day.
    pub fn midnight(self) -> Instant {
        Instant(self.0.div_euclid(86400) * 86400)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso())
    }
}

/// Output frequency of a granule (EDP's jobs-file names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frequency {
    Snap,
    AvgDay,
    AvgMon,
    /// Time-invariant (`TI`): one granule per grouping, no time dimension.
    Ti,
}

impl Frequency {
    /// Parses EDP's names, case-insensitively (`SNAP`, `AVG_DAY`, `AVG_MON`).
    pub fn parse(s: &str) -> Option<Frequency> {
        match s.to_ascii_uppercase().as_str() {
            "SNAP" => Some(Frequency::Snap),
            "AVG_DAY" => Some(Frequency::AvgDay),
            "AVG_MON" => Some(Frequency::AvgMon),
            "TI" => Some(Frequency::Ti),
            _ => None,
        }
    }

    pub fn job_name(self) -> &'static str {
        match self {
            Frequency::Snap => "SNAP",
            Frequency::AvgDay => "AVG_DAY",
            Frequency::AvgMon => "AVG_MON",
            Frequency::Ti => "TI",
        }
    }

    /// Period token of output granule names and directories.
    pub fn output_token(self) -> &'static str {
        match self {
            Frequency::Snap => "snap",
            Frequency::AvgDay => "day_mean",
            Frequency::AvgMon => "mon_mean",
            Frequency::Ti => "TI",
        }
    }

    /// Period token of MDS input file names.
    pub fn input_token(self) -> &'static str {
        match self {
            Frequency::Snap => "day_snap",
            Frequency::AvgDay => "day_mean",
            Frequency::AvgMon => "mon_mean",
            Frequency::Ti => "TI",
        }
    }

    /// Directory of MDS inputs under a release's source root.
    pub fn input_dir(self) -> &'static str {
        match self {
            Frequency::Snap => "diags_inst",
            Frequency::AvgDay => "diags_daily",
            Frequency::AvgMon => "diags_monthly",
            Frequency::Ti => "time_invariant",
        }
    }

    /// ISO 8601 duration written as time_coverage_duration/resolution.
    pub fn duration(self) -> &'static str {
        match self {
            Frequency::Snap => "PT0S",
            Frequency::AvgDay => "P1D",
            Frequency::AvgMon => "P1M",
            // No time sampling: the granule holds no time axis.
            Frequency::Ti => "",
        }
    }

    pub fn time_long_name(self) -> &'static str {
        match self {
            Frequency::Snap => "snapshot time",
            Frequency::Ti => "",
            _ => "center time of averaging period",
        }
    }

    /// Head of the dataset summary sentence.
    pub fn summary_head(self) -> &'static str {
        match self {
            Frequency::Snap => "This dataset contains instantaneous ",
            Frequency::AvgDay => "This dataset contains daily-averaged ",
            Frequency::AvgMon => "This dataset contains monthly-averaged ",
            Frequency::Ti => "This dataset contains time-invariant ",
        }
    }
}

/// How daily-mean granules are dated in their file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DailyDate {
    /// The day averaged, as the published PO.DAAC V4r4 archive names them (default).
    #[default]
    DayAveraged,
    /// The day the period ends on, as EDP's current code does (one day later).
    PeriodEnd,
}

/// The clock of a model run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelClock {
    pub start: Instant,
    pub end: Instant,
    /// Length of one model step in seconds.
    pub step_seconds: i64,
}

impl ModelClock {
    /// ECCO V4r4: start 1992-01-01T12:00:00, end 2017-12-31T12:00:00, 1-hour steps.
    pub fn v4r4() -> ModelClock {
        ModelClock {
            start: Instant(days_from_civil(1992, 1, 1) * 86400 + 12 * 3600),
            end: Instant(days_from_civil(2017, 12, 31) * 86400 + 12 * 3600),
            step_seconds: 3600,
        }
    }

    /// Step length from EDP's `model_timestep` and `model_timestep_units`.
    pub fn step_seconds_from(count: i64, unit: &str) -> Result<i64, TimeError> {
        let per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "D" | "d" => 86400,
            other => return Err(TimeError::Unit(other.to_string())),
        };
        Ok(count * per)
    }

    pub fn instant(&self, step: u64) -> Instant {
        self.start.add_seconds(step as i64 * self.step_seconds)
    }

    /// Time coverage of the granule for `step` at frequency `freq`.
    pub fn coverage(&self, freq: Frequency, step: u64, daily: DailyDate) -> Coverage {
        let end = self.instant(step);
        let (start, end, centre) = match freq {
            Frequency::Snap => (end, end, end),
            // Valid for the whole record: the product's coverage, no file date.
            Frequency::Ti => {
                let (s, e) = (self.start, self.end);
                (s, e, Instant(s.0 + (e.0 - s.0) / 2))
            }
            Frequency::AvgDay | Frequency::AvgMon => {
                let mut start = match freq {
                    Frequency::AvgDay => end.add_seconds(-86400),
                    _ => end.add_months(-1),
                };
                // EDP's first-period rule (ecco_time.make_time_bounds_metadata): a
                // period starting on the model's first calendar day begins at the model
                // start. EDP's last-period rule shifts the START of the period that ends
                // on model_end_time's day, which is wrong (spec §10.2): not copied.
                if start.midnight() <= self.start.midnight() {
                    start = self.start;
                }
                (start, end, Instant(start.0 + (end.0 - start.0) / 2))
            }
        };
        let date = match freq {
            Frequency::Ti => String::new(),
            // The end of a month lies in the next month: date by the centre.
            Frequency::AvgMon => {
                let c = centre.civil();
                format!("{:04}-{:02}", c.year, c.month)
            }
            Frequency::AvgDay => {
                let reference = match daily {
                    DailyDate::DayAveraged => end.add_seconds(-1),
                    DailyDate::PeriodEnd => end,
                };
                let c = reference.civil();
                format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
            }
            Frequency::Snap => {
                let c = end.civil();
                format!(
                    "{:04}-{:02}-{:02}T{:02}{:02}{:02}",
                    c.year, c.month, c.day, c.hour, c.minute, c.second
                )
            }
        };
        Coverage {
            freq,
            start,
            end,
            centre,
            file_date: date,
        }
    }
}

/// The time description of one granule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub freq: Frequency,
    pub start: Instant,
    pub end: Instant,
    pub centre: Instant,
    /// Date as it appears in the granule file name.
    pub file_date: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Instant {
        Instant::parse(s).unwrap()
    }

    #[test]
    fn civil_round_trip_and_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        for z in [-1000, 0, 8035, 11016, 11017, 20000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn parse_and_format() {
        assert_eq!(t("1992-01-01T12:00:00").iso(), "1992-01-01T12:00:00");
        assert_eq!(t("1992-01-01 12:00:00Z").iso(), "1992-01-01T12:00:00");
        assert!(Instant::parse("1992-02-30T00:00:00").is_err());
        assert!(Instant::parse("yesterday").is_err());
    }

    #[test]
    fn monthly_rows_of_the_spec() {
        let clock = ModelClock::v4r4();
        let rows = [
            (
                732,
                "1992-01-01T12:00:00",
                "1992-02-01T00:00:00",
                "1992-01-16T18:00:00",
                "1992-01",
            ),
            (
                1428,
                "1992-02-01T00:00:00",
                "1992-03-01T00:00:00",
                "1992-02-15T12:00:00",
                "1992-02",
            ),
            (
                2172,
                "1992-03-01T00:00:00",
                "1992-04-01T00:00:00",
                "1992-03-16T12:00:00",
                "1992-03",
            ),
        ];
        for (step, s, e, c, d) in rows {
            let cov = clock.coverage(Frequency::AvgMon, step, DailyDate::default());
            assert_eq!(
                (
                    cov.start.iso(),
                    cov.end.iso(),
                    cov.centre.iso(),
                    cov.file_date
                ),
                (s.into(), e.into(), c.into(), d.into())
            );
        }
    }

    #[test]
    fn daily_dates_both_conventions() {
        let clock = ModelClock::v4r4();
        let cov = clock.coverage(Frequency::AvgDay, 12, DailyDate::DayAveraged);
        assert_eq!(cov.start.iso(), "1992-01-01T12:00:00");
        assert_eq!(cov.centre.iso(), "1992-01-01T18:00:00");
        assert_eq!(cov.file_date, "1992-01-01");
        let edp = clock.coverage(Frequency::AvgDay, 12, DailyDate::PeriodEnd);
        assert_eq!(edp.file_date, "1992-01-02");
        let cov = clock.coverage(Frequency::AvgDay, 36, DailyDate::DayAveraged);
        assert_eq!(cov.start.iso(), "1992-01-02T00:00:00");
        assert_eq!(cov.centre.iso(), "1992-01-02T12:00:00");
        assert_eq!(cov.file_date, "1992-01-02");
    }

    #[test]
    fn snapshot() {
        let cov = ModelClock::v4r4().coverage(Frequency::Snap, 12, DailyDate::default());
        assert_eq!(cov.start, cov.end);
        assert_eq!(cov.centre.iso(), "1992-01-02T00:00:00");
        assert_eq!(cov.file_date, "1992-01-02T000000");
    }

    #[test]
    fn leap_february() {
        // 1996-02 ends at 1996-03-01T00; independently: hours from 1992-01-01T12 to then.
        let end = t("1996-03-01T00:00:00");
        let step = ((end.0 - ModelClock::v4r4().start.0) / 3600) as u64;
        let cov = ModelClock::v4r4().coverage(Frequency::AvgMon, step, DailyDate::default());
        assert_eq!(cov.start.iso(), "1996-02-01T00:00:00");
        assert_eq!(cov.centre.iso(), "1996-02-15T12:00:00"); // 29 days / 2
        assert_eq!(cov.file_date, "1996-02");
    }
}
