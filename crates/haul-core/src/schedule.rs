//! Bandwidth schedules as operators write them: `mon-fri 08:00-18:00 2M; * 00:00-06:00 unlimited; sat,sun
//! 09:00-12:00 pause`. Each rule names days, a window of local time and what holds inside it: a speed limit for
//! the whole server, `unlimited`, or `pause` (no download runs). The first rule whose window contains a moment
//! decides it; outside every window the server's own limit holds.
//!
//! Pure: a moment is given as a [`WeekTime`] (the caller reads its clock and time zone), so tests can walk a
//! schedule through any week.

use std::fmt;
use std::str::FromStr;

use crate::units::parse_rate;

/// Minutes in a day; a window may end at `24:00`.
const DAY: u16 = 24 * 60;

/// A moment of the week in local time: the day (0 = Monday ... 6 = Sunday) and the minute of that day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeekTime {
    pub weekday: u8,
    pub minute: u16,
}

impl WeekTime {
    /// `weekday` 0 = Monday; `hour` 0-23, `minute` 0-59 (larger values are clamped).
    pub fn new(weekday: u8, hour: u8, minute: u8) -> Self {
        Self { weekday: weekday % 7, minute: (u16::from(hour.min(23)) * 60 + u16::from(minute.min(59))) }
    }
}

/// What a rule makes of its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Every download of the server together at most this many bytes per second.
    Limit(u64),
    /// No server-wide limit, whatever the server's own setting.
    Unlimited,
    /// The queue is held: running downloads go back to the queue (keeping their bytes) and none starts.
    Pause,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limit(rate) => f.write_str(&compact_rate(*rate)),
            Self::Unlimited => f.write_str("unlimited"),
            Self::Pause => f.write_str("pause"),
        }
    }
}

/// A rate as the schedule is written, so that it reads back the same: `2M`, `512K`, or bytes.
fn compact_rate(rate: u64) -> String {
    for (unit, size) in [("T", 1u64 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if rate.is_multiple_of(size) {
            return format!("{}{unit}", rate / size);
        }
    }
    rate.to_string()
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// Bit `d` set: the window starts on day `d` (0 = Monday).
    days: u8,
    start: u16,
    /// Exclusive; at or before `start` means the window runs past midnight into the next day.
    end: u16,
    action: Action,
}

/// A parsed schedule; [`FromStr`] reads the text form, [`Display`](fmt::Display) writes it back normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    rules: Vec<Rule>,
    text: String,
}

/// Why a schedule could not be read: the rule, and what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "schedule rule {rule:?}: {problem}; write rules as DAYS HH:MM-HH:MM ACTION separated by ';', e.g. \"mon-fri 08:00-18:00 2M; * 00:00-06:00 unlimited; sat,sun 00:00-24:00 pause\""
)]
pub struct ScheduleError {
    pub rule: String,
    pub problem: String,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const FULL_DAY_NAMES: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

impl Schedule {
    /// What holds at `at`: the first rule whose window contains it, if any.
    pub fn at(&self, at: WeekTime) -> Option<Action> {
        let yesterday = (at.weekday + 6) % 7;
        self.rules.iter().find_map(|rule| {
            let starts_on = |day: u8| rule.days & (1 << day) != 0;
            let inside = if rule.start < rule.end {
                starts_on(at.weekday) && (rule.start..rule.end).contains(&at.minute)
            } else {
                // Past midnight: from `start` to the end of its day, then up to `end` on the next.
                (starts_on(at.weekday) && at.minute >= rule.start) || (starts_on(yesterday) && at.minute < rule.end)
            };
            inside.then_some(rule.action)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut rules = Vec::new();
        let mut shown = Vec::new();
        for source in text.split(';').map(str::trim).filter(|rule| !rule.is_empty()) {
            let error = |problem: String| ScheduleError { rule: source.to_owned(), problem };
            let words: Vec<&str> = source.split_whitespace().collect();
            let [days, window, action] = words[..] else {
                return Err(error(format!("expected 3 parts (days, window, action), found {}", words.len())));
            };
            let days = parse_days(days).map_err(error)?;
            let (start, end) = parse_window(window).map_err(error)?;
            let action = match action.to_ascii_lowercase().as_str() {
                "unlimited" | "off" | "none" => Action::Unlimited,
                "pause" | "paused" | "stop" => Action::Pause,
                rate => Action::Limit(parse_rate(rate).map_err(|e| error(e.to_string()))?),
            };
            shown.push(format!("{} {window} {action}", words[0].to_ascii_lowercase()));
            rules.push(Rule { days, start, end, action });
        }
        Ok(Self { rules, text: shown.join("; ") })
    }
}

fn parse_days(text: &str) -> Result<u8, String> {
    if text == "*" {
        return Ok(0x7f);
    }
    let day = |name: &str| {
        let lower = name.to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .zip(FULL_DAY_NAMES)
            .position(|(short, full)| lower == *short || lower == full)
            .map(|i| i as u8)
            .ok_or_else(|| {
                format!("unknown day {name:?}; use mon, tue, wed, thu, fri, sat, sun, a range like mon-fri, or *")
            })
    };
    let mut days = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (mut d, to) = (day(from)?, day(to)?);
                // mon-fri, or fri-mon around the weekend.
                days |= 1 << d;
                while d != to {
                    d = (d + 1) % 7;
                    days |= 1 << d;
                }
            }
            None => days |= 1 << day(part)?,
        }
    }
    Ok(days)
}

