//! The `rafka` broker binary.

fn main() {
    eprintln!("rafka: the broker is not assembled yet (see ARCHITECTURE.md)");
    std::process::exit(2);
}
