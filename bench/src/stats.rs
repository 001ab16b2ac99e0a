//! Medians with min/max, and number formatting for the tables.

/// Median, min and max of some runs.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Spread {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                n: 0,
            };
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        }
    }

    /// `median [min–max]` with `f` formatting each number (just the median for one run).
    pub fn show(&self, f: impl Fn(f64) -> String) -> String {
        if self.n == 0 {
            "–".into()
        } else if self.n == 1 || (self.min == self.max) {
            f(self.median)
        } else {
            format!("{} [{}–{}]", f(self.median), f(self.min), f(self.max))
        }
    }
}

/// 12345.6 → "12.3k", 1234567 → "1.23M".
pub fn si(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.2}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Microseconds as ms with sensible precision.
pub fn ms(us: f64) -> String {
    if !us.is_finite() {
        "–".into()
    } else if us < 1000.0 {
        format!("{:.2}", us / 1000.0)
    } else if us < 100_000.0 {
        format!("{:.1}", us / 1000.0)
    } else {
        format!("{:.0}", us / 1000.0)
    }
}

pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0} %", x * 100.0)
    } else {
        "–".into()
    }
}

pub fn mib(kib: f64) -> String {
    if kib.is_finite() {
        format!("{:.1}", kib / 1024.0)
    } else {
        "–".into()
    }
}
