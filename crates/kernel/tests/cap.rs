#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `cap_result`: no tool result longer than the cap reaches the model; what is kept is the
//! head and the tail, cut on character boundaries, with a notice of what was cut.

use dispatch_kernel::cap_result;
use proptest::prelude::*;

#[test]
fn short_results_and_no_cap_are_untouched() {
    assert_eq!(cap_result("hello".into(), 100), "hello");
    let long = "x".repeat(10_000);
    assert_eq!(cap_result(long.clone(), 0), long);
}

#[test]
fn a_long_result_keeps_head_and_tail_with_a_notice() {
    let lines: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    let capped = cap_result(lines.clone(), 4096);
    assert!(capped.len() <= 4096, "{}", capped.len());
    assert!(capped.starts_with("line 0\nline 1\n"));
    assert!(capped.ends_with("line 4999\n"));
    assert!(capped.contains("bytes ("), "{capped}");
    assert!(capped.contains("cut: the result exceeded 4096 bytes"));
}

proptest! {
    #[test]
    fn capped_results_fit_and_keep_both_ends(text in "\\PC{0,3000}", max in 300usize..2000) {
        let capped = cap_result(text.clone(), max);
        prop_assert!(capped.len() <= max.max(text.len().min(max)) || capped == text);
        if text.len() <= max {
            prop_assert_eq!(&capped, &text);
        } else {
            prop_assert!(capped.len() <= max);
            let first: String = text.chars().take(1).collect();
            let last: String = text.chars().last().into_iter().collect();
            prop_assert!(capped.starts_with(&first));
            prop_assert!(capped.ends_with(&last));
        }
    }
}
