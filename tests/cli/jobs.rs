//! Behaviour of whole jobs: kept columns, outputs, failures, summaries, inspect.
