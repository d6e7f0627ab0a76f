//! Row rules (placeholder until the rule catalogue lands).
