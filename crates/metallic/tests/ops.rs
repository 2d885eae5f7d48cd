//! Runs every op-test case on every available target against the scalar
//! references and fails on any FAIL. `METALLIC_OPTEST_VERBOSE=1` prints every
//! case; `METALLIC_OPTEST_TARGET=<substring>` restricts the targets;
//! `METALLIC_OPTEST_OP=<op>[,<op>..]` restricts the cases to those ops (the
//! names the cases print, e.g. `rope,attention`);
//! `METALLIC_OPTEST_CASE=<text>[,<text>..]` keeps the cases whose op name and
//! description (`matmul [m=1 n=33 ..]`) contain one of them (e.g. `b=q`:
//! the matmul cases on GGUF block weights).

use metallic::optest;

#[test]
fn op_cases_pass_on_every_target() {
    let verbose = std::env::var("METALLIC_OPTEST_VERBOSE").is_ok_and(|v| v == "1");
    let filter = std::env::var("METALLIC_OPTEST_TARGET").unwrap_or_default();
    let ops = std::env::var("METALLIC_OPTEST_OP").unwrap_or_default();
    let mut cases = optest::all_cases();
    if !ops.is_empty() {
        cases.retain(|c| ops.split(',').any(|op| op.trim() == c.op()));
    }
    let texts = std::env::var("METALLIC_OPTEST_CASE").unwrap_or_default();
    if !texts.is_empty() {
        cases.retain(|c| {
            let d = format!("{} {}", c.op(), c.describe());
            texts.split(',').any(|t| d.contains(t.trim()))
        });
    }
    let targets = optest::targets();
    println!(
        "targets: {}",
        targets
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let summary = optest::run_cases(&cases, &targets, &filter, verbose);
    println!("{summary}");
    assert!(summary.pass > 0, "no op case ran");
    assert_eq!(
        summary.fail,
        0,
        "failing cases:\n{}",
        summary.failures.join("\n")
    );
}
