//! Process plumbing that is no stage of the data path: the allocator's settings,
//! signals, panics from libraries, standard output, and the log on stderr.

pub mod interrupt;
pub mod log;
pub mod malloc;
pub mod out;
pub mod panics;
pub mod usage;
