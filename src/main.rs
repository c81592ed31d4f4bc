fn main() -> std::process::ExitCode {
    if let Err(e) = chanvault::secret::set_non_dumpable() {
        eprintln!(
            "warning: cannot make the process non-dumpable (core dumps may hold secrets): {e}"
        );
    }
    chanvault::cli::main()
}
