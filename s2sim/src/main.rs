//! `s2sim FILE...`: runs scenario files against the real tracker and
//! prints `N passed, M failed`. Exits nonzero if anything failed or a file
//! could not be read or parsed.

use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        eprintln!(
            "usage: s2sim FILE...\n\nRuns s2rmap scenario files; see README.md for the language."
        );
        return ExitCode::from(2);
    }
    let (mut passed, mut failed, mut broken_files) = (0, 0, 0);
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{file}: cannot read: {e}");
                broken_files += 1;
                continue;
            }
        };
        let lines = match s2sim::parse(&text) {
            Ok(lines) => lines,
            Err(e) => {
                eprintln!("{file}:{e}");
                broken_files += 1;
                continue;
            }
        };
        let mut runner = s2sim::Runner::new(file);
        runner.run(&lines);
        print!("{}", runner.output);
        passed += runner.passed;
        failed += runner.failed;
    }
    if broken_files > 0 {
        eprintln!("{broken_files} file(s) could not be read or parsed");
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 || broken_files > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
