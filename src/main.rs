fn main() -> std::process::ExitCode {
    match chat_sessions::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, the causes joined: a bad setting names itself and
            // its value ("AUTH_MODE must be none or easyauth, not \"magic\"").
            eprintln!("chat-sessions: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
