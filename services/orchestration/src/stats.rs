//! Journey statistics: entered, active and exited by reason per version and node, conversions
//! of the treatment and holdout groups, and the uplift with its confidence interval.