fn parse_window(text: &str) -> Result<(u16, u16), String> {
    let (start, end) =
        text.split_once('-').ok_or_else(|| format!("window {text:?} is not HH:MM-HH:MM (e.g. 08:00-18:00)"))?;
    let (start, end) = (parse_clock(start)?, parse_clock(end)?);
    if start == DAY {
        return Err("a window cannot start at 24:00; start it at 00:00".to_owned());
    }
    if start == end {
        return Err(format!("window {text:?} is empty; for a whole day write 00:00-24:00"));
    }
    Ok((start, end))
}

fn parse_clock(text: &str) -> Result<u16, String> {
    let bad = || format!("time {text:?} is not HH:MM between 00:00 and 24:00");
    let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
    if hours.is_empty() || hours.len() > 2 || minutes.len() != 2 {
        return Err(bad());
    }
    let hours: u16 = hours.parse().map_err(|_| bad())?;
    let minutes: u16 = minutes.parse().map_err(|_| bad())?;
    if hours > 24 || minutes > 59 || (hours == 24 && minutes != 0) {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn at(weekday: u8, hour: u8, minute: u8) -> WeekTime {
        WeekTime::new(weekday, hour, minute)
    }

    #[test]
    fn the_first_matching_rule_decides_and_outside_every_window_nothing_does() {
        let schedule: Schedule = "mon-fri 08:00-18:00 2M; * 00:00-06:00 unlimited".parse().unwrap();
        assert_eq!(schedule.at(at(0, 8, 0)), Some(Action::Limit(2 * MIB)));
        assert_eq!(schedule.at(at(4, 17, 59)), Some(Action::Limit(2 * MIB)));
        assert_eq!(schedule.at(at(4, 18, 0)), None, "the end is exclusive");
        assert_eq!(schedule.at(at(5, 12, 0)), None, "saturday is not mon-fri");
        assert_eq!(schedule.at(at(5, 3, 0)), Some(Action::Unlimited));
        assert_eq!(schedule.at(at(2, 7, 59)), None);
        assert_eq!(schedule.to_string(), "mon-fri 08:00-18:00 2M; * 00:00-06:00 unlimited");
        assert_eq!(schedule.to_string().parse::<Schedule>().unwrap(), schedule, "the written form reads back");
        let odd: Schedule = "Mon 01:00-02:00 1.5M; sun 00:00-24:00 1000".parse().unwrap();
        assert_eq!(odd.to_string(), "mon 01:00-02:00 1536K; sun 00:00-24:00 1000");
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let schedule: Schedule = "fri 22:00-02:00 pause".parse().unwrap();
        assert_eq!(schedule.at(at(4, 23, 0)), Some(Action::Pause));
        assert_eq!(schedule.at(at(5, 1, 59)), Some(Action::Pause), "saturday's early hours");
        assert_eq!(schedule.at(at(5, 2, 0)), None);
        assert_eq!(schedule.at(at(4, 1, 0)), None, "friday's early hours belong to thursday's window");
        let sunday: Schedule = "sun 23:00-01:00 1M".parse().unwrap();
        assert_eq!(sunday.at(at(0, 0, 30)), Some(Action::Limit(MIB)), "wraps into monday");
    }

    #[test]
    fn day_lists_ranges_around_the_weekend_and_whole_days() {
        let schedule: Schedule = "sat,sun 00:00-24:00 pause; fri-mon 12:00-13:00 512K".parse().unwrap();
        assert_eq!(schedule.at(at(5, 0, 0)), Some(Action::Pause));
        assert_eq!(schedule.at(at(6, 23, 59)), Some(Action::Pause));
        assert_eq!(schedule.at(at(0, 0, 0)), None);
        assert_eq!(schedule.at(at(0, 12, 30)), Some(Action::Limit(512 * 1024)));
        assert_eq!(schedule.at(at(4, 12, 30)), Some(Action::Limit(512 * 1024)));
        assert_eq!(schedule.at(at(2, 12, 30)), None);
        let everyday: Schedule = "* 00:00-24:00 1M".parse().unwrap();
        for day in 0..7 {
            assert_eq!(everyday.at(at(day, 0, 0)), Some(Action::Limit(MIB)));
            assert_eq!(everyday.at(at(day, 23, 59)), Some(Action::Limit(MIB)));
        }
        let long: Schedule = "Monday 09:00-10:00 1M".parse().unwrap();
        assert_eq!(long.at(at(0, 9, 0)), Some(Action::Limit(MIB)));
    }

    #[test]
    fn mistakes_name_the_rule_and_the_problem() {
        for (text, needle) in [
            ("mon-fri 08:00-18:00", "expected 3 parts"),
            ("moonday 08:00-18:00 1M", "unknown day \"moonday\""),
            ("mon 8-18 1M", "is not HH:MM"),
            ("mon 25:00-26:00 1M", "between 00:00 and 24:00"),
            ("mon 08:00-08:00 1M", "is empty"),
            ("mon 08:00-18:00 fast", "invalid rate"),
            ("mon 08:00-18:00 0", "greater than zero"),
        ] {
            let error = text.parse::<Schedule>().unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
            assert!(error.contains("DAYS HH:MM-HH:MM ACTION"), "{error}");
        }
        assert!("".parse::<Schedule>().unwrap().is_empty());
    }
}
