fn main() -> std::process::ExitCode {
    chanvault::cli::main()
}
