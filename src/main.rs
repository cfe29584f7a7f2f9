fn main() -> anyhow::Result<()> {
    chat_sessions::cli::main()
}
