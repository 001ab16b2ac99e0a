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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Spread::of([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([1.0, 4.0]).median, 2.5);
        assert_eq!(Spread::of([f64::NAN, 5.0]).n, 1, "NaN samples are ignored");
        assert_eq!(Spread::of([]).show(si), "–");
        assert_eq!(
            Spread::of([1500.0, 1000.0, 2000.0]).show(si),
            "1.50k [1.00k–2.00k]"
        );
    }

    #[test]
    fn units() {
        assert_eq!(si(123_456.0), "123.5k");
        assert_eq!(si(2_500_000.0), "2.50M");
        assert_eq!(ms(250.0), "0.25");
        assert_eq!(ms(14_900.0), "14.9");
        assert_eq!(pct(0.614), "61 %");
        assert_eq!(mib(2048.0), "2.0");
    }

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(crate::procinfo::percentile(&v, 50.0), 51);
        assert_eq!(crate::procinfo::percentile(&v, 99.0), 99);
        assert_eq!(crate::procinfo::percentile(&v, 100.0), 100);
        assert_eq!(crate::procinfo::percentile(&[], 50.0), 0);
    }
}
