//! Flap dampening: a target's reported health changes only after `trigger`
//! consecutive results that disagree with it. The very first result is
//! taken as it is, so a freshly started checker reports at once.

/// The dampened health of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dampener {
    reported: Option<bool>,
    streak_value: bool,
    streak: u32,
}

impl Dampener {
    /// Feeds one raw result and returns the health to report now.
    pub fn observe(&mut self, ok: bool, trigger: u32) -> bool {
        let Some(reported) = self.reported else {
            self.reported = Some(ok);
            self.streak_value = ok;
            self.streak = 1;
            return ok;
        };
        if ok == self.streak_value {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.streak_value = ok;
            self.streak = 1;
        }
        if self.streak_value != reported && self.streak >= trigger.max(1) {
            self.reported = Some(self.streak_value);
        }
        self.reported.unwrap_or(ok)
    }

    /// The health reported so far; `None` before the first result.
    pub fn reported(&self) -> Option<bool> {
        self.reported
    }

    /// How many results in a row have agreed with the latest one.
    pub fn streak(&self) -> u32 {
        self.streak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(trigger: u32, results: &[bool]) -> Vec<bool> {
        let mut d = Dampener::default();
        results.iter().map(|&r| d.observe(r, trigger)).collect()
    }

    const T: bool = true;
    const F: bool = false;

    #[test]
    fn first_result_is_taken_as_is() {
        assert_eq!(run(3, &[F]), [F]);
        assert_eq!(run(3, &[T]), [T]);
    }

    #[test]
    fn trigger_three() {
        // Two failures do not flip; a success in between resets the count.
        assert_eq!(run(3, &[T, F, F, T, F, F]), [T, T, T, T, T, T]);
        // The third failure in a row flips.
        assert_eq!(run(3, &[T, F, F, F]), [T, T, T, F]);
        // Recovery likewise needs three successes in a row.
        assert_eq!(run(3, &[F, T, T, F, T, T, T, T]), [F, F, F, F, F, F, T, T]);
    }

    #[test]
    fn trigger_one_follows_every_result() {
        assert_eq!(run(1, &[T, F, T, F]), [T, F, T, F]);
        assert_eq!(run(0, &[T, F, T, F]), [T, F, T, F]);
    }
}
