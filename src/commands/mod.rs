//! The subcommands, each a table of contents over the stages: `score` (and the
//! `run` of a job file, resolved in `cli`), `inspect`, `bench`, `status`, and
//! `manual` (`completions`, `man` and the generated reference).
//! `prepare` is what `score` and `bench` do before the first batch; `plan` is
//! where `score`'s rows go (one file, or the parts of a directory still to write).

pub mod bench;
pub mod inspect;
pub mod manual;
pub mod plan;
pub mod prepare;
pub mod score;
pub mod status;
