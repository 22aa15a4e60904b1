use std::process::ExitCode;

use batchinfer::ParseError;

#[cfg(all(target_env = "musl", not(feature = "system-allocator")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    batchinfer::sys::malloc::tune();
    batchinfer::sys::panics::install_hook();
    let cli = match batchinfer::parse(std::env::args_os().collect(), std::env::vars()) {
        Ok(cli) => cli,
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::Cli(e)) => {
            batchinfer::sys::log::error(&e.to_string(), e.code.code());
            return ExitCode::from(e.code.code());
        }
    };
    match batchinfer::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if batchinfer::sys::out::closed() || is_broken_pipe(&e.error) => ExitCode::SUCCESS,
        Err(e) => {
            batchinfer::sys::log::error(&e.to_string(), e.code.code());
            ExitCode::from(e.code.code())
        }
    }
}

/// A closed stdout (`batchinfer ... -o - | head`) is the reader's choice, not a failure.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
