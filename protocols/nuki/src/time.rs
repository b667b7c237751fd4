//! Dates, weekdays and times of day as the lock encodes them. These are the lock's local
//! wall-clock values: convert from the property's time zone before building them.

/// 7 bytes: year u16 LE, month, day, hour, minute, second. All zero means "no date".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NukiDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl NukiDate {
    pub const LEN: usize = 7;

    /// `None` unless it is a plausible calendar date and time (day ≤ 31; months are not
    /// cross-checked against day counts here: the caller builds them from a real calendar).
    pub fn new(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<Self> {
        let ok = (2000..=2099).contains(&year)
            && (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 60;
        ok.then_some(NukiDate {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    pub fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.year.to_le_bytes());
        out.extend_from_slice(&[self.month, self.day, self.hour, self.minute, self.second]);
    }

    pub fn parse(b: &[u8; 7]) -> NukiDate {
        NukiDate {
            year: u16::from_le_bytes([b[0], b[1]]),
            month: b[2],
            day: b[3],
            hour: b[4],
            minute: b[5],
            second: b[6],
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == NukiDate::default()
    }
}

/// Weekday bitmask: bit 6 Monday … bit 0 Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Weekdays(pub u8);

impl Weekdays {
    pub const ALL: Weekdays = Weekdays(0x7f);
    pub const NONE: Weekdays = Weekdays(0);

    /// `monday_first` is 0 for Monday … 6 for Sunday.
    pub fn with(self, monday_first: u8) -> Weekdays {
        Weekdays(self.0 | (0x40 >> (monday_first % 7)))
    }

    pub fn contains(self, monday_first: u8) -> bool {
        self.0 & (0x40 >> (monday_first % 7)) != 0
    }
}

/// 2 bytes: hour, minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

impl TimeOfDay {
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }
}

/// When a keypad code or authorization may be used. The default is "no limits".
///
/// On the wire: `time limited u8 | from date 7 | until date 7 | weekdays u8 | from time 2 |
/// until time 2` (20 bytes). 00:00–00:00 means all day; weekdays 0x7f means every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeLimits {
    pub from: Option<NukiDate>,
    pub until: Option<NukiDate>,
    pub weekdays: Weekdays,
    pub from_time: TimeOfDay,
    pub until_time: TimeOfDay,
}

impl Default for TimeLimits {
    fn default() -> Self {
        TimeLimits {
            from: None,
            until: None,
            weekdays: Weekdays::ALL,
            from_time: TimeOfDay::default(),
            until_time: TimeOfDay::default(),
        }
    }
}

impl TimeLimits {
    pub const LEN: usize = 20;

    pub fn is_limited(&self) -> bool {
        *self != TimeLimits::default()
    }

    pub fn put(&self, out: &mut Vec<u8>) {
        if !self.is_limited() {
            out.extend_from_slice(&[0u8; Self::LEN]);
            return;
        }
        out.push(1);
        self.from.unwrap_or_default().put(out);
        self.until.unwrap_or_default().put(out);
        out.push(self.weekdays.0);
        out.extend_from_slice(&[self.from_time.hour, self.from_time.minute]);
        out.extend_from_slice(&[self.until_time.hour, self.until_time.minute]);
    }

    pub fn parse(b: &[u8; 20]) -> TimeLimits {
        if b[0] == 0 {
            return TimeLimits::default();
        }
        let date = |s: &[u8]| {
            let d = NukiDate::parse(s.try_into().expect("7 bytes"));
            (!d.is_zero()).then_some(d)
        };
        TimeLimits {
            from: date(&b[1..8]),
            until: date(&b[8..15]),
            weekdays: Weekdays(b[15]),
            from_time: TimeOfDay {
                hour: b[16],
                minute: b[17],
            },
            until_time: TimeOfDay {
                hour: b[18],
                minute: b[19],
            },
        }
    }
}
