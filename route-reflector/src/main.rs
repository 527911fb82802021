//! `tortie-rr --config rr.yaml`: a BGP route reflector.

fn main() {
    println!("tortie-rr: not built yet");
}
