use crate::turn::{TurnInput, TurnOutcome};

/// Runs one turn. Placeholder: being implemented.
pub async fn run_turn(_input: TurnInput) -> TurnOutcome {
    unimplemented!()
}
