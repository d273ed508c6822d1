//! Every committed scenario file under `scenarios/` passes, so `cargo test`
//! (and mutation testing, which runs it) holds the tracker to the
//! hand-written transition matrix and the other scenarios.

use std::path::Path;

#[test]
fn committed_scenarios_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "s2"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "expected the committed scenario files, found {files:?}");

    let mut assertions = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("scenario file is readable");
        let lines = s2sim::parse(&text).unwrap_or_else(|e| panic!("{}:{e}", file.display()));
        let mut runner = s2sim::Runner::new(&file.display().to_string());
        runner.run(&lines);
        assert_eq!(runner.failed, 0, "{}", runner.output);
        assertions += runner.passed;
    }
    // The transition matrix alone holds 126 cells.
    assert!(assertions > 126, "only {assertions} assertions ran");
}
