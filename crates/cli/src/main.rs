//! `dispatch`: the command-line client (being built for issue 5).

fn main() {}
