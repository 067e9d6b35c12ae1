//! rafka-bench: the perf harness.

fn main() {
    eprintln!("rafka-bench: no modes yet");
    std::process::exit(2);
}
