fn main() -> std::process::ExitCode {
    origin_shim::cli::main()
}
