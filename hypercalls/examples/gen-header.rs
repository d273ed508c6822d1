//! Writes the C header to stdout: `cargo run -p hypercalls --example
//! gen-header > hypercalls/include/s2rmap_abi.h`.

fn main() {
    let mut out = String::new();
    hypercalls::header::write_header(&mut out).expect("formatting into a String");
    print!("{out}");
}
