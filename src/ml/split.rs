//! Walk-forward split by date with an embargo.
//!
//! Dates are indices `0..n` in trading order. A date's label is the return over the next
//! `horizon` dates, so only dates `i` with `i + horizon < n` have one. The holdout is the
//! last `holdout` labelled dates; training dates end an embargo of at least `horizon`
//! dates before the first holdout date, so no training label spans a holdout date: a
//! training label at `i` ends at `i + horizon`, which is before the holdout starts.

use std::ops::Range;

/// Date indices that train a model and those that test it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Range<usize>,
    pub holdout: Range<usize>,
}

/// The split of `n` dates for a label `horizon` dates ahead: the last `holdout` labelled
/// dates test, the dates up to `max(embargo, horizon)` before them train. `Err` names
/// what is too short.
pub fn walk_forward(
    n: usize,
    holdout: usize,
    horizon: usize,
    embargo: usize,
) -> Result<Split, String> {
    if horizon == 0 || holdout == 0 {
        return Err("the horizon and the holdout must be at least one date".into());
    }
    let labelled = n.saturating_sub(horizon);
    let embargo = embargo.max(horizon);
    if labelled < holdout + embargo + 1 {
        return Err(format!(
            "{n} dates leave no training date: a {horizon}-date horizon, a {holdout}-date \
             holdout and a {embargo}-date embargo need at least {}",
            holdout + embargo + horizon + 1
        ));
    }
    let holdout_start = labelled - holdout;
    Ok(Split {
        train: 0..holdout_start - embargo,
        holdout: holdout_start..labelled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_training_label_reaches_a_holdout_date_and_every_holdout_date_is_labelled() {
        for n in 1..80 {
            for holdout in 1..30 {
                for horizon in 1..12 {
                    for embargo in [0, horizon, horizon + 3] {
                        let Ok(s) = walk_forward(n, holdout, horizon, embargo) else {
                            assert!(n < holdout + embargo.max(horizon) + horizon + 1);
                            continue;
                        };
                        assert!(!s.train.is_empty());
                        assert_eq!(s.holdout.len(), holdout);
                        let last_train = s.train.end - 1;
                        assert!(
                            last_train + horizon < s.holdout.start,
                            "{n} {holdout} {horizon}"
                        );
                        assert!(s.holdout.start - last_train > embargo.max(horizon));
                        assert!(s.holdout.end - 1 + horizon < n, "labelled");
                    }
                }
            }
        }
    }

    #[test]
    fn a_known_split() {
        // 500 dates, 5-day labels: dates 0..495 are labelled; the last 100 test; training
        // ends 5 dates before them.
        let s = walk_forward(500, 100, 5, 0).unwrap();
        assert_eq!(
            s,
            Split {
                train: 0..390,
                holdout: 395..495
            }
        );
        let e = walk_forward(10, 5, 5, 0).unwrap_err();
        assert!(e.contains("need at least 16"), "{e}");
    }
}
