//! The `lmic` binary: the command line (`cli/`: arguments, benchmarks,
//! training) on top of the library; errors become one line and an exit code.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`lmic decompress x.lmc - | head`) ends quietly.
            if let Some(lmic::Error::Io { source, .. }) = e.downcast_ref::<lmic::Error>() {
                if source.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::from(141);
                }
            }
            eprintln!("lmic: {e}");
            ExitCode::FAILURE
        }
    }
}
