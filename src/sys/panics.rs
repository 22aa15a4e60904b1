//! Panics in the libraries batchinfer drives (arrow, parquet, tract) on damaged
//! input must not reach the user as a crash. Calls into them that read untrusted
//! bytes go through [`catch`], which turns a panic into an error message; the
//! hook keeps the panic quiet while it is being caught, and otherwise prints one
//! line asking for a report instead of a backtrace.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};

thread_local! {
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn describe(info: &panic::PanicHookInfo<'_>) -> String {
    let payload = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    match info.location() {
        Some(l) => format!("{payload} (at {}:{})", l.file(), l.line()),
        None => payload,
    }
}

/// Installs the hook; call once at start-up.
pub fn install_hook() {
    panic::set_hook(Box::new(|info| {
        let text = describe(info);
        if CATCHING.with(Cell::get) {
            MESSAGE.with(|m| *m.borrow_mut() = Some(text));
        } else {
            eprintln!("batchinfer: internal error: {text}. This is a bug: please report it with the command and, if you can, the input");
        }
    }));
}

/// Runs `f`; a panic inside it comes back as `Err` with the panic's message.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let outer = CATCHING.with(|c| c.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    result.map_err(|_| {
        MESSAGE
            .with(|m| m.borrow_mut().take())
            .unwrap_or_else(|| "unknown panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        install_hook();
        assert_eq!(catch(|| 3), Ok(3));
        let e = catch(|| -> i32 { panic!("bad page") }).unwrap_err();
        assert!(e.starts_with("bad page (at "), "{e}");
    }
}
