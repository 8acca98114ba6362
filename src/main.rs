//! The `lmic` binary: everything lives in the library; this only turns errors
//! into a one-line message and an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    match lmic::cli::run(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed stdout (`lmic decompress x.lmc - | head`) ends quietly.
            if let lmic::Error::Io { source, .. } = &e {
                if source.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::from(141);
                }
            }
            let e = anyhow::Error::from(e);
            eprintln!("lmic: {e}");
            ExitCode::FAILURE
        }
    }
}
