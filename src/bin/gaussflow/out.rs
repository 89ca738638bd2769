//! Writing to stdout without panicking when the reader goes away
//! (`gaussflow verify | head` must not print a broken-pipe panic).

use std::io::Write;

/// Writes `text` to stdout. A closed pipe ends the process quietly with
/// success, as a Unix filter would.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("gaussflow: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// `println!` through [`print`].
macro_rules! outln {
    () => { $crate::out::print("\n") };
    ($($arg:tt)*) => { $crate::out::print(&format!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use outln;
