use std::process::ExitCode;

fn main() -> ExitCode {
    telepresence_mock_server::cli::main()
}
